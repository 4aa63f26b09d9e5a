#!/bin/bash
# ctest entry (label e2e): runs fleet_lab.sh inside the real-kernel lab. Skips (exit 77) when not
# root or when qemu is missing. Bounded by the lab's own timeout.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
[ "$(id -u)" = 0 ] || { echo "e2e: skipped (needs root)"; exit 77; }
command -v qemu-system-x86_64 >/dev/null || { echo "e2e: skipped (qemu-system-x86_64 missing)"; exit 77; }
exec "$ROOT/deploy/lab/run.sh" --timeout "${IPFLEET_E2E_TIMEOUT:-780}" --hosts 4 -- "$HERE/fleet_lab.sh" "$@"
