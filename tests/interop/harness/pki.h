// Certificates for interop: every host makes its own ECDSA P-256 key and CSR (openssl CLI), and our CA
// (`ipfleet-controller init` / `ca issue`) issues the certificate with the host's IP and DNS name in SAN.
// When no controller binary is available the harness falls back to an openssl CLI CA with the same profile
// (and says so in `issuer`), so the harness self-test does not depend on the CA being built.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "ipfleet/common/status.h"

namespace ipfleet::interop {

struct PkiHostSpec {
  std::string name;  // e.g. host1
  std::string ip;    // SAN IP
  std::string dns;   // SAN DNS (also used as the IKE identity)
};

struct PkiHost {
  PkiHostSpec spec;
  std::filesystem::path cert;  // PEM
  std::filesystem::path key;   // PEM, 0600
  std::filesystem::path chain; // MakeChainPki only: cert, then the intermediates up to the root (PEM)
};

struct Pki {
  std::filesystem::path ca_cert;
  std::vector<PkiHost> hosts;
  std::string issuer;  // "ipfleet-controller" or "openssl-cli"
  std::filesystem::path data_dir;  // controller data dir (ipfleet CA only)
  std::vector<std::filesystem::path> intermediates;  // MakeChainPki only, root-side first
};

// `controller` may be empty (openssl fallback). Files go under `dir`.
absl::StatusOr<Pki> MakePki(const std::filesystem::path& dir, const std::vector<PkiHostSpec>& hosts,
                            const std::string& controller);

// A deeper hierarchy from the openssl CLI (same host profile): root -> `intermediates` CA certs -> hosts.
// Each host's `chain` file holds its certificate and the intermediates, so an IKE_AUTH carrying the chain
// is large (fragmentation interop).
absl::StatusOr<Pki> MakeChainPki(const std::filesystem::path& dir, const std::vector<PkiHostSpec>& hosts,
                                 int intermediates);

// The controller binary the build configured (IPFLEET_INTEROP_CONTROLLER), overridable through the
// environment variable of the same name; "" when there is none or it is not executable.
std::string ConfiguredController();

}  // namespace ipfleet::interop
