// Health: per-tick sampling of IKE state and kernel counters, stale judgement, repairs, reports.
#include <netinet/in.h>

#include <cstdio>

#include <absl/strings/str_cat.h>
#include <spdlog/spdlog.h>

#include "ipfleet/agent/sync/agent.h"
#include "ipfleet/agent/sync/kernel_plan.h"

namespace ipfleet::agent {
namespace {

std::string Hex32(uint32_t v) {
  char b[9];
  std::snprintf(b, sizeof(b), "%08x", v);
  return b;
}

std::string Hex64(uint64_t v) {
  char b[17];
  std::snprintf(b, sizeof(b), "%016llx", static_cast<unsigned long long>(v));
  return b;
}

v1::SaState ToProto(SaPhase p) {
  switch (p) {
    case SaPhase::kConnecting: return v1::SA_STATE_CONNECTING;
    case SaPhase::kEstablished: return v1::SA_STATE_ESTABLISHED;
    case SaPhase::kRekeying: return v1::SA_STATE_REKEYING;
    case SaPhase::kDeleting: return v1::SA_STATE_DELETING;
    case SaPhase::kDown: return v1::SA_STATE_DOWN;
  }
  return v1::SA_STATE_UNSPECIFIED;
}

// Where to send the probe: the bundle's addresses, else single addresses on both sides.
std::optional<std::pair<IpAddress, IpAddress>> ProbeAddresses(const TunnelConfig& t) {
  if (t.probe_source && t.probe_destination) return std::make_pair(*t.probe_source, *t.probe_destination);
  for (const auto& l : t.local_subnets) {
    int full = l.prefix.address.family == AF_INET ? 32 : 128;
    if (l.prefix.length != full) continue;
    for (const auto& r : t.remote_subnets) {
      if (r.prefix.address.family == l.prefix.address.family && r.prefix.length == full) {
        return std::make_pair(l.prefix.address, r.prefix.address);
      }
    }
  }
  return std::nullopt;
}

kernel::SaId MakeId(const IpAddress& dst, uint32_t spi) {
  kernel::SaId id;
  id.dst = ToKernel(dst);
  id.spi = spi;
  return id;
}
kernel::SaId InId(const TunnelConfig& t, uint32_t spi) { return MakeId(t.local_address, spi); }
kernel::SaId OutId(const TunnelConfig& t, uint32_t spi) { return MakeId(t.remote_address, spi); }

}  // namespace

bool Agent::TunnelUp(const TunnelConfig& t, const std::set<uint32_t>* not_spis) {
  if (t.auth == AuthKind::kStatic) {
    return t.static_keys && xfrm_.QuerySa(InId(t, t.static_keys->inbound.spi)).ok() &&
           xfrm_.QuerySa(OutId(t, t.static_keys->outbound.spi)).ok();
  }
  auto v = ike_.Query(t.name);
  if (!v || v->phase != SaPhase::kEstablished) return false;
  for (const auto& c : v->children) {
    if (c.phase != SaPhase::kEstablished && c.phase != SaPhase::kRekeying) continue;
    if (not_spis && (not_spis->count(c.spi_in) || not_spis->count(c.spi_out))) continue;
    return true;
  }
  return false;
}

void Agent::CheckTunnel(const TunnelConfig& t, int64_t now, bool* changed) {
  auto& w = watches_[t.name];
  if (t.auth == AuthKind::kStatic) {
    bool up = TunnelUp(t, nullptr);
    if (up != w.was_up) *changed = true;
    w.was_up = up;
    return;
  }
  auto view = ike_.Query(t.name);
  if (!view) {
    if (w.was_up) *changed = true;
    w.was_up = false;
    w.children.clear();
    // A tunnel that should be up but has no IKE_SA (peer gone, negotiation failed) is retried,
    // paced by the liveness interval.
    if (t.start == StartKind::kStart && t.initiator &&
        now - w.last_initiate_ms >= int64_t{t.dpd_interval_seconds} * 1000) {
      w.last_initiate_ms = now;
      if (absl::Status s = ike_.Initiate(t.name); !s.ok()) w.last_error = std::string(s.message());
    }
    return;
  }
  if (!view->last_error.empty()) w.last_error = view->last_error;
  // The peer restarted and said so (INITIAL_CONTACT): the engine already deleted the CHILD_SAs it
  // lost and the peer's new IKE_SA replaces them — stale SAs, repaired: count and report it.
  if (view->dropped_by_initial_contact > w.dropped_by_initial_contact) {
    RecordForced(t, "initial-contact",
                 absl::StrCat(view->dropped_by_initial_contact - w.dropped_by_initial_contact,
                              " CHILD_SA(s) older than the peer's INITIAL_CONTACT deleted"));
    spdlog::warn("event=forced_renegotiation tunnel={} reason=initial-contact", t.name);
    *changed = true;
  }
  w.dropped_by_initial_contact = view->dropped_by_initial_contact;
  if (view->liveness_failed) {
    w.ike_stale = true;
    w.children.clear();
    Repair(t, "ike-liveness-failed", "IKE liveness checks unanswered", 0, /*ike=*/true);
    *changed = true;
    return;
  }
  w.ike_stale = false;
  if (w.escalate_at_ms && now >= w.escalate_at_ms) {
    w.escalate_at_ms = 0;
    if (!TunnelUp(t, nullptr)) {
      spdlog::warn("event=repair_escalated tunnel={} reason=\"no CHILD_SA after renegotiation, renegotiating the IKE_SA\"", t.name);
      (void)ike_.DeleteIkeSa(t.name);
      (void)ike_.Initiate(t.name);
      w.last_initiate_ms = now;
      w.children.clear();
      return;
    }
  }
  std::set<uint32_t> seen;
  for (const auto& c : view->children) {
    if (c.phase != SaPhase::kEstablished) continue;
    seen.insert(c.spi_in);
    if (health::OlderThanInitialContact(c.established_unix, view->peer_initial_contact_unix)) {
      Repair(t, "initial-contact", "CHILD_SA older than the peer's INITIAL_CONTACT", c.spi_in, false);
      *changed = true;
      continue;
    }
    auto in = xfrm_.QuerySa(InId(t, c.spi_in));
    auto out = xfrm_.QuerySa(OutId(t, c.spi_out));
    if (!in.ok() || !out.ok()) continue;
    health::StaleParams p{int64_t{t.stale_child_seconds} * 1000, o_.probe_timeout_ms};
    auto [it, inserted] = w.children.try_emplace(c.spi_in, p);
    ChildWatch& cw = it->second;
    if (in->counters.packets != cw.last_in) cw.last_in_ms = now;
    if (out->counters.packets != cw.last_out) cw.last_out_ms = now;
    cw.last_in = in->counters.packets;
    cw.last_out = out->counters.packets;
    if (cw.probe && prober_ && prober_->Answered(*cw.probe)) {
      cw.detector.ProbeAnswered(now);
      cw.probe.reset();
    }
    auto action = cw.detector.Observe({now, out->counters.packets, in->counters.packets});
    bool was_stale = cw.stale;
    cw.stale = cw.detector.state() != health::ChildStaleDetector::State::kHealthy &&
               cw.detector.state() != health::ChildStaleDetector::State::kSuspect;
    cw.stale_reason = cw.detector.reason();
    if (cw.stale != was_stale) *changed = true;
    if (action == health::ChildStaleDetector::Action::kSendProbe) {
      auto addrs = ProbeAddresses(t);
      absl::StatusOr<uint64_t> h = absl::UnavailableError("no probe addresses for this tunnel");
      if (prober_ && addrs) h = prober_->Send(addrs->first, addrs->second);
      if (h.ok()) {
        cw.probe = *h;
        spdlog::info("event=probe_sent tunnel={} spi_in={:08x}", t.name, c.spi_in);
      } else {
        // Without a probe one-way traffic cannot be told from a dead SA: never renegotiate on
        // counters alone.
        spdlog::warn("event=probe_unavailable tunnel={} error=\"{}\"", t.name, std::string(h.status().message()));
        cw.detector.ProbeAnswered(now);
        cw.stale = false;
      }
    } else if (action == health::ChildStaleDetector::Action::kDeclareStale) {
      Repair(t, "stale-child-sa", cw.detector.detail(), c.spi_in, false);
      *changed = true;
    }
  }
  for (auto it = w.children.begin(); it != w.children.end();) {
    it = seen.count(it->first) ? std::next(it) : w.children.erase(it);
  }
  bool up = TunnelUp(t, nullptr);
  if (up != w.was_up) *changed = true;
  w.was_up = up;
}

void Agent::CheckUnknownSas(int64_t now, bool* changed) {
  auto dump = xfrm_.DumpSas();
  if (!dump.ok()) return;
  std::set<uint32_t> owned, known;
  std::map<uint32_t, kernel::SaId> ids;
  std::map<uint32_t, uint32_t> reqids;
  for (const auto& s : *dump) {
    // SPI 0: the kernel's own larval state for an ACQUIRE on a trap policy, which it expires itself.
    if (!kernel::IsOwned(s.params) || s.params.spi == 0) continue;
    owned.insert(s.params.spi);
    ids[s.params.spi] = s.params.id();
    reqids[s.params.spi] = s.params.reqid;
  }
  for (const auto& t : applier_.current().tunnels) {
    if (t.static_keys) {
      known.insert(t.static_keys->inbound.spi);
      known.insert(t.static_keys->outbound.spi);
    }
    if (auto v = ike_.Query(t.name)) {
      for (const auto& c : v->children) {
        known.insert(c.spi_in);
        known.insert(c.spi_out);
      }
    }
  }
  for (uint32_t spi : unknown_.Observe(now, owned, known)) {
    std::string tunnel;
    for (const auto& t : applier_.current().tunnels) {
      if (OwnedReqid(t) == reqids[spi]) tunnel = t.name;
    }
    absl::Status s = xfrm_.DeleteSa(ids[spi]);
    ++forced_total_;
    v1::ForcedRenegotiation f;
    f.set_tunnel(tunnel);
    f.set_reason("unknown-kernel-sa");
    f.set_at_unix(clock_.NowUnix());
    f.set_detail(absl::StrCat("owned kernel SA spi=", Hex32(spi), " unknown to IKE, deleted"));
    forced_pending_.push_back(f);
    if (metrics_) metrics_->Add("ipfleet_agent_forced_renegotiations_total", {{"reason", "unknown-kernel-sa"}}, 1);
    spdlog::warn("event=unknown_kernel_sa spi={:08x} tunnel={} delete=\"{}\"", spi, tunnel, s.ok() ? std::string("ok") : std::string(s.message()));
    if (const TunnelConfig* t = FindTunnel(tunnel); t && t->auth != AuthKind::kStatic) {
      ++watches_[tunnel].forced;
      (void)ike_.Initiate(tunnel);
    }
    *changed = true;
  }
}

Agent::TickResult Agent::Tick() {
  std::lock_guard lock(mu_);
  TickResult r;
  const int64_t now = clock_.NowMs();
  for (const auto& t : applier_.current().tunnels) CheckTunnel(t, now, &r.changed);
  if (now - last_unknown_check_ms_ >= 1000) {
    last_unknown_check_ms_ = now;
    CheckUnknownSas(now, &r.changed);
  }
  if (auto done = AdvanceCommand(now)) {
    r.finished.push_back(*done);
    r.changed = true;
  }
  UpdateMetrics();
  return r;
}

v1::HealthReport Agent::BuildHealth(bool consume) {
  std::lock_guard lock(mu_);
  v1::HealthReport rep;
  rep.set_host(o_.host);
  rep.set_at_unix(clock_.NowUnix());
  rep.set_bundle_version(applied_version_);
  const int64_t now_ms = clock_.NowMs();
  const int64_t now_unix = clock_.NowUnix();
  uint32_t stale = 0;
  auto fill_counters = [&](v1::ChildSaStatus* cs, const TunnelConfig& t, uint32_t spi_in, uint32_t spi_out) {
    auto in = xfrm_.QuerySa(InId(t, spi_in));
    auto out = xfrm_.QuerySa(OutId(t, spi_out));
    auto* c = cs->mutable_counters();
    if (in.ok()) {
      c->set_bytes_in(in->counters.bytes);
      c->set_packets_in(in->counters.packets);
      c->set_replay_errors(in->counters.replay_failures + in->counters.replay_window_failures);
      c->set_integrity_errors(in->counters.integrity_failures);
    }
    if (out.ok()) {
      c->set_bytes_out(out->counters.bytes);
      c->set_packets_out(out->counters.packets);
    }
  };
  for (const auto& t : applier_.current().tunnels) {
    auto* th = rep.add_tunnels();
    th->set_tunnel(t.name);
    auto& w = watches_[t.name];
    th->set_last_error(w.last_error);
    th->set_forced_renegotiations(w.forced);
    if (t.auth == AuthKind::kStatic) {
      th->set_up(TunnelUp(t, nullptr));
      auto* cs = th->add_child_sas();
      cs->set_spi_in(Hex32(t.static_keys->inbound.spi));
      cs->set_spi_out(Hex32(t.static_keys->outbound.spi));
      cs->set_state(th->up() ? v1::SA_STATE_ESTABLISHED : v1::SA_STATE_DOWN);
      cs->set_suite(t.proposal.esp_encryption.front());
      cs->set_last_in_seconds(-1);
      cs->set_last_out_seconds(-1);
      fill_counters(cs, t, t.static_keys->inbound.spi, t.static_keys->outbound.spi);
      continue;
    }
    auto v = ike_.Query(t.name);
    th->set_up(TunnelUp(t, nullptr));
    if (!v) continue;
    auto* is = th->mutable_ike_sa();
    is->set_spi_i(Hex64(v->spi_i));
    is->set_spi_r(Hex64(v->spi_r));
    is->set_state(ToProto(v->phase));
    is->set_initiator(v->initiator);
    is->set_age_seconds(v->established_unix ? static_cast<uint64_t>(std::max<int64_t>(0, now_unix - v->established_unix)) : 0);
    is->set_rekeys(v->rekeys);
    is->set_last_heard_seconds(v->last_heard_unix ? now_unix - v->last_heard_unix : -1);
    is->set_stale(v->liveness_failed);
    if (v->liveness_failed) {
      is->set_stale_reason("ike-liveness-failed");
      ++stale;
    }
    is->set_suite(v->suite);
    is->set_remote_identity(v->remote_identity);
    for (const auto& c : v->children) {
      auto* cs = th->add_child_sas();
      cs->set_spi_in(Hex32(c.spi_in));
      cs->set_spi_out(Hex32(c.spi_out));
      cs->set_state(ToProto(c.phase));
      cs->set_age_seconds(c.established_unix ? static_cast<uint64_t>(std::max<int64_t>(0, now_unix - c.established_unix)) : 0);
      cs->set_rekeys(c.rekeys);
      cs->set_suite(c.suite);
      cs->set_local_ts(c.local_ts);
      cs->set_remote_ts(c.remote_ts);
      fill_counters(cs, t, c.spi_in, c.spi_out);
      cs->set_last_in_seconds(-1);
      cs->set_last_out_seconds(-1);
      if (auto it = w.children.find(c.spi_in); it != w.children.end()) {
        const ChildWatch& cw = it->second;
        if (cw.last_in_ms >= 0 && cs->counters().packets_in()) cs->set_last_in_seconds((now_ms - cw.last_in_ms) / 1000);
        if (cw.last_out_ms >= 0 && cs->counters().packets_out()) cs->set_last_out_seconds((now_ms - cw.last_out_ms) / 1000);
        if (cw.stale) {
          cs->set_stale(true);
          cs->set_stale_reason(cw.stale_reason);
          ++stale;
        }
      }
    }
  }
  rep.set_stale_sas(stale);
  rep.set_forced_renegotiations_total(forced_total_);
  for (const auto& f : forced_pending_) *rep.add_forced() = f;
  if (consume) forced_pending_.clear();
  return rep;
}

void Agent::UpdateMetrics() {
  if (!metrics_) return;
  metrics_->Set("ipfleet_agent_bundle_version", {}, static_cast<double>(applied_version_));
  size_t up = 0, stale = 0;
  metrics_->Clear("ipfleet_agent_sa_packets");
  for (const auto& t : applier_.current().tunnels) {
    auto& w = watches_[t.name];
    if (w.was_up) ++up;
    if (w.ike_stale) ++stale;
    uint64_t in = 0, out = 0;
    for (const auto& [spi, cw] : w.children) {
      if (cw.stale) ++stale;
      in += cw.last_in;
      out += cw.last_out;
    }
    metrics_->Set("ipfleet_agent_sa_packets", {{"tunnel", t.name}, {"direction", "in"}}, static_cast<double>(in));
    metrics_->Set("ipfleet_agent_sa_packets", {{"tunnel", t.name}, {"direction", "out"}}, static_cast<double>(out));
  }
  metrics_->Set("ipfleet_agent_tunnels", {}, static_cast<double>(applier_.current().tunnels.size()));
  metrics_->Set("ipfleet_agent_tunnels_up", {}, static_cast<double>(up));
  metrics_->Set("ipfleet_agent_stale_sas", {}, static_cast<double>(stale));
}

}  // namespace ipfleet::agent
