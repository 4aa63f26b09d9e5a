#include "controller_metrics.h"

#include <spdlog/spdlog.h>

#include <array>
#include <map>

#include "ipfleet/controller/api/session_registry.h"
#include "ipfleet/controller/inventory/store.h"

namespace ipfleet::controller {
namespace {

constexpr int64_t kExpiryWarningSeconds = 30 * 24 * 3600;

const char* HostRolloutStateName(inventory::HostRolloutState s) {
  switch (s) {
    case inventory::HostRolloutState::kPending: return "pending";
    case inventory::HostRolloutState::kSent: return "sent";
    case inventory::HostRolloutState::kDone: return "done";
    case inventory::HostRolloutState::kFailed: return "failed";
    case inventory::HostRolloutState::kTimedOut: return "timed_out";
    default: return "unknown";
  }
}

void CollectHosts(Metrics& m, ControllerContext& ctx, int64_t now) {
  absl::StatusOr<std::vector<inventory::Host>> hosts = ctx.store->ListHosts();
  absl::StatusOr<std::vector<inventory::HealthRecord>> health = ctx.store->ListHealth();
  if (!hosts.ok() || !health.ok()) {
    spdlog::warn("event=metrics_inventory_read_failed error=\"{}\"",
                 std::string((hosts.ok() ? health.status() : hosts.status()).message()));
    return;
  }
  std::map<std::string, double> by_state = {{"connected", 0}, {"disconnected", 0}, {"not_enrolled", 0}};
  m.Clear("ipfleet_controller_host_certificate_not_after_timestamp_seconds");
  double expiring = 0;
  for (const auto& h : *hosts) {
    const char* state = !h.enrolled ? "not_enrolled" : ctx.sessions->IsConnected(h.name) ? "connected" : "disconnected";
    by_state[state] += 1;
    if (h.enrolled && h.cert_not_after_unix > 0) {
      m.Set("ipfleet_controller_host_certificate_not_after_timestamp_seconds", {{"host", h.name}},
            static_cast<double>(h.cert_not_after_unix));
      if (h.cert_not_after_unix - now < kExpiryWarningSeconds) expiring += 1;
    }
  }
  for (const auto& [state, n] : by_state) m.Set("ipfleet_controller_hosts", {{"state", state}}, n);
  m.Set("ipfleet_controller_host_certificates_expiring", {{"within", "30d"}}, expiring);
  double up = 0, total = 0, stale = 0, forced = 0;
  for (const auto& r : *health) {
    up += r.tunnels_up;
    total += r.tunnels_total;
    stale += r.stale_sas;
    forced += static_cast<double>(r.forced_renegotiations);
  }
  m.Set("ipfleet_controller_tunnel_ends", {{"state", "up"}}, up);
  m.Set("ipfleet_controller_tunnel_ends", {{"state", "down"}}, total - up);
  m.Set("ipfleet_controller_stale_sas", {}, stale);
  m.Set("ipfleet_controller_agent_forced_renegotiations", {}, forced);
}

void CollectRollout(Metrics& m, ControllerContext& ctx) {
  absl::StatusOr<inventory::Rollout> r = ctx.store->LatestRollout();
  m.Clear("ipfleet_controller_rollout_hosts");
  if (!r.ok()) {
    m.Set("ipfleet_controller_rollout_running", {}, 0);
    return;
  }
  std::map<std::string, double> counts = {{"pending", 0}, {"sent", 0}, {"done", 0}, {"failed", 0}, {"timed_out", 0}};
  for (const auto& h : r->hosts) counts[HostRolloutStateName(h.state)] += 1;
  for (const auto& [state, n] : counts) m.Set("ipfleet_controller_rollout_hosts", {{"state", state}}, n);
  m.Set("ipfleet_controller_rollout_id", {}, static_cast<double>(r->id));
  m.Set("ipfleet_controller_rollout_running", {}, r->state == inventory::RolloutState::kRunning ? 1 : 0);
  m.Set("ipfleet_controller_rollout_wave", {}, r->current_wave);
  m.Set("ipfleet_controller_rollout_waves", {}, r->waves);
}

void CollectCertificates(Metrics& m, ControllerContext& ctx, int64_t now) {
  absl::StatusOr<std::vector<inventory::Certificate>> certs = ctx.store->ListCertificates(false);
  if (!certs.ok()) return;
  std::map<std::string, double> expiring;
  for (const auto& c : *certs) {
    if (c.not_after_unix > now && c.not_after_unix - now < kExpiryWarningSeconds) expiring[c.kind] += 1;
    expiring.try_emplace(c.kind, 0);
  }
  m.Clear("ipfleet_controller_certificates_expiring");
  for (const auto& [kind, n] : expiring) m.Set("ipfleet_controller_certificates_expiring", {{"kind", kind}}, n);
}

}  // namespace

void InstallControllerMetrics(Metrics& metrics, ControllerContext& ctx, int64_t ca_not_after_unix) {
  using T = Metrics::Type;
  metrics.Declare("ipfleet_controller_hosts", T::kGauge, "Hosts in the inventory by state.");
  metrics.Declare("ipfleet_controller_sessions", T::kGauge, "Agent sessions open on this controller.");
  metrics.Declare("ipfleet_controller_generation", T::kGauge, "Current inventory generation.");
  metrics.Declare("ipfleet_controller_tunnel_ends", T::kGauge, "Tunnel ends by reported state (sum of host reports).");
  metrics.Declare("ipfleet_controller_stale_sas", T::kGauge, "SAs the agents currently judge stale.");
  metrics.Declare("ipfleet_controller_agent_forced_renegotiations", T::kGauge,
                  "Sum of the agents' forced renegotiation totals (as last reported).");
  metrics.Declare("ipfleet_controller_rollout_hosts", T::kGauge, "Hosts of the latest rollout by state.");
  metrics.Declare("ipfleet_controller_rollout_running", T::kGauge, "1 while the latest rollout runs.");
  metrics.Declare("ipfleet_controller_rollout_id", T::kGauge, "Id of the latest rollout.");
  metrics.Declare("ipfleet_controller_rollout_wave", T::kGauge, "Current wave of the latest rollout.");
  metrics.Declare("ipfleet_controller_rollout_waves", T::kGauge, "Waves of the latest rollout.");
  metrics.Declare("ipfleet_controller_commands_pending", T::kGauge, "Commands queued or delivered, not yet finished.");
  metrics.Declare("ipfleet_controller_inventory_write_seconds", T::kHistogram,
                  "Inventory write transactions: lock wait, body and commit.",
                  {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5});
  metrics.Declare("ipfleet_controller_inventory_write_failures_total", T::kCounter,
                  "Inventory write transactions that rolled back.");
  metrics.Declare("ipfleet_controller_certificates_expiring", T::kGauge,
                  "Unrevoked certificates expiring within 30 days, by kind.");
  metrics.Declare("ipfleet_controller_host_certificates_expiring", T::kGauge,
                  "Enrolled hosts whose current certificate expires within 30 days (or has expired).");
  metrics.Declare("ipfleet_controller_host_certificate_not_after_timestamp_seconds", T::kGauge,
                  "Expiry of each host's current certificate.");
  metrics.Declare("ipfleet_controller_ca_not_after_timestamp_seconds", T::kGauge, "Expiry of the fleet CA certificate.");
  metrics.Declare("ipfleet_controller_enrollment_failures_total", T::kCounter, "Refused enrollments, by status code.");
  metrics.Set("ipfleet_controller_ca_not_after_timestamp_seconds", {}, static_cast<double>(ca_not_after_unix));
  metrics.Add("ipfleet_controller_inventory_write_failures_total", {}, 0);

  ctx.store->SetTransactionObserver([&metrics](std::chrono::nanoseconds elapsed, bool committed) {
    metrics.Observe("ipfleet_controller_inventory_write_seconds", {}, std::chrono::duration<double>(elapsed).count());
    if (!committed) metrics.Add("ipfleet_controller_inventory_write_failures_total", {}, 1);
  });
  metrics.AddCollector([&ctx](Metrics& m) {
    int64_t now = ctx.clock();
    m.Set("ipfleet_controller_sessions", {}, static_cast<double>(ctx.sessions->ConnectedCount()));
    if (absl::StatusOr<uint64_t> g = ctx.store->CurrentGeneration(); g.ok()) {
      m.Set("ipfleet_controller_generation", {}, static_cast<double>(*g));
    }
    if (absl::StatusOr<uint64_t> n = ctx.store->CountPendingCommands(); n.ok()) {
      m.Set("ipfleet_controller_commands_pending", {}, static_cast<double>(*n));
    }
    CollectHosts(m, ctx, now);
    CollectRollout(m, ctx);
    CollectCertificates(m, ctx, now);
  });
}

}  // namespace ipfleet::controller
