#!/usr/bin/env bash
# ipfleet quickstart: installs dependencies, builds (Release, build-release/), and runs the fleet
# demo (deploy/demo-fleet.sh): a controller and three agents enrolled with tokens, a mesh rolled
# out in waves, the `ipfleet status` table, a ping through ESP with the kernel's counters, and a
# remote flush-sa with its recovery.
# Real ESP needs a kernel with ESP and namespaces: the demo runs in the lab VM (Debian's kernel
# under qemu, deploy/lab/), which needs root. Without root it walks through the CA only.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${IPFLEET_BUILD_DIR:-$ROOT/build-release}
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "Installing dependencies (apt, only what is missing)"
./deploy/install-deps.sh

step "Building (Release) into $BUILD"
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j "$(nproc)" --target ipfleet-agent ipfleet-controller ipfleet

if [ "$(id -u)" = 0 ] && command -v qemu-system-x86_64 >/dev/null; then
  exec ./deploy/demo-fleet.sh "$BUILD"
fi

step "Not root: the fleet demo (real ESP in the lab VM) needs root; showing the CA instead"
echo "    Run 'sudo ./deploy/quickstart.sh' for the fleet: enrollment, rollout, status, ESP, flush-sa."
CTL=$BUILD/controller/ipfleet-controller
DEMO=$(mktemp -d /tmp/ipfleet-quickstart.XXXXXX)
trap 'rm -rf "$DEMO"' EXIT
DATA=$DEMO/controller
step "Initialising a controller data directory in $DATA"
"$CTL" init --data-dir "$DATA" --name quickstart-fleet --address 127.0.0.1
step "A host generates its own key and CSR; the CA issues its certificate (SANs from the inventory)"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout "$DEMO/web1.key" -subj /CN=whatever-the-host-asks-for -out "$DEMO/web1.csr" 2>/dev/null
"$CTL" ca issue --data-dir "$DATA" --csr "$DEMO/web1.csr" --name web1 \
  --ip 192.0.2.10 --dns web1.example.net --days 30 --out "$DEMO/web1.crt"
openssl x509 -in "$DEMO/web1.crt" -noout -subject -serial -ext subjectAltName,extendedKeyUsage
openssl verify -CAfile "$DATA/ca/ca.crt" "$DEMO/web1.crt"
SERIAL=$(openssl x509 -in "$DEMO/web1.crt" -noout -serial | cut -d= -f2)
step "Revoking web1's certificate; the CRL lists it and openssl refuses it"
"$CTL" ca revoke --data-dir "$DATA" --serial "$SERIAL" --reason keyCompromise
"$CTL" ca crl --data-dir "$DATA" --out "$DEMO/crl.pem"
if openssl verify -crl_check -CAfile "$DATA/ca/ca.crt" -CRLfile "$DEMO/crl.pem" "$DEMO/web1.crt" >/dev/null 2>&1; then
  echo "unexpected: revoked certificate still verifies" >&2
  exit 1
fi
echo "    openssl verify -crl_check: certificate revoked"
step "Done. Next: sudo ./deploy/quickstart.sh for the fleet demo; ./tests/run.sh for the test suite."
