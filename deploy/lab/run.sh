#!/usr/bin/env bash
# The real-kernel lab: boots Debian's own kernel (which has ESP) under qemu, with the host's root
# shared read-only over 9p under a writable overlay, creates namespace hosts joined by veth, runs
# CMD inside and returns its exit status and output. The VM is always torn down.
#
#   deploy/lab/run.sh [--timeout SECONDS] [--hosts N] [--] CMD [ARGS...]
#
# Inside, CMD runs as root in the VM's root namespace with the current directory kept, and
#   LAB_HOSTS="h1 h2 ..."   network namespaces; hN has 192.0.2.N/24 and 2001:db8::N/64 on eth0
#                           (all on bridge labbr0), 198.51.100.N/32 and 2001:db8:100::N/128 on lo,
#                           and routes to every other hM's 198.51.100.M via 192.0.2.M
#   IPFLEET_LAB=1
# Environment: IPFLEET_LAB_ACCEL=kvm|tcg forces the accelerator (default: KVM when it works,
# else TCG), IPFLEET_LAB_CACHE moves the cache (default deploy/lab/cache).
# Exit status: CMD's, or 124 on timeout, 125 when the lab itself failed.
set -euo pipefail
LAB=$(cd "$(dirname "$0")" && pwd)
TIMEOUT=300
HOSTS=3
while [ $# -gt 0 ]; do
  case "$1" in
    --timeout) TIMEOUT=$2; shift 2 ;;
    --hosts) HOSTS=$2; shift 2 ;;
    --) shift; break ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { echo "usage: $0 [--timeout S] [--hosts N] [--] CMD..." >&2; exit 125; }
log() { echo "lab: $*" >&2; }

command -v qemu-system-x86_64 >/dev/null || { log "qemu-system-x86_64 missing (deploy/install-deps.sh)"; exit 125; }
eval "$("$LAB/prepare.sh")" || { log "prepare failed"; exit 125; }
CACHE=${IPFLEET_LAB_CACHE:-$LAB/cache}

WORK=$(mktemp -d /tmp/ipfleet-lab.XXXXXX)
QPID=""
TPID=""
cleanup() {
  [ -n "$TPID" ] && kill "$TPID" 2>/dev/null || true
  if [ -n "$QPID" ] && kill -0 "$QPID" 2>/dev/null; then
    kill "$QPID" 2>/dev/null || true
    sleep 0.2
    kill -9 "$QPID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The job the guest's init runs (with the host's bash, inside the overlay root).
{
  echo '#!/bin/bash'
  echo 'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root'
  echo 'export IPFLEET_LAB=1'
  printf 'export LAB_NHOSTS=%d\n' "$HOSTS"
  printf 'source %q || exit 125\n' "$LAB/hosts.sh"
  printf 'cd %q\n' "$PWD"
  printf '%q ' "$@"
  echo
} >"$WORK/job.sh"

# boot ACCEL LIMIT [stream]: boots the VM, waits for the job (bounded), leaves $WORK/rc and
# $WORK/output; with "stream" the job's output is copied to stdout as it is written.
boot() {
  local accel=$1 limit=$2 stream=${3:-} cpu
  if [ "$accel" = kvm ]; then cpu=host; else accel="tcg,thread=multi"; cpu=max; fi
  rm -f "$WORK/rc" "$WORK/output" "$WORK/serial.log"
  qemu-system-x86_64 -nodefaults -display none -no-reboot -m 1536 -smp 2 \
    -accel "$accel" -cpu "$cpu" -kernel "$VMLINUZ" -initrd "$INITRAMFS" \
    -append "console=ttyS0 panic=-1 quiet loglevel=4 rdinit=/init cryptomgr.notests=1" \
    -serial "file:$WORK/serial.log" -nic none -device virtio-rng-pci \
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
    -virtfs "local,path=$WORK,mount_tag=results,security_model=none" \
    >"$WORK/qemu.log" 2>&1 &
  QPID=$!
  if [ -n "$stream" ]; then
    tail -F -n +1 --pid="$QPID" "$WORK/output" 2>/dev/null &
    TPID=$!
  fi
  local deadline=$((SECONDS + limit))
  while kill -0 "$QPID" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then
      log "timeout after ${limit}s, killing the VM"
      kill "$QPID" 2>/dev/null || true
      wait "$QPID" 2>/dev/null || true
      QPID=""
      return 124
    fi
    sleep 0.2
  done
  wait "$QPID" 2>/dev/null || true
  QPID=""
  if [ -n "$TPID" ]; then
    wait "$TPID" 2>/dev/null || true  # tail ends by itself once qemu is gone
    TPID=""
  fi
  [ -f "$WORK/rc" ] || return 125
  return 0
}

# KVM only when it really boots here (on a VM without nested virtualisation it aborts or hangs);
# the verdict is cached per host boot.
choose_accel() {
  if [ -n "${IPFLEET_LAB_ACCEL:-}" ]; then echo "$IPFLEET_LAB_ACCEL"; return; fi
  local stamp="$CACHE/kvm-verdict-$(cat /proc/sys/kernel/random/boot_id 2>/dev/null || echo x)"
  exec 8>"$CACHE/.accel.lock"
  flock 8  # concurrent runs wait for one probe
  if [ -f "$stamp" ]; then cat "$stamp"; return; fi
  local verdict=tcg
  if [ -w /dev/kvm ]; then
    local real_job="$WORK/job.sh"
    mv "$real_job" "$WORK/job.real"
    printf '#!/bin/bash\nexit 0\n' >"$real_job"
    if boot kvm 20 && [ "$(cat "$WORK/rc")" = 0 ]; then verdict=kvm; fi
    mv "$WORK/job.real" "$real_job"
  fi
  rm -f "$CACHE"/kvm-verdict-*
  echo "$verdict" >"$stamp"
  echo "$verdict"
}

ACCEL=$(choose_accel)
if [ "$ACCEL" = kvm ]; then
  log "accelerator: KVM"
else
  log "accelerator: TCG software emulation (KVM unavailable here), -cpu max"
fi
log "kernel $KERNEL_VERSION ($KERNEL_PACKAGE), hosts=$HOSTS, timeout=${TIMEOUT}s"
start=$SECONDS
set +e
boot "$ACCEL" "$TIMEOUT" stream
status=$?
set -e
if [ $status -eq 0 ]; then
  status=$(cat "$WORK/rc")
else
  log "VM did not complete the job (status $status); serial console:"
  tail -n 40 "$WORK/serial.log" >&2 || true
fi
log "done in $((SECONDS - start))s, exit status $status"
exit "$status"
