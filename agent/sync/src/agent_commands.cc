// Commands from the controller: flush-sa, rekey, re-enroll. Each id runs at most once (the
// journal records the start before anything happens) and its result is kept to be re-sent.
#include <cstdio>

#include <absl/strings/str_cat.h>
#include <spdlog/spdlog.h>

#include "ipfleet/agent/sync/agent.h"

namespace ipfleet::agent {
namespace {

std::string Hex32(uint32_t v) {
  char b[9];
  std::snprintf(b, sizeof(b), "%08x", v);
  return b;
}

const char* KindName(v1::CommandKind k) {
  switch (k) {
    case v1::COMMAND_KIND_FLUSH_SA: return "flush-sa";
    case v1::COMMAND_KIND_REKEY: return "rekey";
    case v1::COMMAND_KIND_REENROLL: return "reenroll";
    default: return "unknown";
  }
}

}  // namespace

std::vector<std::string> Agent::Select(const v1::Command& c) {
  std::vector<std::string> out;
  for (const auto& t : applier_.current().tunnels) {
    if (!c.tunnel().empty() && c.tunnel() != t.name) continue;
    if (!c.peer().empty() && c.peer() != t.remote_name) continue;
    out.push_back(t.name);
  }
  return out;
}

std::vector<v1::SaSnapshot> Agent::Snapshot(const std::vector<std::string>& tunnels) {
  std::vector<v1::SaSnapshot> out;
  for (const auto& name : tunnels) {
    const TunnelConfig* t = FindTunnel(name);
    if (!t) continue;
    if (t->static_keys) {
      if (!TunnelUp(*t, nullptr)) continue;
      v1::SaSnapshot s;
      s.set_tunnel(name);
      s.set_spi_in(Hex32(t->static_keys->inbound.spi));
      s.set_spi_out(Hex32(t->static_keys->outbound.spi));
      out.push_back(s);
      continue;
    }
    if (auto v = ike_.Query(name)) {
      for (const auto& c : v->children) {
        // Being deleted (a replaced SA in its grace period, whose inbound half still catches
        // packets in flight): no longer one of the tunnel's SAs.
        if (c.phase == SaPhase::kDeleting) continue;
        v1::SaSnapshot s;
        s.set_tunnel(name);
        s.set_spi_in(Hex32(c.spi_in));
        s.set_spi_out(Hex32(c.spi_out));
        out.push_back(s);
      }
    }
  }
  return out;
}

std::optional<v1::CommandResult> Agent::HandleCommand(const v1::Command& c) {
  std::lock_guard lock(mu_);
  if (c.id() <= journal_.executed || c.id() <= journal_.started || (pending_ && pending_->command.id() == c.id())) {
    // Repeated delivery (reconnect, controller restart): never run again, re-send the result.
    spdlog::info("event=command_repeated id={} kind={}", c.id(), KindName(c.kind()));
    if (pending_ && pending_->command.id() == c.id()) return std::nullopt;  // result follows when done
    if (auto it = journal_.results.find(c.id()); it != journal_.results.end()) {
      v1::CommandResult r;
      if (r.ParseFromString(it->second)) return r;
    }
    v1::CommandResult r;
    r.set_id(c.id());
    r.set_ok(false);
    r.set_error("already executed; its result is no longer kept");
    return r;
  }
  for (const auto& q : queued_) {
    if (q.id() == c.id()) return std::nullopt;
  }
  if (pending_) {
    queued_.push_back(c);
    return std::nullopt;
  }
  StartCommand(c);
  return std::nullopt;
}

void Agent::StartCommand(const v1::Command& c) {
  journal_.started = c.id();
  if (absl::Status s = store_.SaveJournal(journal_); !s.ok()) {
    spdlog::error("event=journal_write_failed id={} error=\"{}\"", c.id(), std::string(s.message()));
  }
  PendingCommand p;
  p.command = c;
  p.started_ms = clock_.NowMs();
  p.result.set_id(c.id());
  p.tunnels = Select(c);
  for (const auto& s : Snapshot(p.tunnels)) {
    *p.result.add_sas_before() = s;
    p.old_spis.insert(static_cast<uint32_t>(std::stoul(s.spi_in(), nullptr, 16)));
    p.old_spis.insert(static_cast<uint32_t>(std::stoul(s.spi_out(), nullptr, 16)));
  }
  spdlog::info("event=command_started id={} kind={} tunnel={} peer={} tunnels={}", c.id(), KindName(c.kind()),
               c.tunnel(), c.peer(), p.tunnels.size());
  std::string errors;
  if (c.kind() == v1::COMMAND_KIND_REENROLL) {
    absl::Status s = reenroll_hook_ ? reenroll_hook_() : absl::UnimplementedError("re-enroll not available");
    if (!s.ok()) errors = std::string(s.message());
    p.tunnels.clear();  // nothing to wait for
  } else if ((!c.tunnel().empty() || !c.peer().empty()) && p.tunnels.empty()) {
    errors = absl::StrCat("no tunnel matches tunnel='", c.tunnel(), "' peer='", c.peer(), "'");
  } else {
    const bool flush = c.kind() == v1::COMMAND_KIND_FLUSH_SA;
    const std::string reason = flush ? "flush-sa" : "rekey-command";
    for (const auto& name : p.tunnels) {
      const TunnelConfig* t = FindTunnel(name);
      absl::Status s;
      if (t->auth == AuthKind::kStatic) {
        // No IKE to renegotiate with: re-install the pushed SAs (flush clears their state).
        if (flush) {
          (void)applier_.RemoveStatic(*t);
          s = applier_.InstallStatic(*t, applier_.priority());
        }
        p.old_spis.clear();  // static SPIs stay the same
      } else {
        // flush-sa and rekey alike: every CHILD_SA is replaced by a freshly negotiated one and
        // deleted (the peer told), make-before-break so that the command itself costs no traffic;
        // a CHILD_SA the peer no longer has is created afresh, a tunnel without one gets one.
        s = ike_.Rekey(name);
      }
      if (!s.ok()) {
        absl::StrAppend(&errors, errors.empty() ? "" : "; ", name, ": ", s.message());
        continue;
      }
      if (t->auth != AuthKind::kStatic) {
        auto& w = watches_[name];
        ++w.forced;
        ++forced_total_;
        w.children.clear();
        v1::ForcedRenegotiation f;
        f.set_tunnel(name);
        f.set_reason(reason);
        f.set_at_unix(clock_.NowUnix());
        f.set_detail(absl::StrCat("command ", c.id()));
        forced_pending_.push_back(f);
        if (metrics_) metrics_->Add("ipfleet_agent_forced_renegotiations_total", {{"reason", reason}}, 1);
      }
    }
  }
  if (!errors.empty()) p.result.set_error(errors);
  pending_ = std::move(p);
}

std::optional<v1::CommandResult> Agent::AdvanceCommand(int64_t now) {
  if (!pending_) return std::nullopt;
  PendingCommand& p = *pending_;
  bool all_up = true;
  for (const auto& name : p.tunnels) {
    const TunnelConfig* t = FindTunnel(name);
    if (t && !TunnelUp(*t, p.old_spis.empty() ? nullptr : &p.old_spis)) all_up = false;
  }
  const bool timed_out = now - p.started_ms >= o_.command_timeout_ms;
  if (!all_up && !timed_out && p.result.error().empty()) return std::nullopt;
  v1::CommandResult r = p.result;
  for (const auto& s : Snapshot(p.tunnels)) *r.add_sas_after() = s;
  if (!all_up && r.error().empty()) r.set_error(absl::StrCat("tunnels not up again within ", o_.command_timeout_ms, " ms"));
  r.set_ok(r.error().empty());
  if (all_up) r.set_recovery_ms(static_cast<uint64_t>(now - p.started_ms));
  r.set_finished_unix(clock_.NowUnix());
  if (absl::Status s = FinishCommand(r); !s.ok()) {
    spdlog::error("event=journal_write_failed id={} error=\"{}\"", r.id(), std::string(s.message()));
  }
  if (metrics_) {
    metrics_->Add("ipfleet_agent_commands_total", {{"kind", KindName(p.command.kind())}, {"ok", r.ok() ? "true" : "false"}}, 1);
  }
  spdlog::info("event=command_finished id={} ok={} recovery_ms={} error=\"{}\"", r.id(), r.ok(), r.recovery_ms(), r.error());
  pending_.reset();
  if (!queued_.empty()) {
    v1::Command next = queued_.front();
    queued_.erase(queued_.begin());
    StartCommand(next);
  }
  return r;
}

absl::Status Agent::FinishCommand(v1::CommandResult& r) {
  journal_.executed = std::max(journal_.executed, r.id());
  journal_.results[r.id()] = r.SerializeAsString();
  return store_.SaveJournal(journal_);
}

std::optional<v1::CommandResult> Agent::LastResult() {
  std::lock_guard lock(mu_);
  if (journal_.results.empty()) return std::nullopt;
  v1::CommandResult r;
  if (!r.ParseFromString(journal_.results.rbegin()->second)) return std::nullopt;
  return r;
}

}  // namespace ipfleet::agent
