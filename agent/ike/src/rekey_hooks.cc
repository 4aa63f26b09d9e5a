// Rekey timers and the hooks the SA manager calls (see rekey.h): lifetimes with jitter, the
// retirement of rekeyed children after a grace period, held-back outbound SAs, IKE_SA handover
// and the settling of duplicate IKE_SAs after a simultaneous start.
#include <absl/strings/str_cat.h>

#include <algorithm>
#include <cstring>

#include "rekey.h"

namespace ipfleet::ike::internal {
namespace {

constexpr TimePoint kNever = TimePoint::max();

// Uniform in [0, d] from the CSPRNG (jitter needs no crypto strength, but no second RNG either).
Duration RandomUpTo(Duration d) {
  if (d.count() <= 0) return Duration{0};
  Bytes b = RandomBytes(8);
  uint64_t v = 0;
  for (uint8_t x : b) v = v << 8 | x;
  return Duration{static_cast<int64_t>(v % (static_cast<uint64_t>(d.count()) + 1))};
}

std::unique_ptr<Exchange> Request(ExchangeType t, std::unique_ptr<Task> task) {
  auto ex = std::make_unique<Exchange>();
  ex->type = t;
  ex->initiator = true;
  ex->tasks.push_back(std::move(task));
  return ex;
}

void Arm(IkeSa& sa, ChildSa& c) {
  c.armed = true;
  const ChildConfig& cfg = c.cfg->cfg;
  if (cfg.rekey_time.count() > 0) {
    Duration jitter = RandomUpTo(std::min(cfg.rand_time, cfg.rekey_time / 2));
    c.rekey_at = c.created + cfg.rekey_time - jitter;
  }
  Duration life = cfg.life_time.count() > 0 ? cfg.life_time : cfg.rekey_time + cfg.rekey_time / 10;
  if (life.count() > 0) c.expire_at = c.created + life;
  (void)sa;
}

void ArmIke(IkeSa& sa) {
  sa.armed = true;
  const PeerConfig& cfg = sa.peer->cfg;
  if (cfg.ike_rekey_time.count() > 0)
    sa.rekey_at = sa.established_at + cfg.ike_rekey_time - RandomUpTo(std::min(cfg.ike_rand_time, cfg.ike_rekey_time / 2));
}

bool Usable(const ChildSa& c) {
  return c.state == ChildState::kInstalled && !c.replaced_by && !c.peer_replaced_by && !c.redundant &&
         c.remove_at == kNever;
}
bool IkeUsable(const IkeSa& sa) {
  return sa.state == IkeState::kEstablished && !sa.replaced_by && !sa.peer_replaced_by && !sa.redundant;
}

void FinalRemove(IkeSa& sa, uint64_t id, const char* why) {
  ChildSa* c = sa.FindChild(id);
  if (!c) return;
  spdlog::info("child_sa_deleted {} child={} name={} spi_in={:08x} spi_out={:08x} reason={}", sa.log_prefix(), c->id,
               c->cfg->cfg.name, c->spi_in, c->spi_out, why);
  UninstallChild(sa, *c);
  sa.svc.Emit(Event{EventType::kChildDeleted, sa.peer->cfg.name, sa.id, id, why});
  std::erase_if(sa.children, [&](const auto& p) { return p->id == id; });
}

}  // namespace

ChildSa::~ChildSa() {
  if (pending_out) {
    if (pending_out->aead) Wipe(pending_out->aead->key);
    if (pending_out->crypt) Wipe(pending_out->crypt->key);
    if (pending_out->auth) Wipe(pending_out->auth->key);
  }
}

kernel::Lifetime KernelLifetime(const ChildConfig& c) {
  kernel::Lifetime l;
  l.soft_bytes = c.rekey_bytes;
  l.hard_bytes = c.rekey_bytes + c.rekey_bytes / 10;
  l.soft_packets = c.rekey_packets;
  l.hard_packets = c.rekey_packets + c.rekey_packets / 10;
  // Time-based rekeying is the engine's (jittered) timer; the kernel only enforces the hard limit
  // a little after the engine's, as a safety net should the engine be gone.
  Duration life = c.life_time.count() > 0 ? c.life_time : c.rekey_time + c.rekey_time / 10;
  if (life.count() > 0) l.hard_add_seconds = static_cast<uint64_t>(life.count() / 1000) + 30;
  return l;
}

bool LowestNonceIn(ByteView a1, ByteView a2, ByteView b1, ByteView b2) {
  auto less = [](ByteView x, ByteView y) {
    return std::lexicographical_compare(x.begin(), x.end(), y.begin(), y.end());
  };
  ByteView a = less(a1, a2) ? a1 : a2;
  ByteView b = less(b1, b2) ? b1 : b2;
  return less(a, b);
}

std::vector<Proposal> RekeyProposals(const PeerRuntime::Child& c) {
  std::vector<Proposal> out;
  for (const auto& s : c.cfg.esp_proposals) {
    auto p = ParseProposal(s, ProtocolId::kEsp);
    if (p.ok()) out.push_back(std::move(*p));
  }
  return out;
}

void MoveChildren(IkeSa& from, IkeSa& to) {
  for (auto& c : from.children) to.children.push_back(std::move(c));
  from.children.clear();
  while (!from.queue.empty()) {
    to.queue.push_back(std::move(from.queue.front()));
    from.queue.pop_front();
  }
}

void ActivateOutbound(IkeSa& sa, ChildSa& c) {
  if (!c.pending_out) return;
  absl::Status s = sa.svc.xfrm().AddSa(*c.pending_out);
  if (c.pending_out->aead) Wipe(c.pending_out->aead->key);
  if (c.pending_out->crypt) Wipe(c.pending_out->crypt->key);
  if (c.pending_out->auth) Wipe(c.pending_out->auth->key);
  c.pending_out.reset();
  c.activate_at = kNever;
  if (!s.ok()) {
    spdlog::warn("child_outbound_failed {} child={} spi_out={:08x} reason=\"{}\"", sa.log_prefix(), c.id, c.spi_out, Msg(s));
    return;
  }
  spdlog::info("child_outbound_switched {} child={} spi_out={:08x}", sa.log_prefix(), c.id, c.spi_out);
}

bool RequestChildRekey(IkeSa& sa, ChildSa& c) {
  if (!Usable(c) || c.rekey_queued || !IkeUsable(sa)) return false;
  c.rekey_queued = true;
  spdlog::info("child_rekey_start {} child={} spi_in={:08x}", sa.log_prefix(), c.id, c.spi_in);
  sa.queue.push_back(Request(ExchangeType::kCreateChildSa, NewChildRekey(true, c.id)));
  return true;
}

bool RequestIkeRekey(IkeSa& sa) {
  if (!IkeUsable(sa) || sa.rekey_queued) return false;
  sa.rekey_queued = true;
  spdlog::info("ike_rekey_start {}", sa.log_prefix());
  sa.queue.push_back(Request(ExchangeType::kCreateChildSa, NewIkeRekey(true)));
  return true;
}

bool RekeyTick(IkeSa& sa, TimePoint now) {
  bool queued = false;
  if (sa.state == IkeState::kEstablished && !sa.armed) ArmIke(sa);
  if (IkeUsable(sa) && !sa.rekey_queued && now >= sa.rekey_at) {
    sa.rekey_at = kNever;
    queued |= RequestIkeRekey(sa);
  }
  std::vector<uint64_t> ids;
  for (const auto& c : sa.children) ids.push_back(c->id);
  for (uint64_t id : ids) {
    ChildSa* c = sa.FindChild(id);
    if (!c) continue;
    if (now >= c->remove_at) {
      FinalRemove(sa, id, "rekeyed");
      continue;
    }
    if (c->pending_out && !c->redundant && now >= c->activate_at) {
      spdlog::info("child_outbound_fallback {} child={} (no DELETE of the old SA came)", sa.log_prefix(), c->id);
      ActivateOutbound(sa, *c);
    }
    if (c->state == ChildState::kInstalled && !c->armed) Arm(sa, *c);
    if (!Usable(*c)) continue;
    if (now >= c->expire_at) {
      spdlog::info("child_hard_lifetime {} child={}", sa.log_prefix(), c->id);
      c->expire_at = kNever;
      sa.queue.push_back(Request(ExchangeType::kInformational, NewChildDelete(true, c->id)));
      queued = true;
      continue;
    }
    if (now >= c->rekey_at && !c->rekey_queued && IkeUsable(sa)) {
      c->rekey_at = kNever;
      queued |= RequestChildRekey(sa, *c);
    }
  }
  return queued;
}

std::optional<TimePoint> RekeyDeadline(const IkeSa& sa) {
  TimePoint best = kNever;
  if (sa.state == IkeState::kEstablished && !sa.armed) best = sa.svc.now();
  if (IkeUsable(sa) && !sa.rekey_queued) best = std::min(best, sa.rekey_at);
  for (const auto& c : sa.children) {
    if (c->state == ChildState::kInstalled && !c->armed) best = std::min(best, sa.svc.now());
    best = std::min(best, c->remove_at);
    if (c->pending_out && !c->redundant) best = std::min(best, c->activate_at);
    if (Usable(*c)) {
      best = std::min(best, c->expire_at);
      if (!c->rekey_queued) best = std::min(best, c->rekey_at);
    }
  }
  if (!sa.outstanding && !sa.queue.empty()) best = std::min(best, sa.svc.now());
  if (best == kNever) return std::nullopt;
  return best;
}

bool RetireChild(IkeSa& sa, ChildSa& c) {
  // The peer deleted (or we deleted) the child a held-back successor replaces: switch now.
  for (auto& s : sa.children)
    if (s->replaces == c.id && s->pending_out && !s->redundant) ActivateOutbound(sa, *s);
  if (!c.replaced_by && !c.peer_replaced_by) return false;
  if (c.remove_at != kNever) return true;  // already retired
  if (c.sas_installed) {
    kernel::SaId out{sa.remote.addr, c.spi_out, kernel::IpsecProto::kEsp, {}};
    if (auto s = sa.svc.xfrm().DeleteSa(out); !s.ok() && !absl::IsNotFound(s))
      spdlog::warn("child_uninstall_failed {} child={} sa=out reason=\"{}\"", sa.log_prefix(), c.id, Msg(s));
  }
  c.state = ChildState::kDeleting;
  c.remove_at = sa.svc.now() + sa.svc.config().rekey_grace;
  spdlog::info("child_sa_retired {} child={} spi_in={:08x} grace_ms={}", sa.log_prefix(), c.id, c.spi_in,
               sa.svc.config().rekey_grace.count());
  return true;
}

void HandOverBeforeDestroy(IkeSa& sa) {
  if (sa.children.empty() && sa.queue.empty()) return;
  for (uint64_t next : {sa.replaced_by, sa.peer_replaced_by}) {
    if (!next) continue;
    IkeSa* n = sa.svc.FindIke(next);
    if (!n || n->redundant) continue;
    spdlog::info("ike_children_handover {} to_ike={} children={}", sa.log_prefix(), n->id, sa.children.size());
    MoveChildren(sa, *n);
    return;
  }
}

bool ResolveDuplicates(IkeSa& sa) {
  if (!IkeUsable(sa) || sa.peer_id.empty()) return false;
  for (IkeSa* o : sa.svc.AllIke()) {
    if (o == &sa || !IkeUsable(*o) || o->initiator == sa.initiator || o->peer->cfg.name != sa.peer->cfg.name ||
        !(o->peer_id == sa.peer_id) || !(o->my_id == sa.my_id))
      continue;
    // Only SAs whose negotiations overlapped are duplicates of one start; an SA established
    // before the other was even created is an older one (e.g. stale after a peer restart).
    if (o->established_at < sa.created || sa.established_at < o->created) continue;
    // Both ends see the same two IKE_SAs and the same nonces: the one with the lowest nonce goes.
    IkeSa* loser = LowestNonceIn(sa.ni, sa.nr, o->ni, o->nr) ? &sa : o;
    IkeSa* winner = loser == &sa ? o : &sa;
    loser->redundant = true;
    spdlog::info("ike_duplicate {} keep_ike={} drop_ike={} deleter={}", sa.log_prefix(), winner->id, loser->id,
                 loser->initiator ? "us" : "peer");
    if (!loser->initiator) return false;  // the peer created it and deletes it
    // Stop sending on the duplicate's CHILD_SAs first (the kernel falls back to the surviving
    // pair), then delete the IKE_SA; its inbound SAs stay until the peer answers.
    for (auto& c : loser->children)
      if (c->sas_installed) (void)sa.svc.xfrm().DeleteSa(kernel::SaId{loser->remote.addr, c->spi_out, kernel::IpsecProto::kEsp, {}});
    loser->queue.clear();
    loser->state = IkeState::kDeleting;
    loser->queue.push_back(Request(ExchangeType::kInformational, NewIkeDelete(true)));
    return true;
  }
  return false;
}

}  // namespace ipfleet::ike::internal
