#!/bin/bash
# ctest entry (labels e2e, lab): runs fleet_lab.sh inside the real-kernel lab, one VM boot with
# five namespace hosts (h1 controller, h2-h4 agents, h5 strongSwan's charon).
# Skips (exit 77, with the reason) only when the lab's prerequisites are absent: root, qemu, the
# Debian kernel image (deploy/lab/prepare.sh fetches it with apt-get download), charon/swanctl.
# Everything else that goes wrong is a failure. Bounded by the lab's own timeout.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
skip() { echo "e2e: SKIPPED: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root (boots a VM, creates network namespaces)"
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 missing (deploy/install-deps.sh installs it)"
for t in /usr/lib/ipsec/charon /usr/sbin/swanctl; do
  [ -x "$t" ] || skip "$t missing (strongswan-charon, strongswan-swanctl: deploy/install-deps.sh)"
done
if ! "$ROOT/deploy/lab/prepare.sh" >/tmp/ipfleet-e2e-prepare.$$ 2>&1; then
  tail -n 5 /tmp/ipfleet-e2e-prepare.$$
  rm -f /tmp/ipfleet-e2e-prepare.$$
  skip "the lab's kernel image could not be prepared (deploy/lab/prepare.sh: apt-get download linux-image-amd64)"
fi
rm -f /tmp/ipfleet-e2e-prepare.$$
# The guest reads binaries from the host over 9p while they might be rebuilt (another build in
# the same tree): run private copies.
BIN=$(mktemp -d /tmp/ipfleet-e2e-bin.XXXXXX)
trap 'rm -rf "$BIN"' EXIT
copies=()
# Without debug info (most of an ASan binary's size): the guest reads them over 9p under emulation.
for f in "$@"; do
  dst=$BIN/$(basename "$f")
  objcopy --strip-debug "$f" "$dst" 2>/dev/null || cp "$f" "$dst"
  copies+=("$dst")
done
"$ROOT/deploy/lab/run.sh" --timeout "${IPFLEET_E2E_TIMEOUT:-540}" --hosts 5 -- "$HERE/fleet_lab.sh" "${copies[@]}"
