#!/usr/bin/env bash
# The whole suite: installs dependencies, builds (ASan+UBSan), runs every ctest tier.
# Exit status is non-zero on any failure. Tiers can be run alone afterwards, e.g.
#   ctest --test-dir build -L unit
# Tiers that need root (netns, lab, interop, e2e) skip themselves when not root.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
JOBS=$(nproc)

./deploy/install-deps.sh

echo "== build (ASan+UBSan) =="
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Asan -DIPFLEET_ASAN_OPT=-O0 -DIPFLEET_BENCH=OFF >/dev/null
cmake --build build -j "$JOBS"

echo "== build fuzz targets (clang, libFuzzer) =="
CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIPFLEET_FUZZ=ON \
  -DIPFLEET_BENCH=OFF >/dev/null
cmake --build build-fuzz -j "$JOBS" --target ipfleet_fuzzers

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

status=0
echo "== ctest: all tiers =="
ctest --test-dir build --output-on-failure -j "$JOBS" --timeout 900 || status=1
echo "== ctest: fuzz =="
ctest --test-dir build-fuzz --output-on-failure -L fuzz || status=1
exit $status
