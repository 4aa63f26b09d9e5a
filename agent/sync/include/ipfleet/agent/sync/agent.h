// The agent's core: verified bundle apply, commands (exactly once), health and repairs.
// Transport-free: the session client (session.h) feeds it controller messages and ships what it
// returns; tests drive it directly or through a fake controller. Every method is thread-safe.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "ipfleet/common/metrics.h"
#include "ipfleet/agent/health/prober.h"
#include "ipfleet/agent/health/stale_detector.h"
#include "ipfleet/agent/sync/applier.h"
#include "ipfleet/agent/sync/bundle_check.h"
#include "ipfleet/agent/sync/clock.h"
#include "ipfleet/agent/sync/ike_seam.h"
#include "ipfleet/agent/sync/state_store.h"
#include "ipfleet/kernel/xfrm.h"
#include "ipfleet/v1/agent_service.pb.h"

namespace ipfleet::agent {

struct AgentOptions {
  std::string host;
  std::filesystem::path data_dir;
  std::vector<ControllerEndpoint> controller_endpoints;
  std::string agent_version = "0.1.0";
  int64_t probe_timeout_ms = 1500;
  int64_t command_timeout_ms = 10000;
  int64_t unknown_sa_grace_ms = 6000;
};

class Agent {
 public:
  Agent(AgentOptions options, kernel::Xfrm& xfrm, IkeSeam& ike, BundleVerifyFn verify, Clock& clock,
        health::Prober* prober = nullptr, ipfleet::Metrics* metrics = nullptr);

  // Loads the command journal and re-applies the last good bundle (re-verified).
  absl::Status Start();

  v1::Hello BuildHello(const std::string& cert_serial);
  // Verifies, applies make-before-break, persists, and returns the ack for the controller.
  v1::BundleAck HandleBundle(const v1::SignedBundle& bundle);
  // A command from the controller. Returns a result at once for a repeated id (never re-run);
  // otherwise the command starts and its result comes out of a later Tick().
  std::optional<v1::CommandResult> HandleCommand(const v1::Command& command);

  struct TickResult {
    std::vector<v1::CommandResult> finished;
    // Something a report should show changed (tunnel up/down, stale, forced renegotiation).
    bool changed = false;
  };
  // Samples counters and IKE state, runs stale detection and repairs, advances commands.
  TickResult Tick();

  // The per-tunnel / per-SA report. `consume` moves the pending forced renegotiations into it.
  v1::HealthReport BuildHealth(bool consume);
  // Drops the first `n` pending forced renegotiations (after a report carrying them was sent).
  void ConsumeForced(size_t n);
  // The last executed command's stored result (re-sent after a reconnect), if any.
  std::optional<v1::CommandResult> LastResult();

  uint64_t applied_version();
  uint64_t forced_total();
  // Hook for the re-enroll command (new key + CSR over the session); set by the daemon.
  void set_reenroll_hook(std::function<absl::Status()> hook);

 private:
  struct ChildWatch {
    explicit ChildWatch(health::StaleParams p) : detector(p) {}
    health::ChildStaleDetector detector;
    std::optional<uint64_t> probe;
    uint64_t last_in = 0, last_out = 0;
    int64_t last_in_ms = -1, last_out_ms = -1;
    bool stale = false;
    std::string stale_reason;
  };
  struct TunnelWatch {
    std::map<uint32_t, ChildWatch> children;  // by inbound SPI
    uint64_t forced = 0;
    std::string last_error;
    int64_t last_initiate_ms = -1'000'000;
    bool was_up = false;
    bool ike_stale = false;
    // After a CHILD_SA repair: when the tunnel is not up again by then, the whole IKE_SA is
    // renegotiated (the peer may have lost its IKE_SA too, so CREATE_CHILD_SA cannot work).
    int64_t escalate_at_ms = 0;
    uint64_t dropped_by_initial_contact = 0;  // the IKE view's count last seen
  };
  struct PendingCommand {
    v1::Command command;
    v1::CommandResult result;
    std::vector<std::string> tunnels;
    std::set<uint32_t> old_spis;
    int64_t started_ms = 0;
  };

  absl::Status ApplyVerified(const DesiredState& state, const std::string& raw, v1::BundleAck* ack, bool restore);
  void Repair(const TunnelConfig& t, const std::string& reason, const std::string& detail, uint32_t spi_in, bool ike);
  // Counts and reports a forced renegotiation (Repair does, and so do repairs the engine made itself).
  void RecordForced(const TunnelConfig& t, const std::string& reason, const std::string& detail);
  void CheckTunnel(const TunnelConfig& t, int64_t now, bool* changed);
  void CheckUnknownSas(int64_t now, bool* changed);
  bool TunnelUp(const TunnelConfig& t, const std::set<uint32_t>* not_spis);
  std::vector<v1::SaSnapshot> Snapshot(const std::vector<std::string>& tunnels);
  void StartCommand(const v1::Command& c);
  std::optional<v1::CommandResult> AdvanceCommand(int64_t now);
  absl::Status FinishCommand(v1::CommandResult& r);
  std::vector<std::string> Select(const v1::Command& c);
  const TunnelConfig* FindTunnel(const std::string& name);
  void UpdateMetrics();

  AgentOptions o_;
  kernel::Xfrm& xfrm_;
  IkeSeam& ike_;
  BundleVerifyFn verify_;
  Clock& clock_;
  health::Prober* prober_;
  ipfleet::Metrics* metrics_;
  StateStore store_;
  Applier applier_;
  std::function<absl::Status()> reenroll_hook_;

  std::mutex mu_;
  uint64_t applied_version_ = 0;
  StateStore::Journal journal_;
  std::optional<PendingCommand> pending_;
  std::vector<v1::Command> queued_;
  std::map<std::string, TunnelWatch> watches_;
  health::UnknownSaTracker unknown_;
  std::vector<v1::ForcedRenegotiation> forced_pending_;
  uint64_t forced_total_ = 0;
  int64_t last_unknown_check_ms_ = 0;
};

}  // namespace ipfleet::agent
