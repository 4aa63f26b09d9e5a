#!/usr/bin/env bash
# The ipfleet fleet demo: a controller and three agents on namespace hosts inside the real-kernel
# lab (Debian's kernel under qemu, see deploy/lab/). Shows enrollment, a mesh rolled out in waves,
# the `ipfleet status` table, a ping through ESP with the kernel's counters, a remote flush-sa and
# its recovery. Needs root (the lab boots a VM and creates namespaces).
#   ./deploy/demo-fleet.sh            build (Release) and run the demo
#   ./deploy/demo-fleet.sh --inside AGENT CONTROLLER CLI   (what runs inside the lab)
set -uo pipefail
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

if [ "${1:-}" != "--inside" ]; then
  set -e
  cd "$(dirname "$0")/.."
  ROOT=$PWD
  [ "$(id -u)" = 0 ] || { echo "the demo needs root (it boots the lab VM)"; exit 1; }
  step "Building ipfleet (Release) into build-release/"
  cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build-release -j "$(nproc)" --target ipfleet-agent ipfleet-controller ipfleet
  step "Booting the lab: Debian's kernel under qemu, hosts h1 (controller), h2 h3 h4 (agents)"
  exec ./deploy/lab/run.sh --timeout 600 --hosts 4 -- "$ROOT/deploy/demo-fleet.sh" --inside \
    "$ROOT/build-release/agent/daemon/ipfleet-agent" "$ROOT/build-release/controller/ipfleet-controller" \
    "$ROOT/build-release/controller/cli/ipfleet"
fi

AGENT=$2 CTL=$3 CLI=$4
W=$(mktemp -d /tmp/ipfleet-demo.XXXXXX)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done' EXIT
ipf() { ip netns exec h1 "$CLI" --controller "unix:$W/ctl/admin.sock" "$@"; }
wait_for() { local end=$(($(date +%s) + $1)); shift; while [ "$(date +%s)" -lt "$end" ]; do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done; return 1; }

step "h1: initialise the controller (CA, TLS certificate, policy signer) and serve on 192.0.2.1:7443"
ip netns exec h1 "$CTL" init --data-dir "$W/ctl" --address 192.0.2.1 | tail -n 3
ip netns exec h1 "$CTL" serve --data-dir "$W/ctl" --listen 192.0.2.1:7443 >"$W/controller.log" 2>&1 &
PIDS+=($!)
wait_for 30 test -S "$W/ctl/admin.sock"

for n in 2 3 4; do
  h=h$n
  step "Add $h to the inventory; enroll it with its one-time token (its key never leaves $h)"
  out=$(ipf -o json host add "$h" --address "192.0.2.$n" --label role=web)
  token=$(echo "$out" | sed -n 's/.*"token": *"\([^"]*\)".*/\1/p')
  fp=$(echo "$out" | sed -n 's/.*"ca_fingerprint": *"\([^"]*\)".*/\1/p')
  echo "CA fingerprint to pin: $fp"
  ip netns exec "$h" "$AGENT" enroll --controller 192.0.2.1:7443 --name "$h" --token "$token" \
    --ca-fingerprint "$fp" --ca-file "$W/ctl/ca/ca.crt" --data-dir "$W/$h"
  ip netns exec "$h" "$AGENT" run --data-dir "$W/$h" --health-interval 2 >"$W/agent-$h.log" 2>&1 &
  PIDS+=($!)
done

step "A fleet file: every host labelled role=web in one mesh"
cat >"$W/fleet.yaml" <<YAML
version: 1
defaults: {mode: tunnel, start_action: start, dpd: {interval_seconds: 5, stale_child_seconds: 3}}
hosts:
  h2: {labels: {role: web}, subnets: [198.51.100.2/32]}
  h3: {labels: {role: web}, subnets: [198.51.100.3/32]}
  h4: {labels: {role: web}, subnets: [198.51.100.4/32]}
meshes:
  - {name: web, select: {role: web}}
YAML
cat "$W/fleet.yaml"
ipf apply -f "$W/fleet.yaml"

step "Roll it out: a canary wave first, then the rest"
ipf rollout start --canary 34 --wave-size 2 --wait

step "ipfleet status"
sleep 3
ipf status

step "Ping h2 -> h3 through ESP, and the kernel's SA counters on h2"
ip netns exec h2 ping -c 3 -I 198.51.100.2 198.51.100.3
ip netns exec h2 ip -s xfrm state | grep -A 12 "src 192.0.2.2 dst 192.0.2.3" | grep -E "src|spi|bytes|packets" | head -n 8

step "Remote flush-sa of h2's SAs from the centre, and the recovery"
ipf flush-sa h2 --wait
ip netns exec h2 ping -c 2 -I 198.51.100.2 198.51.100.3
ipf status
step "Done: logs in $W"
