#!/usr/bin/env bash
# Prepares the real-kernel lab (cached in deploy/lab/cache/, git-ignored):
#   * Debian's kernel (the package linux-image-amd64 resolves to) and busybox-static, fetched with
#     `apt-get download` and unpacked with `dpkg-deb -x` (nothing is installed on the host);
#   * modules.dep built with `busybox depmod` (the host has no kmod);
#   * an initramfs with busybox, the IPsec/9p/veth modules in dependency order and deploy/lab/init.
# Prints the cache directory's "KEY=VALUE" facts (KERNEL_VERSION, VMLINUZ, INITRAMFS) on stdout.
set -euo pipefail
LAB=$(cd "$(dirname "$0")" && pwd)
CACHE=${IPFLEET_LAB_CACHE:-$LAB/cache}
mkdir -p "$CACHE"
cd "$CACHE"
# Several lab runs may start at once (ctest -j): one prepares, the others wait for the cache.
exec 9>"$CACHE/.prepare.lock"
flock 9
log() { echo "lab-prepare: $*" >&2; }

# Modules the lab needs. Those marked by modules.dep pull in their dependencies; the crypto
# helpers at the end are not revealed by modules.dep but `ip xfrm state add` needs them
# ("Kernel was unable to initialize cryptographic operations" otherwise).
MODULES=(
  virtio_pci virtio-rng 9pnet 9pnet_virtio 9p overlay veth bridge
  xfrm_user xfrm_algo esp4 esp6 xfrm_interface xfrm4_tunnel xfrm6_tunnel tunnel4 tunnel6
  gcm ghash-generic ctr seqiv echainiv authenc authencesn cryptd crypto_simd aesni-intel
  ghash-clmulni-intel sha256-ssse3 sha512-ssse3 cbc hmac sha1_generic sha256_generic
  sha512_generic sha3_generic jitterentropy_rng drbg aes_generic
)

resolve_kernel_package() {
  apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'
}

fetch() {  # fetch PKG DIR: download the .deb once and unpack it into DIR
  local pkg=$1 dir=$2
  [ -f "$dir/.done" ] && return 0
  if ! ls "${pkg}"_*.deb >/dev/null 2>&1; then
    log "apt-get download $pkg"
    apt-get download -q "$pkg" >&2
  fi
  rm -rf "$dir"
  dpkg-deb -x "$(ls "${pkg}"_*.deb | head -1)" "$dir"
  touch "$dir/.done"
}

KPKG=$(resolve_kernel_package)
if [ -z "$KPKG" ]; then
  log "apt lists do not resolve linux-image-amd64; running apt-get update"
  apt-get update -qq >&2
  KPKG=$(resolve_kernel_package)
fi
[ -n "$KPKG" ] || { log "cannot resolve linux-image-amd64"; exit 1; }
fetch "$KPKG" "kernel-$KPKG"
fetch busybox-static busybox
KDIR=$CACHE/kernel-$KPKG
BUSYBOX=$CACHE/busybox/bin/busybox
KVER=$(ls "$KDIR/lib/modules" | head -1)
VMLINUZ=$KDIR/boot/vmlinuz-$KVER
[ -f "$VMLINUZ" ] || { log "no $VMLINUZ in $KPKG"; exit 1; }
if [ ! -f "$KDIR/lib/modules/$KVER/modules.dep" ]; then
  log "busybox depmod $KVER"
  "$BUSYBOX" depmod -b "$KDIR" "$KVER"
fi

# The initramfs is rebuilt when its inputs change (init script, module list, kernel).
KEY=$( (echo "$KVER ${MODULES[*]}"; cat "$LAB/init") | sha256sum | cut -c1-16)
INITRAMFS=$CACHE/initramfs-$KEY.cpio.gz
if [ ! -f "$INITRAMFS" ]; then
  log "building initramfs for $KVER"
  MODDIR=$KDIR/lib/modules/$KVER
  declare -A path_of=() deps_of=() loaded=()
  while IFS= read -r line; do
    mod=${line%%:*}
    name=$(basename "$mod"); name=${name%%.ko*}; name=${name//-/_}
    path_of[$name]=$mod
    deps_of[$name]=${line#*:}
  done <"$MODDIR/modules.dep"
  order=()
  visit() {  # dependencies first
    local n=${1//-/_} d dn
    [ -n "${loaded[$n]:-}" ] && return 0
    loaded[$n]=1
    for d in ${deps_of[$n]}; do
      dn=$(basename "$d"); dn=${dn%%.ko*}
      visit "$dn"
    done
    order+=("$n")
  }
  for m in "${MODULES[@]}"; do
    n=${m//-/_}
    if [ -n "${path_of[$n]:-}" ]; then
      visit "$n"
    elif grep -q "/${m}.ko\|/${n}.ko" "$MODDIR/modules.builtin" 2>/dev/null; then
      :  # built into the kernel
    else
      log "note: module $m neither built in nor present"
    fi
  done
  ROOT=$(mktemp -d)
  trap 'rm -rf "$ROOT"' EXIT
  mkdir -p "$ROOT"/{bin,dev,proc,sys,lower,rw,newroot,results,modules}
  cp "$BUSYBOX" "$ROOT/bin/busybox"
  ln -s busybox "$ROOT/bin/sh"
  i=0
  for n in "${order[@]}"; do
    src=$MODDIR/${path_of[$n]}
    dst=$ROOT/modules/$(printf '%03d' $i)-$n.ko
    case "$src" in
      *.ko.xz) xz -dc "$src" >"$dst" ;;
      *.ko.zst) zstd -qdc "$src" >"$dst" ;;
      *.ko.gz) gzip -dc "$src" >"$dst" ;;
      *) cp "$src" "$dst" ;;
    esac
    i=$((i + 1))
  done
  install -m 0755 "$LAB/init" "$ROOT/init"
  (cd "$ROOT" && find . | cpio -o -H newc --quiet | gzip -1) >"$INITRAMFS.tmp"
  mv "$INITRAMFS.tmp" "$INITRAMFS"
  log "initramfs with ${#order[@]} modules: $INITRAMFS"
fi
echo "KERNEL_PACKAGE=$KPKG"
echo "KERNEL_VERSION=$KVER"
echo "VMLINUZ=$VMLINUZ"
echo "INITRAMFS=$INITRAMFS"
