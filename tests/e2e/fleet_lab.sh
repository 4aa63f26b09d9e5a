#!/bin/bash
# The fleet end to end, inside the real-kernel lab (deploy/lab/run.sh --hosts 5):
#   h1 controller, h2 h3 h4 agents (ipfleet-agent: netlink XFRM + our IKE engine),
#   h5 strongSwan's charon (kernel-netlink, real kernel ESP) as an external peer with a
#   certificate from our CA.
# Usage (inside the lab): fleet_lab.sh AGENT_BIN CONTROLLER_BIN CLI_BIN INJECTOR_BIN
# Prints one "e2e: PASS|FAIL ..." line per assertion, "e2e: TIMING ..." lines, and
# "N passed, M failed"; exit 0 only if everything passed. Judges are independent of the agent's
# own word wherever possible: `ip -s xfrm state` counters and SPIs, ping, swanctl --list-sas,
# `ipfleet status -o json` (the controller), the agent's /metrics.
set -uo pipefail
AGENT=$1
CTL=$2
CLI=$3
INJECTOR=$4
W=$(mktemp -d /tmp/ipfleet-e2e.XXXXXX)
# Into the VM's RAM: every exec over 9p under emulation would re-read the binary.
mkdir -p "$W/bin"
cp "$AGENT" "$CTL" "$CLI" "$INJECTOR" "$W/bin/"
AGENT=$W/bin/$(basename "$AGENT") CTL=$W/bin/$(basename "$CTL") CLI=$W/bin/$(basename "$CLI")
INJECTOR=$W/bin/$(basename "$INJECTOR")
PASS=0
FAIL=0
PIDS=()
LIVENESS=5                     # dpd.interval_seconds in the fleet file
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
ok() { echo "e2e: PASS $*"; PASS=$((PASS + 1)); }
bad() { echo "e2e: FAIL $*"; FAIL=$((FAIL + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
now_ms() { date +%s%3N; }
T_START=$(now_ms)
note() { echo "e2e: [$(( ($(now_ms) - T_START) / 1000 ))s] $*"; }
# Bounded poll: wait_for SECONDS CMD... (true once CMD succeeds)
wait_for() {
  local end=$(($(date +%s) + $1)); shift
  while [ "$(date +%s)" -lt "$end" ]; do "$@" >/dev/null 2>&1 && return 0; sleep 0.3; done
  return 1
}
ipf() { ip netns exec h1 "$CLI" --controller "unix:$W/ctl/admin.sock" "$@"; }
finish() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  [ -f "$W/h5/charon.pid" ] && kill "$(cat "$W/h5/charon.pid")" 2>/dev/null
  wait 2>/dev/null
  if [ "$FAIL" != 0 ]; then
    for f in "$W"/*.log; do echo "---- $f (tail)"; tail -n 30 "$f"; done
  fi
  echo "e2e: total $(( ($(now_ms) - T_START) / 1000 )) s inside the VM; work dir $W"
  echo "$PASS passed, $FAIL failed"
  [ "$FAIL" = 0 ] && [ "$PASS" -gt 0 ]
  exit $?
}

inner() { echo "198.51.100.${1#h}"; }
outer() { echo "192.0.2.${1#h}"; }
pingable() { ip netns exec "$1" ping -c 1 -W 1 -I "$(inner "$1")" "$(inner "$2")"; }
# Packets counted by the kernel on every SA between two hosts' outer addresses, seen from host $1.
sa_pkts() {
  ip netns exec "$1" ip -s xfrm state | awk -v a="$(outer "$1")" -v b="$(outer "$2")" '
    /^src / { m = (($2 == a && $4 == b) || ($2 == b && $4 == a)) }
    m && /\(packets\)/ { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+\(packets\)/) { sub(/\(.*/, "", $i); s += $i } }
    END { print s + 0 }'
}
# SPIs of the SAs between two hosts, seen from host $1 (sorted, one line).
sa_spis() {
  ip netns exec "$1" ip xfrm state | awk -v a="$(outer "$1")" -v b="$(outer "$2")" '
    /^src / { m = (($2 == a && $4 == b) || ($2 == b && $4 == a)) }
    m && /spi 0x/ { for (i = 1; i <= NF; i++) if ($i == "spi" && $(i + 1) != "0x00000000") print $(i + 1) }' | sort | tr '\n' ' '
}
# SPI 0x00000000 above is the kernel's larval state for an ACQUIRE (a packet met a policy without SA).
# none_left "SPIS_BEFORE" HOST PEER: none of those SPIs is in HOST's kernel any more.
none_left() { ! comm -12 <(tr ' ' '\n' <<<"$1" | grep . | sort) <(tr ' ' '\n' <<<"$(sa_spis "$2" "$3")" | grep . | sort) | grep . >/dev/null; }
disjoint() { [ -n "$1" ] && [ -n "$2" ] && ! comm -12 <(tr ' ' '\n' <<<"$1" | sort) <(tr ' ' '\n' <<<"$2" | sort) | grep . >/dev/null; }
fetch_metrics() { ip netns exec "$1" bash -c "exec 3<>/dev/tcp/127.0.0.1/9477; printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3; cat <&3"; }
forced_count() {  # forced_count HOST REASON
  fetch_metrics "$1" | awk -v r="ipfleet_agent_forced_renegotiations_total{reason=\"$2\"}" '$1 == r { print int($2) }' | head -1
}
forced_at_least() { [ "$(forced_count "$1" "$2")" -ge "$3" ] 2>/dev/null; }
status_json() { ipf -o json status 2>/dev/null; }
# host_field HOST FIELD from `ipfleet status -o json` (one object per host on its own lines).
host_field() {
  status_json | tr -d '\n ' | grep -o "{[^{}]*\"host\":\"$1\"[^{}]*}" | grep -o "\"$2\":[^,}]*" | cut -d: -f2
}
# A continuous ping at a fixed interval (busybox: one "seq=N" line per reply). pinger_start NAME
# SRC DST INTERVAL_MS leaves $W/ping-NAME.{out,start}; a seq's send time is start + seq*interval.
pinger_start() {
  local name=$1 src=$2 dst=$3 ival=$4
  now_ms >"$W/ping-$name.start"
  ip netns exec "$src" ping -i "$(awk -v i="$ival" 'BEGIN { printf "%.1f", i / 1000 }')" -W 1 \
    -I "$(inner "$src")" "$(inner "$dst")" >"$W/ping-$name.out" 2>&1 &
  eval "PING_$name=$!"
  PIDS+=($!)
}
pinger_stop() { eval "kill \$PING_$1" 2>/dev/null; }
# pinger_replied_after NAME T_MS INTERVAL_MS: true once a reply for a ping sent after T arrived.
pinger_replied_after() {
  local s; s=$(cat "$W/ping-$1.start")
  grep -o 'seq=[0-9]*' "$W/ping-$1.out" | cut -d= -f2 | awk -v s="$s" -v t="$2" -v i="$3" '
    s + $1 * i > t { found = 1 } END { exit !found }'
}
# pinger_gap_ms NAME T_MS INTERVAL_MS: from T until the send time of the first answered ping
# after the last unanswered one sent after T (0 if none was lost). Resolution: the interval.
pinger_gap_ms() {
  local s; s=$(cat "$W/ping-$1.start")
  grep -o 'seq=[0-9]*' "$W/ping-$1.out" | cut -d= -f2 | awk -v s="$s" -v t="$2" -v i="$3" '
    { got[$1] = 1; if ($1 > max) max = $1 }
    END {
      first = int((t - s) / i); if (first < 0) first = 0
      last_lost = -1
      for (q = first; q <= max; q++) if (!(q in got) && s + q * i >= t - i) last_lost = q
      if (last_lost < 0) { print 0; exit }
      g = s + (last_lost + 1) * i - t; if (g < 0) g = 0; print g
    }'
}

trap 'bad "interrupted"; finish' INT TERM

# --- controller on h1 ------------------------------------------------------------------------
note "controller init and serve on h1"
ip netns exec h1 "$CTL" init --data-dir "$W/ctl" --address 192.0.2.1 >"$W/init.log" 2>&1 || { bad "controller init"; finish; }
start_controller() {
  ip netns exec h1 "$CTL" serve --data-dir "$W/ctl" --listen 192.0.2.1:7443 >>"$W/controller.log" 2>&1 &
  CTL_PID=$!
  PIDS+=($!)
}
start_controller
check "controller serving" wait_for 60 test -S "$W/ctl/admin.sock"

# --- 1. enroll three agents with tokens, pinning the CA by fingerprint only -----------------------
start_agent() {  # host
  ip netns exec "$1" "$AGENT" run --data-dir "$W/$1" --metrics-port 9477 --health-interval 2 >>"$W/agent-$1.log" 2>&1 &
  eval "APID_$1=$!"
  PIDS+=($!)
}
for h in h2 h3 h4; do
  out=$(ipf -o json host add "$h" --address "$(outer "$h")" --label role=agent) || { bad "host add $h"; continue; }
  token=$(echo "$out" | sed -n 's/.*"token": *"\([^"]*\)".*/\1/p')
  fp=$(echo "$out" | sed -n 's/.*"ca_fingerprint": *"\([^"]*\)".*/\1/p')
  # No --ca-file: the CA is found in the controller's TLS chain and checked against the fingerprint.
  check "enroll $h (token + CA fingerprint only)" ip netns exec "$h" "$AGENT" enroll --controller 192.0.2.1:7443 \
    --name "$h" --token "$token" --ca-fingerprint "$fp" --data-dir "$W/$h"
  [ "$h" = h2 ] && check "token of $h is single use" bash -c "! ip netns exec $h $AGENT enroll --controller 192.0.2.1:7443 \
    --name $h --token $token --ca-fingerprint $fp --data-dir $W/$h-again >$W/enroll-again.log 2>&1"
  check "key of $h is 0600 and stayed on $h" test "$(stat -c %a "$W/$h/tls/host.key" 2>/dev/null)" = 600
  start_agent "$h"
done
connected_n() { [ "$(status_json | grep -c '"connected": *true')" = "$1" ]; }
check "three agents connected" wait_for 60 connected_n 3

# --- strongSwan on h5: key + CSR made there, certificate from our CA -------------------------------
note "charon on h5 with a certificate from the fleet CA"
S=$W/h5
mkdir -p "$S/x509" "$S/x509ca" "$S/private"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$S/private/ext5.key" \
  -subj /CN=ext5 -out "$S/ext5.csr" 2>/dev/null
check "external peer certificate issued (ipfleet cert issue --kind external)" \
  ipf cert issue --csr "$S/ext5.csr" --name ext5 --ip 192.0.2.5 --kind external --out "$S/x509/ext5.crt"
cp "$W/ctl/ca/ca.crt" "$S/x509ca/fleet-ca.crt"
cat >"$S/strongswan.conf" <<EOF
charon {
  load = random nonce aes sha1 sha2 hmac kdf gcm openssl pem pkcs1 pkcs8 x509 pubkey revocation constraints socket-default kernel-netlink vici
  port = 500
  port_nat_t = 4500
  install_routes = no
  retransmit_timeout = 1
  retransmit_tries = 3
  plugins { vici { socket = unix://$S/vici.sock } }
  filelog { log { path = $W/charon.log
    time_format = %H:%M:%S
    default = 1
    ike = 2
    knl = 2
    flush_line = yes } }
  syslog { daemon { default = -1 } }
}
EOF
cat >"$S/swanctl.conf" <<EOF
connections {
  fleet {
    version = 2
    local_addrs = 192.0.2.5
    remote_addrs = 192.0.2.2
    proposals = aes128gcm16-prfsha256-x25519
    dpd_delay = ${LIVENESS}s
    local { auth = pubkey
      certs = ext5.crt
      id = 192.0.2.5 }
    remote { auth = pubkey
      id = 192.0.2.2 }
    children { fleet {
      local_ts = 198.51.100.5/32
      remote_ts = 198.51.100.2/32
      esp_proposals = aes128gcm16-x25519,aes128gcm16
      mode = tunnel
      start_action = none
      dpd_action = clear } }
  }
}
EOF
swan() { ip netns exec h5 swanctl "$@" --uri "unix://$S/vici.sock"; }
ip netns exec h5 env STRONGSWAN_CONF="$S/strongswan.conf" /usr/lib/ipsec/charon >"$W/charon-stdout.log" 2>&1 &
echo $! >"$S/charon.pid"
PIDS+=($!)
check "charon answering on VICI" wait_for 30 swan --stats
check "charon loaded the connection and credentials" \
  ip netns exec h5 env STRONGSWAN_CONF="$S/strongswan.conf" swanctl --load-all --clear --file "$S/swanctl.conf" \
  --uri "unix://$S/vici.sock"

# --- 1b. a mesh over the three plus one tunnel to the external peer, rolled out in waves ----------------
note "apply the fleet file and roll out in waves"
cat >"$W/fleet.yaml" <<YAML
version: 1
defaults:
  mode: tunnel
  start_action: start
  dpd: {interval_seconds: $LIVENESS, max_retries: 3, stale_child_seconds: 2}
hosts:
  h2: {labels: {role: agent}, subnets: [198.51.100.2/32]}
  h3: {labels: {role: agent}, subnets: [198.51.100.3/32]}
  h4: {labels: {role: agent}, subnets: [198.51.100.4/32]}
external_peers:
  ext5:
    address: 192.0.2.5
    identity: ip:192.0.2.5
    subnets: [198.51.100.5/32]
meshes:
  - name: lab
    select: {role: agent}
tunnels:
  - name: h2--ext5
    ends: [h2, ext5]
YAML
check "apply fleet.yaml" ipf apply -f "$W/fleet.yaml"
check "rollout in waves (canary, then one host per wave)" \
  ipf rollout start --canary 34 --wave-size 1 --wave-timeout 90 --wait >"$W/rollout.log" 2>&1
ipf rollout status >>"$W/rollout.log" 2>&1
check "rollout went in more than one wave" test "$(grep -ciE 'wave' "$W/rollout.log")" -ge 2
cp "$W/h2/state/last-good.bundle" "$W/h2-first.bundle" 2>/dev/null

# --- 2. ping across every tunnel; ESP counters rise on both ends; status shows all up ---------------
note "traffic through every tunnel"
for pair in "h2 h3" "h2 h4" "h3 h4" "h2 h5"; do
  set -- $pair
  check "ping $1 -> $2 through ESP" wait_for 40 pingable "$1" "$2"
  a0=$(sa_pkts "$1" "$2"); b0=$(sa_pkts "$2" "$1")
  check "ping $2 -> $1 through ESP" wait_for 10 pingable "$2" "$1"
  ip netns exec "$1" ping -c 3 -i 0.2 -W 1 -I "$(inner "$1")" "$(inner "$2")" >/dev/null 2>&1
  a1=$(sa_pkts "$1" "$2"); b1=$(sa_pkts "$2" "$1")
  echo "e2e: ESP packets on the $1<->$2 SAs: $1 $a0 -> $a1, $2 $b0 -> $b1"
  check "ESP counters rose on both $1 and $2 (ip -s xfrm state)" test "$a1" -ge $((a0 + 4)) -a "$b1" -ge $((b0 + 4))
done
swan --list-sas >"$W/swanctl-sas-1.txt" 2>&1
check "charon: IKE_SA ESTABLISHED and CHILD_SA INSTALLED with h2 (swanctl --list-sas)" \
  bash -c "grep -q ESTABLISHED $W/swanctl-sas-1.txt && grep -q INSTALLED $W/swanctl-sas-1.txt"
all_up() {  # nlohmann prints keys sorted: pick each host's object, then its fields
  local j; j=$(status_json | tr -d '\n ')
  for h in h2:3 h3:2 h4:2; do
    local o; o=$(grep -o "{[^{}]*\"host\":\"${h%:*}\"[^{}]*}" <<<"$j")
    grep -q '"connected":true' <<<"$o" && grep -q "\"tunnels_up\":${h#*:}[,}]" <<<"$o" &&
      grep -q "\"tunnels_total\":${h#*:}[,}]" <<<"$o" || return 1
  done
}
check "ipfleet status -o json: every tunnel up on every host" wait_for 30 all_up
ipf status | tee "$W/status.txt"
for h in h2 h3 h4; do ip netns exec "$h" ip -s xfrm state >"$W/xfrm-$h-1.txt" 2>&1; done

# --- 3. flush-sa from the centre -----------------------------------------------------------------
note "flush-sa h2 --wait"
spis0=$(sa_spis h2 h3)
pinger_start flush h2 h3 100
wait_for 10 grep -q seq= "$W/ping-flush.out"
t0=$(now_ms)
check "flush-sa h2 --wait" bash -c "ip netns exec h1 $CLI --controller unix:$W/ctl/admin.sock -o json flush-sa h2 --wait \
  --wait-timeout 20 >$W/flush.json 2>&1"
t1=$(now_ms)
check "traffic flows again after flush-sa" wait_for 10 pinger_replied_after flush "$t1" 100
sleep 1
pinger_stop flush
gap=$(pinger_gap_ms flush "$t0" 100)
recovery=$(grep -o '"recovery_ms": *"*[0-9]*' "$W/flush.json" | grep -o '[0-9]*$' | head -1)
echo "e2e: TIMING flush-sa: CLI round trip $((t1 - t0)) ms; traffic gap after the command $gap ms (10/s ping);" \
  "agent recovery_ms ${recovery:-?}"
check "flush-sa target: traffic flowing within 1 s of the command ($gap ms)" test "$gap" -le 1000
# The old inbound SA stays for the rekey grace period (2 s) to catch packets in flight.
old_sas_gone() { none_left "$spis0" h2 h3 && none_left "$spis0" h3 h2; }
check "flush-sa deleted h2<->h3's old SAs on both ends ($spis0)" wait_for 10 old_sas_gone
spis1=$(sa_spis h2 h3)
check "flush-sa replaced h2<->h3's SAs ('$spis0' -> '$spis1')" disjoint "$spis0" "$spis1"
a0=$(sa_pkts h2 h3); b0=$(sa_pkts h3 h2)
ip netns exec h2 ping -c 3 -i 0.2 -W 1 -I "$(inner h2)" "$(inner h3)" >/dev/null 2>&1
check "ESP counters rise on the new SAs at both ends" test "$(sa_pkts h2 h3)" -ge $((a0 + 3)) -a "$(sa_pkts h3 h2)" -ge $((b0 + 3))
check "forced renegotiation (flush-sa) counted in h2's /metrics" wait_for 10 forced_at_least h2 flush-sa 1
forced_reported() { [ "$(host_field h2 forced_renegotiations)" -ge 1 ] 2>/dev/null; }
check "forced renegotiation reported to the controller (ipfleet status)" wait_for 15 forced_reported
check "ping h2 -> h5 (charon) after flush-sa" wait_for 10 pingable h2 h5

# --- 4. a peer loses its state: agent SIGKILLed, XFRM flushed, restarted --------------------------
note "h3 loses its state (SIGKILL, ip xfrm flush, restart)"
spis0=$(sa_spis h2 h3)
pinger_start stale h2 h3 200
wait_for 10 grep -q seq= "$W/ping-stale.out"
stale0=$(forced_count h2 stale-child-sa); stale0=${stale0:-0}
live0=$(forced_count h2 ike-liveness-failed); live0=${live0:-0}
ic0=$(forced_count h2 initial-contact); ic0=${ic0:-0}
eval "kill -9 \$APID_h3"
ip netns exec h3 ip xfrm state flush
ip netns exec h3 ip xfrm policy flush
t0=$(now_ms)
start_agent h3
if wait_for 30 pinger_replied_after stale "$t0" 200; then
  t1=$(now_ms)
  gap=$(pinger_gap_ms stale "$t0" 200)
  ok "traffic h2 -> h3 restored after h3 lost its state"
  echo "e2e: TIMING peer state loss (h3 SIGKILL + xfrm flush) to traffic restored: $gap ms (5/s ping; liveness interval ${LIVENESS}s)"
  check "restored within twice the liveness interval ($gap ms <= $((2 * LIVENESS * 1000)) ms)" test "$gap" -le $((2 * LIVENESS * 1000))
else
  bad "traffic h2 -> h3 restored after h3 lost its state"
fi
pinger_stop stale
# Whichever came first: h2's own detection (counters + probe, or liveness) or h3's INITIAL_CONTACT
# after its restart, which makes h2's engine drop the SAs h3 lost.
stale_reported() {
  local s l i; s=$(forced_count h2 stale-child-sa); l=$(forced_count h2 ike-liveness-failed)
  i=$(forced_count h2 initial-contact)
  [ $(( ${s:-0} + ${l:-0} + ${i:-0} )) -gt $((stale0 + live0 + ic0)) ]
}
check "h2 reported the stale SA as a forced renegotiation (stale-child-sa / ike-liveness-failed / initial-contact)" \
  wait_for 10 stale_reported
grep -h "event=forced_renegotiation" "$W/agent-h2.log" | tail -n 3
spis1=$(sa_spis h2 h3)
check "h2<->h3 runs on new SAs ('$spis0' -> '$spis1')" disjoint "$spis0" "$spis1"
check "ping h3 -> h4 after h3's restart" wait_for 20 pingable h3 h4

# --- 5. charon silently loses its CHILD_SA (kernel state deleted behind its back) ------------------------
note "charon's CHILD_SA deleted behind its back"
swan --list-sas >"$W/swanctl-sas-2.txt" 2>&1
ike_spi0=$(grep -o '[0-9a-f]\{16\}_i' "$W/swanctl-sas-2.txt" | head -1)
spis0=$(sa_spis h5 h2)
pinger_start ext h2 h5 200
wait_for 10 grep -q seq= "$W/ping-ext.out"
stale0=$(forced_count h2 stale-child-sa); stale0=${stale0:-0}
for spi in $spis0; do
  for d in "src 192.0.2.5 dst 192.0.2.2" "src 192.0.2.2 dst 192.0.2.5"; do
    ip netns exec h5 ip xfrm state delete $d proto esp spi "$spi" 2>/dev/null
  done
done
t0=$(now_ms)
check "h5's ESP states are gone ($spis0)" none_left "$spis0" h5 h2
if wait_for 30 pinger_replied_after ext "$t0" 200; then
  gap=$(pinger_gap_ms ext "$t0" 200)
  ok "traffic h2 -> charon restored"
  echo "e2e: TIMING charon CHILD_SA lost to traffic restored: $gap ms (5/s ping; liveness interval ${LIVENESS}s)"
  check "restored within twice the liveness interval ($gap ms <= $((2 * LIVENESS * 1000)) ms)" test "$gap" -le $((2 * LIVENESS * 1000))
else
  bad "traffic h2 -> charon restored"
fi
pinger_stop ext
check "h2 detected it from counters + probe (stale-child-sa)" wait_for 10 forced_at_least h2 stale-child-sa $((stale0 + 1))
swan --list-sas >"$W/swanctl-sas-3.txt" 2>&1
ike_spi1=$(grep -o '[0-9a-f]\{16\}_i' "$W/swanctl-sas-3.txt" | head -1)
check "charon's IKE_SA stayed the same ($ike_spi0)" test -n "$ike_spi0" -a "$ike_spi0" = "$ike_spi1"
check "charon has a new CHILD_SA INSTALLED" grep -q INSTALLED "$W/swanctl-sas-3.txt"
spis1=$(sa_spis h5 h2)
check "new ESP SAs in h5's kernel ('$spis0' -> '$spis1')" disjoint "$spis0" "$spis1"
a0=$(sa_pkts h5 h2)
ip netns exec h2 ping -c 3 -i 0.2 -W 1 -I "$(inner h2)" "$(inner h5)" >/dev/null 2>&1
check "ESP counters rise in h5's kernel" test "$(sa_pkts h5 h2)" -ge $((a0 + 6))

# --- 8 (checked before the controller is deliberately stopped in step 7) ----------------------------
sessions_h2=$(grep -c "event=session_connected" "$W/agent-h2.log")
check "h2's session to the controller never dropped ($sessions_h2 connection(s), no session_closed)" \
  bash -c "[ $sessions_h2 = 1 ] && ! grep -q 'event=session_closed' $W/agent-h2.log"
check "h4's session never dropped" bash -c "! grep -q 'event=session_closed' $W/agent-h4.log"
opens=$(grep -c "event=session_open host=h2" "$W/controller.log")
check "controller saw one session of h2 ($opens)" test "$opens" = 1

# --- 6. revoke h4 and roll out: its tunnels go down everywhere ------------------------------------
note "revoke h4 and roll out"
check "revoke h4" ipf cert revoke h4 --reason keyCompromise
# h4 cannot acknowledge (its session is refused), so the rollout's own verdict is not the judge:
# the bundle versions h2 and h3 report to the controller are.
ipf rollout start --wait --wave-timeout 20 >"$W/rollout-2.log" 2>&1
new_bundles() { [ "$(host_field h2 bundle_version)" -ge 2 ] && [ "$(host_field h3 bundle_version)" -ge 2 ]; } 2>/dev/null
check "rollout after revocation reached h2 and h3 (bundle version 2)" wait_for 30 new_bundles
# The tunnels stay in the inventory; they are down: no SA, and the policies stay (fail-closed), so
# traffic to h4 is dropped rather than sent in the clear.
no_sa_with_h4() { [ -z "$(sa_spis "$1" h4)" ]; }
check "h4's SAs gone on h2" wait_for 30 no_sa_with_h4 h2
check "h4's SAs gone on h3" wait_for 30 no_sa_with_h4 h3
# grep reads all of its input here (no -q), as in none_left and disjoint: with pipefail, `grep -q`
# exiting at the first match made `ip` die of SIGPIPE when it had more to write, and a policy that was
# there read as missing (seen once in CI, depending on the order the kernel lists policies in).
h4_blocked() { ! pingable "$1" h4 && ip netns exec "$1" ip xfrm policy | grep "198.51.100.4/32" >/dev/null; }
check "traffic h2 -> h4 dropped, not sent in the clear (policy kept, no SA)" h4_blocked h2
no_sa_on_h4() { [ -z "$(sa_spis h4 h2)" ] && [ -z "$(sa_spis h4 h3)" ]; }
check "h4's own SAs with h2 and h3 deleted (its peers told it)" wait_for 30 no_sa_on_h4
h4_out() { [ "$(host_field h4 connected)" = false ]; }
check "h4 cannot re-authenticate to the controller" wait_for 30 h4_out
check "h2 <-> h3 still up after the revocation" wait_for 10 pingable h2 h3

# --- 7. a tampered and an older bundle are refused; running tunnels stay up ---------------------------
note "tampered and older bundles pushed by a stand-in controller"
spis0=$(sa_spis h2 h3)
kill "$CTL_PID"
wait "$CTL_PID" 2>/dev/null
ip netns exec h1 "$INJECTOR" --listen 192.0.2.1:7443 --host h2 --cert "$W/ctl/tls/controller.crt" \
  --key "$W/ctl/tls/controller.key" --ca "$W/ctl/ca/ca.crt" --tamper-from "$W/h2/state/last-good.bundle" \
  --older "$W/h2-first.bundle" --timeout 60 >"$W/injector.log" 2>&1
inj=$?
cat "$W/injector.log"
check "tampered bundle refused (bad signature) and older bundle refused (rollback)" test "$inj" = 0
refusals_counted() {
  local m; m=$(fetch_metrics h2)
  grep -q 'bundles_refused_total{reason="bad signature"} [1-9]' <<<"$m" && grep -q 'bundles_refused_total{reason="rollback"} [1-9]' <<<"$m"
}
check "both refusals counted in h2's /metrics" refusals_counted
check "h2 <-> h3 traffic still flows" pingable h2 h3
spis1=$(sa_spis h2 h3)
check "h2 <-> h3 SAs untouched by the refused bundles" test "$spis0" = "$spis1"
start_controller
check "h2 back on the real controller" wait_for 60 bash -c "[ \$(grep -c event=session_connected $W/agent-h2.log) -ge 2 ]"

finish
