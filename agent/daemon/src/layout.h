// The agent's data directory (0700):
//   agent.json        host name, controller address, TLS name (written at enrollment)
//   tls/host.key      the host's private key (0600, generated here, never sent)
//   tls/host.crt      the host certificate;  tls/ca.crt  the pinned CA;  tls/crl.pem
//   state/            last good bundle and command journal (sync/state_store.h)
//   status/health.pb  the latest HealthReport, read by `status` and `sas`
#pragma once

#include <filesystem>
#include <string>

#include "ipfleet/common/status.h"

namespace ipfleet::agent::daemon {

using Path = std::filesystem::path;
inline Path ConfigFile(const Path& d) { return d / "agent.json"; }
inline Path TlsDir(const Path& d) { return d / "tls"; }
inline Path HostKey(const Path& d) { return TlsDir(d) / "host.key"; }
inline Path HostCert(const Path& d) { return TlsDir(d) / "host.crt"; }
inline Path CaCert(const Path& d) { return TlsDir(d) / "ca.crt"; }
inline Path Crl(const Path& d) { return TlsDir(d) / "crl.pem"; }
inline Path PendingKey(const Path& d) { return TlsDir(d) / "host.key.next"; }
inline Path HealthFile(const Path& d) { return d / "status" / "health.pb"; }

struct AgentConfig {
  std::string host;
  // Controller replicas' "ADDR:PORT", in the order to try them (the session fails over along it).
  std::vector<std::string> controllers;
  std::string tls_server_name;  // name checked against the controller certificate (optional)
};

absl::StatusOr<AgentConfig> LoadConfig(const Path& data_dir);
absl::Status SaveConfig(const Path& data_dir, const AgentConfig& c);

}  // namespace ipfleet::agent::daemon
