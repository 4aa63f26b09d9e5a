// Simulated agents for the rollout benchmarks: host names and addresses, a key and certificate
// per host, and a child process holding one mutual-TLS Session per host that acks every bundle
// and reports its tunnels up. Shared by rollout_bench (one controller) and rollout_ha_bench
// (replicas on PostgreSQL).
#pragma once

#include <sys/resource.h>

#include <chrono>
#include <atomic>
#include <string>
#include <vector>

#include "ipfleet/ca/authority.h"
#include "ipfleet/common/status.h"
#include "ipfleet/controller/inventory/types.h"

namespace ipfleet::bench {

using Clock = std::chrono::steady_clock;
inline double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }
// steady_clock is CLOCK_MONOTONIC, shared by parent and child: their timelines line up.
inline double Mono() { return std::chrono::duration<double>(Clock::now().time_since_epoch()).count(); }
inline double CpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}
inline double Load1() {
  double l[1] = {0};
  return getloadavg(l, 1) == 1 ? l[0] : -1;
}

std::string HostName(int i);
std::string HostAddress(int i);

// The benchmarks' fleet file: a full mesh within each group of `group` hosts (label group=gN).
// Round 1 uses the default proposal; each later round changes it, so every bundle changes.
std::string MeshFleetYaml(int hosts, int group, int round);

struct Identity {
  std::string name;
  std::string key_pem;
  std::string cert_pem;
};

// A key and a host certificate per host (before any gRPC exists, so the agents' child can be
// forked safely); `certs` are the inventory records of the same certificates.
absl::Status MakeIdentities(const ca::CertificateAuthority& ca, int hosts, std::vector<Identity>* ids,
                            std::vector<inventory::Certificate>* certs);

// The child process: waits for a byte on `go_fd`, then opens agent i's session to
// targets[i % targets.size()]. A session that ends is opened again on the next target (as the
// agent's session fails over along its --controller list). Runs until killed. `received`, when
// given (memory shared with the parent), counts the bundles the agents received and acknowledged.
[[noreturn]] void RunAgents(const std::vector<Identity>& ids, const std::string& ca_pem,
                            const std::vector<std::string>& targets, int go_fd,
                            std::atomic<int>* received = nullptr);

}  // namespace ipfleet::bench
