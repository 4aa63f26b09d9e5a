#!/usr/bin/env bash
# Runs inside the lab VM (deploy/lab/run.sh --hosts 4), hosts h1..h4 ready. Every SA and policy is
# installed by ipfleet-xfrm (the project's netlink layer); iproute2's `ip -s xfrm state`, ping and
# /proc/net/xfrm_stat are the independent judges. Prints one "CHECK <name> PASS|FAIL <detail>"
# line per check; exits non-zero when any check failed.
#   lab_checks.sh /path/to/ipfleet-xfrm
set -u
TOOL=$1
failures=0
# Leak checking at every exit of the ASan-built tool is slow under emulation; the unit and netns
# tiers run the same code with leak checks on.
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
START=$SECONDS
pass() { echo "CHECK $1 PASS ${*:2} (t=$((SECONDS - START))s)"; }
fail() { echo "CHECK $1 FAIL ${*:2} (t=$((SECONDS - START))s)"; failures=$((failures + 1)); }
x() { local h=$1; shift; "$TOOL" --netns "$h" "$@"; }
# Packets counted by the kernel for one SA (the judge): ip -s xfrm state get ... "N(packets)".
kpackets() {  # kpackets HOST SRC DST SPI
  ip -n "$1" -s xfrm state get src "$2" dst "$3" proto esp spi "$4" 2>/dev/null |
    grep -A1 'lifetime current' | tail -1 | sed -n 's/.*, *\([0-9]*\)(packets).*/\1/p'
}
kfailed() {  # integrity failures: "stats: ... failed N"
  ip -n "$1" -s xfrm state get src "$2" dst "$3" proto esp spi "$4" 2>/dev/null |
    grep -A1 '^[[:space:]]*stats:' | tail -1 | sed -n 's/.*failed \([0-9]*\).*/\1/p'
}
WORKDIR=$(mktemp -d)
trap 'rm -rf "$WORKDIR"' EXIT

GCM='rfc4106(gcm(aes))'
K1=0x0102030405060708090a0b0c0d0e0f1011121314   # AES-128 key + 4-byte salt
K2=0x2122232425262728292a2b2c2d2e2f3031323334
K3=0x4142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f6061626364  # AES-256 + salt
BAD=0xffffffffffffffffffffffffffffffff31323334
ENC=0x000102030405060708090a0b0c0d0e0f
AUTH=0x101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f
AUTH512=0x$(printf '%02x' $(seq 1 64))

# tunnel_pair NAME A B SPI_AB SPI_BA REQID ALG-OPTIONS-A->B ALG-OPTIONS-B->A [inner family]
# Installs, through one batch per host, the two SAs and the out/in/fwd policies of a tunnel
# between hA and hB protecting 198.51.100.A <-> 198.51.100.B (or 2001:db8:100::A/B with v6).
tunnel_pair() {
  local a=$1 b=$2 sab=$3 sba=$4 reqid=$5 algab=$6 algba=$7 fam=${8:-4}
  local oa ob ia ib
  if [ "$fam" = 6 ]; then oa=2001:db8::$a ob=2001:db8::$b ia=2001:db8:100::$a/128 ib=2001:db8:100::$b/128
  else oa=192.0.2.$a ob=192.0.2.$b ia=198.51.100.$a/32 ib=198.51.100.$b/32; fi
  for side in a b; do
    local me=$a peer=$b ome=$oa opeer=$ob ime=$ia ipeer=$ib sout=$sab sin=$sba aout=$algab ain=$algba
    if [ $side = b ]; then
      me=$b peer=$a ome=$ob opeer=$oa ime=$ib ipeer=$ia sout=$sba sin=$sab aout=$algba ain=$algab
    fi
    cat >"$WORKDIR/batch-h$me" <<EOF
sa add --src $ome --dst $opeer --spi $sout --reqid $reqid --mode tunnel $aout
sa add --src $opeer --dst $ome --spi $sin --reqid $reqid --mode tunnel $ain
policy add --src $ime --dst $ipeer --dir out --tmpl-src $ome --tmpl-dst $opeer --reqid $reqid --mode tunnel
policy add --src $ipeer --dst $ime --dir in --tmpl-src $opeer --tmpl-dst $ome --reqid $reqid --mode tunnel
policy add --src $ipeer --dst $ime --dir fwd --tmpl-src $opeer --tmpl-dst $ome --reqid $reqid --mode tunnel
EOF
    x "h$me" batch "$WORKDIR/batch-h$me" >/dev/null || return 1
  done
}

# ---- 1. tunnel mode, AES-GCM-128, IPv4, h1 <-> h2 ---------------------------------------------
if tunnel_pair 1 2 0x1f000112 0x1f000121 0x1f000012 \
    "--aead $GCM --aead-key $K1 --icv 128" "--aead $GCM --aead-key $K2 --icv 128"; then
  if ip netns exec h1 ping -c 3 -W 3 198.51.100.2 >/dev/null; then
    out=$(kpackets h1 192.0.2.1 192.0.2.2 0x1f000112)
    in=$(kpackets h1 192.0.2.2 192.0.2.1 0x1f000121)
    tool=$(x h1 sa get --dst 192.0.2.2 --spi 0x1f000112 | sed -n 's/.* packets=\([0-9]*\).*/\1/p')
    if [ "${out:-0}" -ge 3 ] && [ "${in:-0}" -ge 3 ] && [ "$tool" = "$out" ]; then
      pass tunnel_gcm "ping crossed; ip -s xfrm state: out=$out in=$in packets; ipfleet-xfrm sa get=$tool"
    else
      fail tunnel_gcm "counters out=${out:-?} in=${in:-?} tool=${tool:-?}"
    fi
  else
    fail tunnel_gcm "ping 198.51.100.2 through the tunnel failed"
  fi
else
  fail tunnel_gcm "installing SAs/policies failed"
fi

# ---- 2. transport mode, AES-CBC + HMAC-SHA256, IPv4, h1 <-> h3 ---------------------------------
ok=1
for side in "1 3 0x1f000113 0x1f000131" "3 1 0x1f000131 0x1f000113"; do
  set -- $side
  cat >"$WORKDIR/tr-h$1" <<EOF
sa add --src 192.0.2.$1 --dst 192.0.2.$2 --spi $3 --reqid 0x1f000013 --mode transport --enc cbc(aes) --enc-key $ENC --auth hmac(sha256) --auth-key $AUTH --trunc 128
sa add --src 192.0.2.$2 --dst 192.0.2.$1 --spi $4 --reqid 0x1f000013 --mode transport --enc cbc(aes) --enc-key $ENC --auth hmac(sha256) --auth-key $AUTH --trunc 128
policy add --src 192.0.2.$1/32 --dst 192.0.2.$2/32 --dir out --reqid 0x1f000013 --mode transport
policy add --src 192.0.2.$2/32 --dst 192.0.2.$1/32 --dir in --reqid 0x1f000013 --mode transport
EOF
  x "h$1" batch "$WORKDIR/tr-h$1" >/dev/null || ok=0
done
if [ $ok = 1 ] && ip netns exec h1 ping -c 3 -W 3 192.0.2.3 >/dev/null; then
  out=$(kpackets h1 192.0.2.1 192.0.2.3 0x1f000113)
  in=$(kpackets h3 192.0.2.1 192.0.2.3 0x1f000113)
  mode=$(ip -n h1 xfrm state get src 192.0.2.1 dst 192.0.2.3 proto esp spi 0x1f000113 | grep -o 'mode transport')
  if [ "${out:-0}" -ge 3 ] && [ "${in:-0}" -ge 3 ] && [ -n "$mode" ]; then
    pass transport_cbc_hmac "ping crossed; h1 out=$out, h3 in=$in packets, $mode"
  else
    fail transport_cbc_hmac "counters out=${out:-?} in=${in:-?} mode=${mode:-?}"
  fi
else
  fail transport_cbc_hmac "install ok=$ok or ping 192.0.2.3 failed"
fi

# ---- 3. tunnel mode over IPv6, AES-CBC-256 + HMAC-SHA512, h2 <-> h3 ----------------------------
A6="--enc cbc(aes) --enc-key ${K3:0:66} --auth hmac(sha512) --auth-key $AUTH512"
if tunnel_pair 2 3 0x1f000623 0x1f000632 0x1f000623 "$A6" "$A6" 6 &&
    ip netns exec h2 ping -c 3 -W 3 2001:db8:100::3 >/dev/null; then
  out=$(ip -n h2 -s xfrm state get src 2001:db8::2 dst 2001:db8::3 proto esp spi 0x1f000623 |
        grep -A1 'lifetime current' | tail -1 | sed -n 's/.*, *\([0-9]*\)(packets).*/\1/p')
  if [ "${out:-0}" -ge 3 ]; then pass tunnel_v6_cbc_sha512 "ping6 crossed; out=$out packets"
  else fail tunnel_v6_cbc_sha512 "counter out=${out:-?}"; fi
else
  fail tunnel_v6_cbc_sha512 "install or ping6 failed"
fi

# ---- 4. wrong key: h2 -> h3 tunnel where h3's inbound SA has another key -----------------------
if tunnel_pair 2 3 0x1f000223 0x1f000232 0x1f000023 \
    "--aead $GCM --aead-key $K1" "--aead $GCM --aead-key $K2"; then
  # Replace h3's inbound SA with one carrying a wrong key (delete + add through the layer).
  x h3 sa del --dst 192.0.2.3 --spi 0x1f000223 &&
    x h3 sa add --src 192.0.2.2 --dst 192.0.2.3 --spi 0x1f000223 --reqid 0x1f000023 --mode tunnel \
      --aead "$GCM" --aead-key "$BAD"
  before=$(ip netns exec h3 awk '/XfrmInStateProtoError/ {print $2}' /proc/net/xfrm_stat)
  if ip netns exec h2 ping -c 3 -W 2 198.51.100.3 >/dev/null; then
    fail wrong_key "ping crossed despite the wrong key"
  else
    failed=$(kfailed h3 192.0.2.2 192.0.2.3 0x1f000223)
    after=$(ip netns exec h3 awk '/XfrmInStateProtoError/ {print $2}' /proc/net/xfrm_stat)
    tool=$(x h3 sa get --dst 192.0.2.3 --spi 0x1f000223 | sed -n 's/.*integrity_failures=\([0-9]*\).*/\1/p')
    if [ "${failed:-0}" -ge 1 ] && [ "${tool:-0}" -ge 1 ] && [ "${after:-0}" -gt "${before:-0}" ]; then
      pass wrong_key "no delivery; integrity failures: ip -s xfrm=$failed ipfleet-xfrm=$tool XfrmInStateProtoError $before->$after"
    else
      fail wrong_key "failed=${failed:-?} tool=${tool:-?} XfrmInStateProtoError ${before:-?}->${after:-?}"
    fi
  fi
else
  fail wrong_key "install failed"
fi

# ---- 4b. NAT-T: ESP in UDP 4500 (RFC 3948), h2 <-> h4, with ESN and a 128-packet window ---------
# The receiving side needs a UDP socket in ESPINUDP mode on 4500, as an IKE daemon would hold.
encap_sock() {  # python3 (seen working in the lab); perl-base (Essential) as the fallback
  if command -v python3 >/dev/null; then
    ip netns exec "$1" python3 -c 'import socket,time
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_UDP,100,2)  # UDP_ENCAP = UDP_ENCAP_ESPINUDP
s.bind(("0.0.0.0",4500)); print("bound",flush=True); time.sleep(300)' >"$WORKDIR/encap-$1" 2>&1 &
  else
    ip netns exec "$1" perl -e 'use Socket;
      socket(my $s, PF_INET, SOCK_DGRAM, 0) or die "socket: $!";
      setsockopt($s, IPPROTO_UDP, 100, pack("i", 2)) or die "UDP_ENCAP: $!";
      bind($s, pack_sockaddr_in(4500, INADDR_ANY)) or die "bind: $!";
      $| = 1; print "bound\n"; sleep 300;' >"$WORKDIR/encap-$1" 2>&1 &
  fi
  echo $!
}
p2=$(encap_sock h2)
p4=$(encap_sock h4)
for _ in $(seq 1 300); do
  grep -q bound "$WORKDIR/encap-h2" && grep -q bound "$WORKDIR/encap-h4" && break
  sleep 0.1
done
NATT="--aead $GCM --icv 128 --encap-sport 4500 --encap-dport 4500 --esn --replay-window 128"
if tunnel_pair 2 4 0x1f000224 0x1f000242 0x1f000024 "$NATT --aead-key $K1" "$NATT --aead-key $K2" &&
    ip netns exec h2 ping -c 3 -W 3 198.51.100.4 >/dev/null; then
  st=$(ip -n h2 -s xfrm state get src 192.0.2.2 dst 192.0.2.4 proto esp spi 0x1f000224)
  out=$(echo "$st" | grep -A1 'lifetime current' | tail -1 | sed -n 's/.*, *\([0-9]*\)(packets).*/\1/p')
  in=$(kpackets h4 192.0.2.2 192.0.2.4 0x1f000224)
  encap=$(echo "$st" | grep -o 'encap type espinudp sport 4500 dport 4500')
  esn=$(echo "$st" | grep -o 'esn')
  if [ "${out:-0}" -ge 3 ] && [ "${in:-0}" -ge 3 ] && [ -n "$encap" ] && [ -n "$esn" ]; then
    pass natt_esn "ping crossed over ESP-in-UDP; out=$out in=$in packets; $encap; flag esn"
  else
    fail natt_esn "out=${out:-?} in=${in:-?} encap='${encap}' esn='${esn}'"
  fi
else
  fail natt_esn "install or ping 198.51.100.4 failed; encap sockets: $(cat "$WORKDIR"/encap-h2 "$WORKDIR"/encap-h4 | tr '\n' ' ')"
fi
kill "$p2" "$p4" 2>/dev/null

# ---- 5. lifetimes: soft and hard EXPIRE events (time and packets) ------------------------------
x h1 monitor --type expire --count 4 --timeout 60 >"$WORKDIR/mon" 2>&1 &
mon=$!
for _ in $(seq 1 100); do grep -q 'monitor ready' "$WORKDIR/mon" && break; sleep 0.1; done
x h1 sa add --src 192.0.2.1 --dst 192.0.2.2 --spi 0x1f0001e1 --reqid 0x1f0000e1 --mode tunnel \
  --aead "$GCM" --aead-key "$K1" --soft-seconds 2 --hard-seconds 4
# Packet limits on the tunnel's outbound SA: soft after 2, hard after 4 packets.
x h1 sa del --dst 192.0.2.2 --spi 0x1f000112
x h1 sa add --src 192.0.2.1 --dst 192.0.2.2 --spi 0x1f000112 --reqid 0x1f000012 --mode tunnel \
  --aead "$GCM" --aead-key "$K1" --soft-packets 2 --hard-packets 4
ip netns exec h1 ping -c 6 -i 0.3 -W 1 198.51.100.2 >/dev/null 2>&1
wait $mon
mon_rc=$?
soft_t=$(grep -c 'event=expire hard=0 spi=0x1f0001e1' "$WORKDIR/mon")
hard_t=$(grep -c 'event=expire hard=1 spi=0x1f0001e1' "$WORKDIR/mon")
soft_p=$(grep -c 'event=expire hard=0 spi=0x1f000112' "$WORKDIR/mon")
hard_p=$(grep -c 'event=expire hard=1 spi=0x1f000112' "$WORKDIR/mon")
gone=$(ip -n h1 xfrm state list spi 0x1f0001e1 | grep -c spi)
if [ $mon_rc = 0 ] && [ "$soft_t" -ge 1 ] && [ "$hard_t" -ge 1 ] && [ "$soft_p" -ge 1 ] &&
    [ "$hard_p" -ge 1 ] && [ "$gone" = 0 ]; then
  pass lifetimes "soft+hard EXPIRE by time and by packets received; expired SA gone from ip xfrm state"
else
  fail lifetimes "monitor rc=$mon_rc time soft=$soft_t hard=$hard_t packets soft=$soft_p hard=$hard_p still_present=$gone: $(tr '\n' ';' <"$WORKDIR/mon")"
fi

# ---- 6. flush-owned removes owned SAs and policies, leaves a foreign SA and policy ------------
ip -n h1 xfrm state add src 192.0.2.1 dst 192.0.2.9 proto esp spi 0x5000 reqid 5 mode tunnel \
  aead "$GCM" "$K1" 128
ip -n h1 xfrm policy add src 203.0.113.1/32 dst 203.0.113.9/32 dir out tmpl src 192.0.2.1 dst 192.0.2.9 proto esp reqid 5 mode tunnel
x h1 flush-owned >/dev/null
sas=$(ip -n h1 xfrm state | grep -c '^src')
pols=$(ip -n h1 xfrm policy | grep -c '^src')
foreign_sa=$(ip -n h1 xfrm state list spi 0x5000 | grep -c spi)
foreign_pol=$(ip -n h1 xfrm policy list src 203.0.113.1/32 | grep -c '^src')
if [ "$sas" = 1 ] && [ "$pols" = 1 ] && [ "$foreign_sa" = 1 ] && [ "$foreign_pol" = 1 ]; then
  pass flush_owned "only the foreign SA and policy remain"
else
  fail flush_owned "remaining sas=$sas policies=$pols foreign_sa=$foreign_sa foreign_policy=$foreign_pol"
fi

echo "lab_checks: $failures failed"
exit $((failures > 0))
