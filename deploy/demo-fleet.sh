#!/usr/bin/env bash
# The ipfleet fleet demo, run by ./deploy/quickstart.sh: a controller and three agents on namespace
# hosts inside the real-kernel lab (Debian's kernel under qemu, see deploy/lab/ — this machine's own
# kernel may lack ESP, the lab's has it). Shows enrollment, a mesh rolled out in waves, the
# `ipfleet status` table, a ping through ESP with the kernel's counters, a remote flush-sa and its
# recovery.
#   ./deploy/demo-fleet.sh [BUILD_DIR]                 build (Release) if needed and run the demo
#   ./deploy/demo-fleet.sh --inside AGENT CONTROLLER CLI   (what runs inside the lab VM)
set -uo pipefail
bold() { printf '\033[1m%s\033[0m\n' "$*"; }
step() { printf '\n'; bold "==> $*"; }
say() { printf '    %s\n' "$*"; }
run() { printf '\033[2m    $ %s\033[0m\n' "$*"; }   # show the command a user would type

if [ "${1:-}" != "--inside" ]; then
  set -e
  cd "$(dirname "$0")/.."
  ROOT=$PWD
  BUILD=${1:-$ROOT/build-release}
  if [ "$(id -u)" != 0 ] || ! command -v qemu-system-x86_64 >/dev/null; then
    echo "The fleet demo boots a small VM (qemu) with Debian's kernel and creates network namespaces"
    echo "in it, because real ESP packets need a kernel with ESP: run it as root with qemu installed"
    echo "(deploy/install-deps.sh installs qemu)."
    exit 1
  fi
  if [ ! -x "$BUILD/agent/daemon/ipfleet-agent" ] || [ ! -x "$BUILD/controller/ipfleet-controller" ] ||
     [ ! -x "$BUILD/controller/cli/ipfleet" ]; then
    step "Building ipfleet (Release) into $BUILD"
    cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$BUILD" -j "$(nproc)" --target ipfleet-agent ipfleet-controller ipfleet
  fi
  # Private copies: the VM reads them over 9p while a rebuild could replace them.
  BIN=$(mktemp -d /tmp/ipfleet-demo-bin.XXXXXX)
  trap 'rm -rf "$BIN"' EXIT
  cp "$BUILD/agent/daemon/ipfleet-agent" "$BUILD/controller/ipfleet-controller" "$BUILD/controller/cli/ipfleet" "$BIN/"
  step "Booting the lab VM (Debian's kernel under qemu; software emulation can take a minute)"
  say "inside: network namespaces h1 (controller) and h2 h3 h4 (agents) on one bridge, 192.0.2.0/24"
  set +e
  ./deploy/lab/run.sh --timeout 600 --hosts 4 -- "$ROOT/deploy/demo-fleet.sh" --inside \
    "$BIN/ipfleet-agent" "$BIN/ipfleet-controller" "$BIN/ipfleet"
  exit $?
fi

AGENT=$2 CTL=$3 CLI=$4
W=$(mktemp -d /tmp/ipfleet-demo.XXXXXX)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null' EXIT
ipf() { ip netns exec h1 "$CLI" --controller "unix:$W/ctl/admin.sock" "$@"; }
wait_for() { local end=$(($(date +%s) + $1)); shift; while [ "$(date +%s)" -lt "$end" ]; do "$@" >/dev/null 2>&1 && return 0; sleep 0.3; done; return 1; }
die() { printf '\033[31m    demo failed: %s\033[0m\n' "$*"; for f in "$W"/*.log; do echo "---- $f"; tail -n 15 "$f"; done; exit 1; }
sa_lines() {  # the SA pair between h2 and h3 as h2's kernel sees it: SPI and packet counters
  ip netns exec h2 ip -s xfrm state | awk '
    /^src / { m = ($0 ~ /192\.0\.2\.[23] dst 192\.0\.2\.[23]/); if (m) hdr = $1 " " $2 " " $3 " " $4 }
    m && /proto esp spi/ { spi = $4 }
    m && /\(packets\)/ { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+\(packets\)/) { p = $i } }
    m && /^[[:space:]]*stats:/ { printf "      %-32s spi %s  %s\n", hdr, spi, p; m = 0 }'
}
all_up() { [ "$(ipf -o json status | tr -d ' \n' | grep -o '"tunnels_up":2,"tunnels_total":2' | wc -l)" = 3 ]; }

step "h1: create the controller's data directory (CA, TLS certificate, policy signer, inventory)"
run "ipfleet-controller init --data-dir DIR --address 192.0.2.1"
ip netns exec h1 "$CTL" init --data-dir "$W/ctl" --address 192.0.2.1 >"$W/init.log" 2>&1 || die "controller init"
say "CA: $(openssl x509 -in "$W/ctl/ca/ca.crt" -noout -subject | sed 's/^subject=//')"
run "ipfleet-controller serve --data-dir DIR --listen 192.0.2.1:7443"
ip netns exec h1 "$CTL" serve --data-dir "$W/ctl" --listen 192.0.2.1:7443 >"$W/controller.log" 2>&1 &
PIDS+=($!)
wait_for 60 test -S "$W/ctl/admin.sock" || die "controller did not start"
say "serving agents on 192.0.2.1:7443, the CLI on $W/ctl/admin.sock"

for n in 2 3 4; do
  h=h$n
  step "Add $h to the inventory and enroll it with its one-time token"
  run "ipfleet host add $h --address 192.0.2.$n --label role=web"
  out=$(ipf -o json host add "$h" --address "192.0.2.$n" --label role=web) || die "host add $h"
  token=$(echo "$out" | sed -n 's/.*"token": *"\([^"]*\)".*/\1/p')
  fp=$(echo "$out" | sed -n 's/.*"ca_fingerprint": *"\([^"]*\)".*/\1/p')
  run "ipfleet-agent enroll --controller 192.0.2.1:7443 --name $h --token ${token:0:8}... --ca-fingerprint ${fp:0:23}..."
  ip netns exec "$h" "$AGENT" enroll --controller 192.0.2.1:7443 --name "$h" --token "$token" \
    --ca-fingerprint "$fp" --data-dir "$W/$h" >"$W/enroll-$h.log" 2>&1 || die "enroll $h"
  say "$h made its own key (never sent), pinned the CA by fingerprint, got: $(openssl x509 -in "$W/$h/tls/host.crt" -noout -ext subjectAltName | tail -n 1 | sed 's/^ *//')"
  ip netns exec "$h" "$AGENT" run --data-dir "$W/$h" --health-interval 2 >"$W/agent-$h.log" 2>&1 &
  PIDS+=($!)
done
wait_for 60 bash -c "[ \$(ip netns exec h1 $CLI --controller unix:$W/ctl/admin.sock -o json status | grep -c '\"connected\": *true') = 3 ]" \
  || die "agents did not connect"

step "A fleet file: the three hosts labelled role=web form one mesh (3 tunnels)"
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
sed 's/^/      /' "$W/fleet.yaml"
run "ipfleet apply -f fleet.yaml"
ipf apply -f "$W/fleet.yaml" | sed 's/^/      /' || die "apply"

step "Roll it out: a canary wave first, then the rest (each host verifies the signed bundle)"
run "ipfleet rollout start --canary 34 --wave-size 2 --wait"
ipf rollout start --canary 34 --wave-size 2 --wave-timeout 120 --wait 2>&1 | sed 's/^/      /'
wait_for 60 all_up || say "(not every tunnel reported up yet)"

step "ipfleet status: one line per host, from the agents' health reports"
run "ipfleet status"
ipf status | sed 's/^/      /'

step "Ping h2 -> h3 between their protected addresses; the kernel counts ESP packets on both SAs"
say "before:"
sa_lines
run "ping -c 3 -I 198.51.100.2 198.51.100.3      (on h2)"
ip netns exec h2 ping -c 3 -i 0.3 -I 198.51.100.2 198.51.100.3 | sed 's/^/      /'
say "after (ip -s xfrm state on h2):"
sa_lines

step "Remote flush-sa: h2 negotiates new SAs, then deletes the old ones (telling its peers)"
run "ipfleet flush-sa h2 --wait"
ipf flush-sa h2 --wait --wait-timeout 30 2>&1 | sed 's/^/      /'
say "new SAs (different SPIs; the old inbound SA stays 2 s for packets in flight), traffic flows:"
ip netns exec h2 ping -c 2 -i 0.3 -I 198.51.100.2 198.51.100.3 | sed 's/^/      /'
sa_lines
sleep 2
run "ipfleet status"
ipf status | sed 's/^/      /'

step "Done. What you saw ran on Debian's kernel in the lab VM; the logs were in $W (gone with the VM)."
say "Next: ./tests/run.sh runs the whole suite, including this fleet end to end (tests/e2e)."
