#include "ipfleet/agent/sync/applier.h"

#include <set>

#include <absl/strings/str_cat.h>
#include <spdlog/spdlog.h>

#include "ipfleet/agent/sync/kernel_plan.h"

namespace ipfleet::agent {
namespace {

const TunnelConfig* Find(const std::vector<TunnelConfig>& v, const std::string& name) {
  for (const auto& t : v) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

bool IsStatic(const TunnelConfig& t) { return t.auth == AuthKind::kStatic; }

absl::StatusOr<std::set<kernel::PolicyId>> BypassIds(const std::vector<BypassConfig>& rules) {
  std::set<kernel::PolicyId> ids;
  for (const auto& r : rules) {
    IPFLEET_ASSIGN_OR_RETURN(auto pols, BypassPolicies(r));
    for (const auto& p : pols) ids.insert(p.id());
  }
  return ids;
}

// A policy update that the kernel treats as add-or-replace.
absl::Status Upsert(kernel::Xfrm& x, const kernel::PolicyParams& p) { return x.UpdatePolicy(p); }

absl::Status UpsertSa(kernel::Xfrm& x, const kernel::SaParams& sa) {
  absl::Status s = x.AddSa(sa);
  if (absl::IsAlreadyExists(s)) s = x.UpdateSa(sa);
  return s;
}

}  // namespace

ConnectionOptions Applier::Options(const DesiredState& s) const {
  return ConnectionOptions{ProtectingPriority(s.bypass), s.ca_chain_pem, s.crl_pem};
}

absl::Status Applier::InstallBypass(const std::vector<BypassConfig>& rules, std::vector<kernel::PolicyId>* added) {
  for (const auto& r : rules) {
    IPFLEET_ASSIGN_OR_RETURN(auto pols, BypassPolicies(r));
    for (const auto& p : pols) {
      absl::Status s = Upsert(xfrm_, p);
      if (!s.ok()) return absl::Status(s.code(), absl::StrCat("bypass ", r.reason, ": ", s.message()));
      if (added) added->push_back(p.id());
    }
  }
  return absl::OkStatus();
}

absl::Status Applier::InstallStatic(const TunnelConfig& t, uint32_t priority) {
  IPFLEET_ASSIGN_OR_RETURN(auto sas, StaticTunnelSas(t));
  IPFLEET_ASSIGN_OR_RETURN(auto pols, TunnelPolicies(t, priority));
  // SAs first: a policy without its SA would drop (or ACQUIRE for) the tunnel's traffic.
  IPFLEET_RETURN_IF_ERROR(UpsertSa(xfrm_, sas.inbound));
  IPFLEET_RETURN_IF_ERROR(UpsertSa(xfrm_, sas.outbound));
  for (const auto& p : pols) IPFLEET_RETURN_IF_ERROR(Upsert(xfrm_, p));
  return absl::OkStatus();
}

absl::Status Applier::RemoveStatic(const TunnelConfig& t) {
  absl::Status first;
  if (auto pols = TunnelPolicies(t, 0); pols.ok()) {
    for (const auto& p : *pols) {
      absl::Status s = xfrm_.DeletePolicy(p.id());
      if (!s.ok() && !absl::IsNotFound(s) && first.ok()) first = s;
    }
  }
  if (auto sas = StaticTunnelSas(t); sas.ok()) {
    for (const auto* sa : {&sas->outbound, &sas->inbound}) {
      absl::Status s = xfrm_.DeleteSa(sa->id());
      if (!s.ok() && !absl::IsNotFound(s) && first.ok()) first = s;
    }
  }
  return first;
}

void Applier::EndIkeBatch(const DesiredState& next, ApplyOutcome& out) {
  absl::Status s = ike_.EndBatch();
  if (s.ok()) return;
  spdlog::warn("event=ike_load_failed error=\"{}\"", std::string(s.message()));
  // Every added or changed IKE tunnel shares the failed load.
  for (auto& o : out.tunnels) {
    const TunnelConfig* t = Find(next.tunnels, o.tunnel);
    if (t && !IsStatic(*t) && o.change != TunnelOutcome::Change::kUnchanged && o.status.ok()) o.status = s;
  }
}

ApplyOutcome Applier::Apply(const DesiredState& next) {
  ApplyOutcome out;
  const uint32_t priority = ProtectingPriority(next.bypass);

  // 1. Bypass rules first. On failure undo what this apply added and keep running the old state.
  std::vector<kernel::PolicyId> added;
  auto old_ids = BypassIds(has_state_ ? current_.bypass : std::vector<BypassConfig>{});
  if (absl::Status s = InstallBypass(next.bypass, &added); !s.ok()) {
    for (const auto& id : added) {
      if (old_ids.ok() && !old_ids->count(id)) (void)xfrm_.DeletePolicy(id);
    }
    out.status = s;
    return out;
  }

  // 2. Trust before tunnels: a CRL revoking a peer applies to every negotiation from now on.
  if (absl::Status s = ike_.SetTrust(next.ca_chain_pem, next.crl_pem); !s.ok()) {
    spdlog::warn("event=ike_set_trust_failed error=\"{}\"", std::string(s.message()));
  }

  const ConnectionOptions opts = Options(next);
  // 3. Added and changed tunnels, bringing the new up before the old goes (IKE config changes are
  // batched: the engine loads the new config once, after step 4).
  ike_.BeginBatch();
  for (const auto& t : next.tunnels) {
    const TunnelConfig* old = has_state_ ? Find(current_.tunnels, t.name) : nullptr;
    TunnelOutcome o{t.name, TunnelOutcome::Change::kUnchanged, absl::OkStatus()};
    if (old && *old == t && priority == priority_) {
      out.tunnels.push_back(o);
      continue;
    }
    if (!old) {
      o.change = TunnelOutcome::Change::kAdded;
      o.status = IsStatic(t) ? InstallStatic(t, priority) : ike_.AddConnection(t, opts);
    } else {
      o.change = TunnelOutcome::Change::kChanged;
      if (IsStatic(t) && IsStatic(*old)) {
        // New SAs and policies first (update in place where the ids match), then whatever of
        // the old set the new one no longer contains.
        o.status = InstallStatic(t, priority);
        if (o.status.ok()) {
          auto new_sas = StaticTunnelSas(t);
          auto old_sas = StaticTunnelSas(*old);
          if (new_sas.ok() && old_sas.ok()) {
            for (const auto* osa : {&old_sas->outbound, &old_sas->inbound}) {
              if (osa->id() != new_sas->outbound.id() && osa->id() != new_sas->inbound.id()) {
                (void)xfrm_.DeleteSa(osa->id());
              }
            }
          }
          auto new_pols = TunnelPolicies(t, priority);
          auto old_pols = TunnelPolicies(*old, priority_);
          if (new_pols.ok() && old_pols.ok()) {
            std::set<kernel::PolicyId> keep;
            for (const auto& p : *new_pols) keep.insert(p.id());
            for (const auto& p : *old_pols) {
              if (!keep.count(p.id())) (void)xfrm_.DeletePolicy(p.id());
            }
          }
        }
      } else if (!IsStatic(t) && !IsStatic(*old)) {
        o.status = ike_.ReplaceConnection(t, opts);
      } else if (IsStatic(t)) {  // IKE -> static: static SAs up, then the IKE connection goes
        o.status = InstallStatic(t, priority);
        if (o.status.ok()) (void)ike_.RemoveConnection(t.name);
      } else {  // static -> IKE: load IKE first; its policies replace the static ones
        o.status = ike_.AddConnection(t, opts);
        if (o.status.ok()) (void)RemoveStatic(*old);
      }
    }
    if (!o.status.ok()) {
      spdlog::warn("event=tunnel_apply_failed tunnel={} error=\"{}\"", t.name, std::string(o.status.message()));
    }
    out.tunnels.push_back(std::move(o));
  }

  // 4. Removed tunnels.
  if (has_state_) {
    for (const auto& old : current_.tunnels) {
      if (Find(next.tunnels, old.name)) continue;
      TunnelOutcome o{old.name, TunnelOutcome::Change::kRemoved, absl::OkStatus()};
      o.status = IsStatic(old) ? RemoveStatic(old) : ike_.RemoveConnection(old.name);
      out.tunnels.push_back(std::move(o));
    }
  }
  EndIkeBatch(next, out);

  // 5. Bypass rules that are no longer wanted, last.
  auto new_ids = BypassIds(next.bypass);
  if (old_ids.ok() && new_ids.ok()) {
    for (const auto& id : *old_ids) {
      if (!new_ids->count(id)) (void)xfrm_.DeletePolicy(id);
    }
  }

  current_ = next;
  has_state_ = true;
  priority_ = priority;
  return out;
}

ApplyOutcome Applier::Restore(const DesiredState& state) {
  ApplyOutcome out;
  const uint32_t priority = ProtectingPriority(state.bypass);
  kernel::DesiredState want;
  for (const auto& r : state.bypass) {
    auto pols = BypassPolicies(r);
    if (!pols.ok()) {
      out.status = pols.status();
      return out;
    }
    want.policies.insert(want.policies.end(), pols->begin(), pols->end());
  }
  for (const auto& t : state.tunnels) {
    if (!IsStatic(t)) continue;
    auto sas = StaticTunnelSas(t);
    auto pols = TunnelPolicies(t, priority);
    if (!sas.ok() || !pols.ok()) continue;
    want.sas.push_back(sas->inbound);
    want.sas.push_back(sas->outbound);
    want.policies.insert(want.policies.end(), pols->begin(), pols->end());
  }
  auto rep = xfrm_.Reconcile(want);
  if (!rep.ok()) {
    // Fall back to a plain apply: still make-before-break, leftovers stay until health finds them.
    spdlog::warn("event=reconcile_failed error=\"{}\"", std::string(rep.status().message()));
    has_state_ = false;
    return Apply(state);
  }
  spdlog::info("event=kernel_reconciled sas_added={} sas_removed={} policies_added={} policies_removed={}",
               rep->sas_added, rep->sas_removed, rep->policies_added, rep->policies_removed);
  (void)ike_.SetTrust(state.ca_chain_pem, state.crl_pem);
  const ConnectionOptions opts = Options(state);
  ike_.BeginBatch();
  for (const auto& t : state.tunnels) {
    TunnelOutcome o{t.name, TunnelOutcome::Change::kAdded, absl::OkStatus()};
    if (!IsStatic(t)) o.status = ike_.AddConnection(t, opts);
    out.tunnels.push_back(std::move(o));
  }
  EndIkeBatch(state, out);
  // After a restart our peers may still hold SAs with us that we lost. Negotiating from our side
  // too, where we are the responder, sends them INITIAL_CONTACT (RFC 7296 2.4): they drop the old
  // SAs at once instead of finding them stale seconds later. A simultaneous start by the peer
  // settles to one IKE_SA in the engine.
  for (const auto& t : state.tunnels) {
    if (IsStatic(t) || t.initiator || t.start != StartKind::kStart) continue;
    if (absl::Status s = ike_.Initiate(t.name); !s.ok())
      spdlog::warn("event=restore_initiate_failed tunnel={} error=\"{}\"", t.name, std::string(s.message()));
  }
  current_ = state;
  has_state_ = true;
  priority_ = priority;
  return out;
}

}  // namespace ipfleet::agent
