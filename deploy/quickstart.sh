#!/usr/bin/env bash
# ipfleet quickstart: installs dependencies, builds, and walks through the controller's CA:
# initialise a data directory, issue a host certificate from a CSR, revoke it, show the CRL.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "Installing dependencies (apt, only what is missing)"
./deploy/install-deps.sh

step "Building (Release) into build-release/"
cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-release -j "$(nproc)" --target ipfleet-controller
CTL=$ROOT/build-release/controller/ipfleet-controller

DEMO=$(mktemp -d /tmp/ipfleet-quickstart.XXXXXX)
trap 'rm -rf "$DEMO"' EXIT
DATA=$DEMO/controller

step "Initialising a controller data directory in $DATA"
"$CTL" init --data-dir "$DATA" --name quickstart-fleet --address 127.0.0.1
ls -l "$DATA" "$DATA/ca"

step "A host generates its own key and CSR (the key never leaves the host)"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout "$DEMO/web1.key" -subj /CN=whatever-the-host-asks-for -out "$DEMO/web1.csr" 2>/dev/null
echo "CSR written: $DEMO/web1.csr"

step "The CA issues web1's certificate; subject and SANs come from the inventory, not the CSR"
"$CTL" ca issue --data-dir "$DATA" --csr "$DEMO/web1.csr" --name web1 \
  --ip 192.0.2.10 --dns web1.example.net --days 30 --out "$DEMO/web1.crt"
openssl x509 -in "$DEMO/web1.crt" -noout -subject -serial -ext subjectAltName,extendedKeyUsage
openssl verify -CAfile "$DATA/ca/ca.crt" "$DEMO/web1.crt"
SERIAL=$(openssl x509 -in "$DEMO/web1.crt" -noout -serial | cut -d= -f2)

step "Revoking web1's certificate (serial $SERIAL)"
"$CTL" ca revoke --data-dir "$DATA" --serial "$SERIAL" --reason keyCompromise

step "The CRL now lists it"
"$CTL" ca crl --data-dir "$DATA" --out "$DEMO/crl.pem"
openssl crl -in "$DEMO/crl.pem" -CAfile "$DATA/ca/ca.crt" -verify -noout -text 2>&1 | sed -n '1,20p'
if openssl verify -crl_check -CAfile "$DATA/ca/ca.crt" -CRLfile "$DEMO/crl.pem" "$DEMO/web1.crt" >/dev/null 2>&1; then
  echo "unexpected: revoked certificate still verifies" >&2
  exit 1
fi
echo "openssl verify -crl_check now refuses web1.crt: certificate revoked"

step "Done. Next: ./tests/run.sh runs the whole test suite."
