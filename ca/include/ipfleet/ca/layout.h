// Where the CA and the controller's key material live in the controller's data directory.
// Everyone (controller, CLI, tests) uses these helpers instead of spelling paths.
#pragma once

#include <filesystem>

namespace ipfleet::ca::layout {

using Path = std::filesystem::path;

inline Path CaDir(const Path& data_dir) { return data_dir / "ca"; }                    // 0700
inline Path CaCert(const Path& d) { return CaDir(d) / "ca.crt"; }                       // 0644
inline Path CaKey(const Path& d) { return CaDir(d) / "ca.key"; }                        // 0600
// Revocation list + CRL number (JSON, rewritten atomically on revoke / CRL generation only).
inline Path CaState(const Path& d) { return CaDir(d) / "state.json"; }                  // 0600
inline Path CaCrl(const Path& d) { return CaDir(d) / "ca.crl"; }                        // last CRL, 0644
inline Path PolicySignerCert(const Path& d) { return CaDir(d) / "policy-signer.crt"; }
inline Path PolicySignerKey(const Path& d) { return CaDir(d) / "policy-signer.key"; }   // 0600
// Certificates issued by the offline `ca issue` command (<serial_hex>.pem); the running
// controller keeps its certificates in the inventory database instead.
inline Path IssuedDir(const Path& d) { return CaDir(d) / "issued"; }
inline Path TlsDir(const Path& d) { return d / "tls"; }                                // 0700
inline Path ControllerCert(const Path& d) { return TlsDir(d) / "controller.crt"; }
inline Path ControllerKey(const Path& d) { return TlsDir(d) / "controller.key"; }       // 0600
inline Path InventoryDb(const Path& d) { return d / "inventory.db"; }

}  // namespace ipfleet::ca::layout
