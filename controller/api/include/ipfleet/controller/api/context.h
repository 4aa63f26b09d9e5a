// What every part of the running controller shares: the inventory, the CA, the live sessions,
// the clock. Built by the daemon (controller/daemon) and handed to the services and to the
// fleet module (controller part 2). Plain pointers: the daemon owns everything and outlives them.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

namespace ipfleet {
class Metrics;
}
namespace ipfleet::ca {
class CertificateAuthority;
}
namespace ipfleet::inventory {
class Store;
}

namespace ipfleet::controller {

class DashboardTokens;
class Pki;
class SessionRegistry;

// Seconds since the Unix epoch; tests inject a fake.
using Clock = std::function<int64_t()>;
int64_t SystemNow();

struct ControllerContext {
  std::filesystem::path data_dir;
  inventory::Store* store = nullptr;
  ca::CertificateAuthority* ca = nullptr;
  Pki* pki = nullptr;  // CA + current CRL + certificate bookkeeping
  SessionRegistry* sessions = nullptr;
  // "HOST:PORT" agents dial: printed in the enroll command, and the controller path every
  // bundle must keep open (PolicyBundle.controller_address).
  std::string agent_endpoint;
  Clock clock = SystemNow;
  // The controller's metrics registry (never null in a running controller; tests may leave it).
  Metrics* metrics = nullptr;
  // Set while the dashboard is served: issues its login tokens, and the base URL printed with them.
  DashboardTokens* dashboard_tokens = nullptr;
  std::string dashboard_url;
  uint32_t default_token_ttl_seconds = 24 * 3600;
  // This replica's id, and whether it leads (runs rollouts). Several replicas may share the
  // inventory (controller/replication); a lone controller always leads.
  std::string replica_id;
  std::function<bool()> is_leader = [] { return true; };
  std::function<std::string()> describe_leader = [] { return std::string("this controller"); };
  int host_cert_days = 365;
};

}  // namespace ipfleet::controller
