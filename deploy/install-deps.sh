#!/usr/bin/env bash
# Installs every Debian 12 package that ipfleet's build, tests, lab and benchmarks use.
# Idempotent: packages already present are skipped, apt is only touched when something is missing.
set -euo pipefail

PACKAGES=(
  # build
  build-essential cmake pkg-config ninja-build git
  # libraries
  libssl-dev libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  libspdlog-dev libfmt-dev libcli11-dev libmnl-dev libsqlite3-dev libpq-dev libyaml-cpp-dev
  nlohmann-json3-dev libsystemd-dev
  # HTTP(S) for /metrics and the controller's dashboard
  libcpp-httplib-dev
  # the controller's allocator (tcmalloc: less RSS per agent session than glibc malloc)
  libgoogle-perftools-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev clang libclang-rt-14-dev
  openssl sqlite3 iproute2 procps util-linux python3
  # the shared inventory of several controllers: tests start a throwaway server with initdb/pg_ctl
  postgresql
  # dashboard tests: /metrics read by Prometheus' reference parser, pages driven in headless Chromium
  python3-prometheus-client chromium chromium-driver
  # interop peers and wire checks
  strongswan-charon strongswan-swanctl libcharon-extra-plugins libstrongswan-standard-plugins tshark nftables
  # real-kernel lab: the kernel and busybox are fetched as .deb files by deploy/lab, qemu runs them
  qemu-system-x86 cpio
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# tshark asks whether non-root users may capture; answer no without a prompt.
echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
