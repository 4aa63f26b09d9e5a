#include "ipfleet/agent/sync/agent.h"

#include <malloc.h>

#include <algorithm>

#include <absl/strings/str_cat.h>
#include <spdlog/spdlog.h>

#include "ipfleet/agent/sync/kernel_plan.h"

namespace ipfleet::agent {
namespace {
// A CREATE_CHILD_SA takes a few round trips at most (retransmitted every 500 ms); a peer that has
// not answered within this time has most likely lost the IKE_SA as well.
constexpr int64_t kEscalateAfterMs = 2000;
}  // namespace

void Agent::ConsumeForced(size_t n) {
  std::lock_guard lock(mu_);
  forced_pending_.erase(forced_pending_.begin(), forced_pending_.begin() + std::min(n, forced_pending_.size()));
}

Agent::Agent(AgentOptions options, kernel::Xfrm& xfrm, IkeSeam& ike, BundleVerifyFn verify, Clock& clock,
             health::Prober* prober, ipfleet::Metrics* metrics)
    : o_(std::move(options)),
      xfrm_(xfrm),
      ike_(ike),
      verify_(std::move(verify)),
      clock_(clock),
      prober_(prober),
      metrics_(metrics),
      store_(o_.data_dir),
      applier_(xfrm, ike),
      unknown_(o_.unknown_sa_grace_ms) {
  if (metrics_) {
    using T = ipfleet::Metrics::Type;
    metrics_->Declare("ipfleet_agent_bundle_version", T::kGauge, "Version of the applied policy bundle.");
    metrics_->Declare("ipfleet_agent_bundles_refused_total", T::kCounter, "Bundles refused, by reason.");
    metrics_->Declare("ipfleet_agent_forced_renegotiations_total", T::kCounter, "Forced renegotiations, by reason.");
    metrics_->Declare("ipfleet_agent_stale_sas", T::kGauge, "SAs currently judged stale.");
    metrics_->Declare("ipfleet_agent_tunnels", T::kGauge, "Tunnels in the applied bundle.");
    metrics_->Declare("ipfleet_agent_tunnels_up", T::kGauge, "Tunnels with an installed SA pair.");
    metrics_->Declare("ipfleet_agent_commands_total", T::kCounter, "Commands executed, by kind and result.");
    metrics_->Declare("ipfleet_agent_sa_packets", T::kGauge, "Packets through a tunnel's SAs, by direction.");
  }
}

void Agent::set_reenroll_hook(std::function<absl::Status()> hook) {
  std::lock_guard lock(mu_);
  reenroll_hook_ = std::move(hook);
}

uint64_t Agent::applied_version() {
  std::lock_guard lock(mu_);
  return applied_version_;
}

uint64_t Agent::forced_total() {
  std::lock_guard lock(mu_);
  return forced_total_;
}

absl::Status Agent::Start() {
  std::lock_guard lock(mu_);
  IPFLEET_RETURN_IF_ERROR(store_.Init());
  IPFLEET_ASSIGN_OR_RETURN(journal_, store_.LoadJournal());
  if (journal_.started > journal_.executed) {
    // Crashed while a command ran: it is never re-run (at most once); report it as interrupted.
    v1::CommandResult r;
    r.set_id(journal_.started);
    r.set_ok(false);
    r.set_error("interrupted by an agent restart; not re-run");
    r.set_finished_unix(clock_.NowUnix());
    journal_.results[journal_.started] = r.SerializeAsString();
    journal_.executed = journal_.started;
    IPFLEET_RETURN_IF_ERROR(store_.SaveJournal(journal_));
    spdlog::warn("event=command_interrupted id={}", r.id());
  }
  IPFLEET_ASSIGN_OR_RETURN(auto raw, store_.LoadLastGoodBundle());
  if (!raw) {
    spdlog::info("event=no_last_good_bundle host={}", o_.host);
    return absl::OkStatus();
  }
  v1::SignedBundle sb;
  if (!sb.ParseFromString(*raw)) return absl::DataLossError("last-good.bundle does not parse");
  CheckContext ctx{o_.host, 0, o_.controller_endpoints, true};
  auto state = CheckBundle(sb, verify_, ctx);
  if (!state.ok()) {
    // The stored bundle no longer verifies (e.g. CA changed): run nothing rather than something unverified.
    spdlog::error("event=last_good_bundle_refused error=\"{}\"", std::string(state.status().message()));
    return absl::OkStatus();
  }
  v1::BundleAck ack;
  return ApplyVerified(*state, *raw, &ack, /*restore=*/true);
}

v1::Hello Agent::BuildHello(const std::string& cert_serial) {
  std::lock_guard lock(mu_);
  v1::Hello h;
  h.set_host(o_.host);
  h.set_agent_version(o_.agent_version);
  h.set_bundle_version(applied_version_);
  h.set_cert_serial(cert_serial);
  h.set_last_command_id(journal_.executed);
  return h;
}

absl::Status Agent::ApplyVerified(const DesiredState& state, const std::string& raw, v1::BundleAck* ack, bool restore) {
  ApplyOutcome out = restore ? applier_.Restore(state) : applier_.Apply(state);
  ack->set_version(state.version);
  if (!out.status.ok()) {
    ack->set_applied(false);
    ack->set_error(std::string(out.status.message()));
    return out.status;
  }
  for (const auto& t : out.tunnels) {
    if (t.change == TunnelOutcome::Change::kRemoved) {
      watches_.erase(t.tunnel);
      continue;
    }
    auto* tr = ack->add_tunnels();
    tr->set_tunnel(t.tunnel);
    tr->set_ok(t.status.ok());
    if (!t.status.ok()) {
      tr->set_error(std::string(t.status.message()));
      watches_[t.tunnel].last_error = std::string(t.status.message());
    }
  }
  ack->set_applied(true);
  applied_version_ = state.version;
  if (!restore) IPFLEET_RETURN_IF_ERROR(store_.SaveLastGoodBundle(raw));
  spdlog::info("event=bundle_applied host={} version={} generation={} tunnels={} bypass={} restore={}", state.host,
               state.version, state.generation, state.tunnels.size(), state.bypass.size(), restore);
  UpdateMetrics();
  return absl::OkStatus();
}

v1::BundleAck Agent::HandleBundle(const v1::SignedBundle& sb) {
  std::lock_guard lock(mu_);
  v1::BundleAck ack;
  CheckContext ctx{o_.host, applied_version_, o_.controller_endpoints, false};
  auto state = CheckBundle(sb, verify_, ctx);
  if (!state.ok()) {
    v1::PolicyBundle b;
    if (b.ParseFromString(sb.bundle())) ack.set_version(b.version());
    ack.set_applied(false);
    ack.set_error(std::string(state.status().message()));
    std::string reason(state.status().message().substr(0, state.status().message().find(':')));
    spdlog::warn("event=bundle_refused version={} reason=\"{}\" error=\"{}\"", ack.version(), reason,
                 std::string(state.status().message()));
    if (metrics_) metrics_->Add("ipfleet_agent_bundles_refused_total", {{"reason", reason}}, 1);
    return ack;
  }
  if (absl::Status s = ApplyVerified(*state, sb.SerializeAsString(), &ack, false); !s.ok()) {
    spdlog::error("event=bundle_apply_failed version={} error=\"{}\"", state->version, std::string(s.message()));
  }
  // Parsing, translating and diffing a large bundle leaves megabytes of freed heap that glibc
  // keeps mapped (it only trims the top of the heap): hand it back, a bundle is rare.
  malloc_trim(0);
  return ack;
}

const TunnelConfig* Agent::FindTunnel(const std::string& name) {
  for (const auto& t : applier_.current().tunnels) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

void Agent::Repair(const TunnelConfig& t, const std::string& reason, const std::string& detail, uint32_t spi_in,
                   bool ike) {
  absl::Status del = ike ? ike_.DeleteIkeSa(t.name) : ike_.DeleteChildSas(t.name, spi_in);
  absl::Status init = ike_.Initiate(t.name);
  auto& w = watches_[t.name];
  w.last_initiate_ms = clock_.NowMs();
  w.escalate_at_ms = ike ? 0 : clock_.NowMs() + kEscalateAfterMs;
  RecordForced(t, reason, detail);
  spdlog::warn("event=forced_renegotiation tunnel={} reason={} spi_in={:08x} detail=\"{}\" delete=\"{}\" initiate=\"{}\"",
               t.name, reason, spi_in, detail, del.ok() ? std::string("ok") : std::string(del.message()), init.ok() ? std::string("ok") : std::string(init.message()));
}

void Agent::RecordForced(const TunnelConfig& t, const std::string& reason, const std::string& detail) {
  ++watches_[t.name].forced;
  ++forced_total_;
  v1::ForcedRenegotiation f;
  f.set_tunnel(t.name);
  f.set_reason(reason);
  f.set_at_unix(clock_.NowUnix());
  f.set_detail(detail);
  forced_pending_.push_back(f);
  if (forced_pending_.size() > 256) forced_pending_.erase(forced_pending_.begin());
  if (metrics_) metrics_->Add("ipfleet_agent_forced_renegotiations_total", {{"reason", reason}}, 1);
}

}  // namespace ipfleet::agent
