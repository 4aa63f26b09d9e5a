// CHILD_SA rekey (RFC 7296 1.3.3): CREATE_CHILD_SA with REKEY_SA, SA, Nonce, optional KE (PFS),
// TSi/TSr. Make-before-break and the 2.8.1 collision rule as described in rekey.h.
#include <absl/strings/str_cat.h>

#include "../rekey.h"

namespace ipfleet::ike::internal {
namespace {

uint16_t DhOf(const Proposal& p) { return TransformId(p, TransformType::kDh).value_or(0); }

bool Offers(const std::vector<Proposal>& props, uint16_t group) {
  for (const auto& p : props)
    for (const auto& t : p.transforms)
      if (t.type == TransformType::kDh && t.id == group) return true;
  return false;
}

// KEYMAT of a rekeyed child (2.17): prf+(SK_d, [g^ir new] | Ni | Nr); first half initiator->responder.
absl::StatusOr<Bytes> Keymat(IkeSa& sa, const Proposal& p, ByteView shared, const Bytes& ni, const Bytes& nr,
                             bool we_initiated) {
  IPFLEET_ASSIGN_OR_RETURN(size_t len, EspKeymatLen(p));
  IPFLEET_ASSIGN_OR_RETURN(Bytes k, DeriveChildKeymat(*sa.prf, sa.keys->sk_d, shared, ni, nr, len));
  if (we_initiated) return k;
  // InstallChild wants our outbound keys first; the responder's outbound is the second half.
  Bytes swapped(k.begin() + len / 2, k.end());
  swapped.insert(swapped.end(), k.begin(), k.begin() + len / 2);
  Wipe(k);
  return swapped;
}

class ChildRekey : public RequestResponseTask {
 public:
  ChildRekey(bool initiator, uint64_t old_id, uint16_t group) : RequestResponseTask(initiator), old_id_(old_id), group_(group) {}
  const char* name() const override { return "child_rekey"; }

 private:
  ChildSa* NewSuccessor(IkeSa& sa, const ChildSa& old, bool ours) {
    auto c = std::make_unique<ChildSa>();
    c->id = sa.svc.NextId();
    c->cfg = old.cfg;
    c->created = sa.svc.now();
    c->mode = old.mode;
    c->ts_local = old.ts_local;
    c->ts_remote = old.ts_remote;
    c->replaces = old.id;
    c->created_by_us = ours;
    sa.children.push_back(std::move(c));
    new_id_ = sa.children.back()->id;
    return sa.children.back().get();
  }

  void Drop(IkeSa& sa, const std::string& why) {
    spdlog::warn("child_rekey_failed {} old_child={} reason=\"{}\"", sa.log_prefix(), old_id_, why);
    if (ChildSa* c = sa.FindChild(new_id_)) {
      UninstallChild(sa, *c);
      std::erase_if(sa.children, [&](const auto& p) { return p->id == new_id_; });
    }
    new_id_ = 0;
  }

  // ---- initiator ----
  absl::Status BuildRequest(IkeSa& sa, Exchange& ex, std::vector<Payload>& out) override {
    ChildSa* old = sa.FindChild(old_id_);
    if (!old || old->state != ChildState::kInstalled || old->replaced_by || old->peer_replaced_by || old->redundant) {
      if (old) old->rekey_queued = false;
      return absl::FailedPreconditionError(absl::StrCat("CHILD_SA ", old_id_, " gone or already rekeyed"));
    }
    props_ = RekeyProposals(*old->cfg);
    if (!group_ && !props_.empty()) group_ = DhOf(props_.front());
    ChildSa* c = NewSuccessor(sa, *old, true);
    if (absl::Status s = AllocInboundSpi(sa, *c); !s.ok()) {
      old->rekey_queued = false;
      Drop(sa, absl::StrCat("SPI allocation: ", Msg(s)));
      return s;
    }
    out.push_back({PayloadType::kNotify, false, NotifyPayload{ProtocolId::kEsp, Be32(old->spi_in),
                                                              static_cast<uint16_t>(NotifyType::kRekeySa), {}}});
    if (old->mode == kernel::Mode::kTransport) out.push_back(MakeNotify(NotifyType::kUseTransportMode));
    SaPayload sp;
    uint8_t n = 1;
    for (Proposal p : props_) {
      p.number = n++;
      p.spi = Be32(c->spi_in);
      sp.proposals.push_back(std::move(p));
    }
    out.push_back({PayloadType::kSa, false, std::move(sp)});
    ex.ni = RandomBytes(32);
    out.push_back({PayloadType::kNonce, false, NoncePayload{ex.ni}});
    if (group_) {
      IPFLEET_ASSIGN_OR_RETURN(DhKey k, DhKey::Generate(group_));
      dh_ = std::move(k);
      out.push_back({PayloadType::kKe, false, KePayload{group_, dh_->public_value()}});
    }
    out.push_back({PayloadType::kTsi, false, TsPayload{old->ts_local}});
    out.push_back({PayloadType::kTsr, false, TsPayload{old->ts_remote}});
    return absl::OkStatus();
  }

  void ProcessResponse(IkeSa& sa, Exchange& ex, const std::vector<Payload>& in) override {
    ChildSa* old = sa.FindChild(old_id_);
    if (old) old->rekey_queued = false;
    ChildSa* c = sa.FindChild(new_id_);
    if (!c) return;
    if (auto* n = FindErrorNotify(in)) {
      uint16_t type = n->type;
      uint16_t want = n->data.size() == 2 ? uint16_t(n->data[0] << 8 | n->data[1]) : 0;
      Drop(sa, absl::StrCat("peer answered ", NotifyName(type)));
      if (!old || old->peer_replaced_by) return;  // the peer's own rekey of it takes over
      if (type == static_cast<uint16_t>(NotifyType::kInvalidKePayload) && want != group_ && Offers(props_, want)) {
        old->rekey_queued = true;
        auto again = std::make_unique<Exchange>();
        again->type = ExchangeType::kCreateChildSa;
        again->tasks.push_back(NewChildRekey(true, old_id_, want));
        sa.queue.push_front(std::move(again));
      } else if (type == static_cast<uint16_t>(NotifyType::kChildSaNotFound)) {
        // The peer no longer has it: replace it with a fresh CHILD_SA.
        auto fresh = std::make_unique<Exchange>();
        fresh->type = ExchangeType::kCreateChildSa;
        fresh->tasks.push_back(NewChildCreate(true, old->cfg, false));
        sa.queue.push_back(std::move(fresh));
        UninstallChild(sa, *old);
        uint64_t oid = old->id;
        sa.svc.Emit(Event{EventType::kChildDeleted, sa.peer->cfg.name, sa.id, oid, "peer_lost_child"});
        std::erase_if(sa.children, [&](const auto& p) { return p->id == oid; });
      } else {
        // TEMPORARY_FAILURE (2.25) or a refusal: try again a little later.
        old->rekey_at = sa.svc.now() + Duration{2000 + static_cast<int64_t>(RandomBytes(1)[0]) * 12};
      }
      return;
    }
    auto* sp = Get<SaPayload>(in, PayloadType::kSa);
    auto* no = Get<NoncePayload>(in, PayloadType::kNonce);
    auto* tsi = Get<TsPayload>(in, PayloadType::kTsi);
    auto* tsr = Get<TsPayload>(in, PayloadType::kTsr);
    auto* ke = Get<KePayload>(in, PayloadType::kKe);
    if (!sp || !no || !tsi || !tsr) return Drop(sa, "response lacks SA, Nonce, TSi or TSr");
    if (sp->proposals.size() != 1 || sp->proposals[0].spi.size() != 4 || !ProposalAcceptable(sp->proposals[0], props_))
      return Drop(sa, "responder chose an ESP proposal we did not offer");
    if (DhOf(sp->proposals[0]) != group_) return Drop(sa, "responder's DH group differs from our KE");
    if ((group_ != 0) != (ke != nullptr) || (ke && ke->group != group_)) return Drop(sa, "KE payload missing or of another group");
    if (!TsSubset(tsi->selectors, c->ts_local) || !TsSubset(tsr->selectors, c->ts_remote))
      return Drop(sa, "responder's traffic selectors are not a subset of ours");
    ex.nr = no->data;
    c->proposal = sp->proposals[0];
    c->spi_out = ReadBe32(sp->proposals[0].spi);
    c->ts_local = tsi->selectors;
    c->ts_remote = tsr->selectors;
    c->ex_ni = ex.ni;
    c->ex_nr = ex.nr;
    Bytes shared;
    if (ke) {
      auto s = dh_->Derive(ke->data);
      if (!s.ok()) return Drop(sa, absl::StrCat("peer KE: ", Msg(s.status())));
      shared = std::move(*s);
    }
    auto keymat = Keymat(sa, c->proposal, shared, ex.ni, ex.nr, true);
    Wipe(shared);
    if (!keymat.ok()) return Drop(sa, Msg(keymat.status()));

    // 2.8.1: did the peer rekey the same child meanwhile (we answered its request)? Found through its
    // `replaces`, not the old child: a peer that won may have deleted the old child before our response
    // came (a lost response, seen with charon), and our successor is then the redundant one all the same.
    ChildSa* theirs = nullptr;
    for (const auto& ch : sa.children)
      if (ch->id != c->id && ch->replaces == old_id_ && !ch->created_by_us) theirs = ch.get();
    bool ours_lost = theirs && LowestNonceIn(ex.ni, ex.nr, theirs->ex_ni, theirs->ex_nr);
    absl::Status st;
    if (ours_lost) {
      kernel::SaParams unused;  // never sent on: the peer deletes nothing, we delete this one
      st = InstallChild(sa, *c, *keymat, &unused);
      if (unused.aead) Wipe(unused.aead->key);
      if (unused.crypt) Wipe(unused.crypt->key);
      if (unused.auth) Wipe(unused.auth->key);
    } else {
      st = InstallChild(sa, *c, *keymat);  // inbound first, then outbound: traffic moves over now
    }
    Wipe(*keymat);
    if (!st.ok()) return Drop(sa, Msg(st));
    c->state = ChildState::kInstalled;
    std::string suite = ProposalSuiteName(c->proposal);
    spdlog::info("child_sa_rekeyed {} old_child={} child={} spi_in={:08x} spi_out={:08x} pfs_group={} suite={} collision={}",
                 sa.log_prefix(), old_id_, c->id, c->spi_in, c->spi_out, group_, suite,
                 theirs ? (ours_lost ? "lost" : "won") : "none");
    sa.svc.Emit(Event{EventType::kChildInstalled, sa.peer->cfg.name, sa.id, c->id, suite});
    auto del = [&](uint64_t id) {
      auto d = std::make_unique<Exchange>();
      d->type = ExchangeType::kInformational;
      d->tasks.push_back(NewChildDelete(true, id));
      sa.queue.push_back(std::move(d));
    };
    if (ours_lost) {
      c->redundant = true;
      del(c->id);  // the peer's successor stays; the peer deletes the old child
      return;
    }
    if (theirs) {
      theirs->redundant = true;  // the peer deletes it; its outbound SA is never installed
      if (theirs->pending_out) {
        theirs->pending_out.reset();
        theirs->activate_at = TimePoint::max();
      }
    }
    if (old) {
      old->replaced_by = c->id;
      del(old->id);
    }
  }

  // ---- responder ----
  absl::Status ProcessRequest(IkeSa& sa, Exchange& ex, const std::vector<Payload>& in) override {
    const NotifyPayload* rk = FindNotify(in, NotifyType::kRekeySa);
    ChildSa* old = rk && rk->spi.size() == 4 ? sa.FindChildBySpiOut(ReadBe32(rk->spi)) : nullptr;
    if (!old || old->state != ChildState::kInstalled) {
      refuse_ = NotifyType::kChildSaNotFound;
      return absl::OkStatus();
    }
    if (old->replaced_by || old->peer_replaced_by || old->redundant || old->remove_at != TimePoint::max()) {
      refuse_ = NotifyType::kTemporaryFailure;  // 2.25: we already rekeyed (or are deleting) it
      return absl::OkStatus();
    }
    old_id_ = old->id;
    auto* sp = Get<SaPayload>(in, PayloadType::kSa);
    auto* no = Get<NoncePayload>(in, PayloadType::kNonce);
    auto* ke = Get<KePayload>(in, PayloadType::kKe);
    if (!sp || !no || !Get<TsPayload>(in, PayloadType::kTsi) || !Get<TsPayload>(in, PayloadType::kTsr)) {
      refuse_ = NotifyType::kInvalidSyntax;
      return absl::OkStatus();
    }
    ex.ni = no->data;
    props_ = RekeyProposals(*old->cfg);
    auto chosen = SelectProposal(sp->proposals, props_);
    if (!chosen || chosen->spi.size() != 4) {
      std::string why = DescribeMismatch(sp->proposals, props_);
      spdlog::warn("proposal_mismatch {} exchange=CREATE_CHILD_SA(rekey) protocol=ESP child={} {}", sa.log_prefix(),
                   old->cfg->cfg.name, why);
      sa.svc.Emit(Event{EventType::kProposalMismatch, sa.peer->cfg.name, sa.id, old->id, "ESP " + why});
      refuse_ = NotifyType::kNoProposalChosen;
      return absl::OkStatus();
    }
    group_ = DhOf(*chosen);
    if (group_ && (!ke || ke->group != group_)) {
      refuse_ = NotifyType::kInvalidKePayload;
      return absl::OkStatus();
    }
    if (!group_ && ke) {
      refuse_ = NotifyType::kNoProposalChosen;  // a KE but no DH transform chosen
      return absl::OkStatus();
    }
    if (ke) peer_ke_ = ke->data;
    chosen_ = *chosen;
    return absl::OkStatus();
  }

  absl::Status BuildResponse(IkeSa& sa, Exchange& ex, std::vector<Payload>& out) override {
    if (refuse_) {
      Bytes data;
      if (*refuse_ == NotifyType::kInvalidKePayload) data = Bytes{uint8_t(group_ >> 8), uint8_t(group_)};
      spdlog::info("child_rekey_refused {} notify={}", sa.log_prefix(), NotifyName(static_cast<uint16_t>(*refuse_)));
      out.push_back(MakeNotify(*refuse_, data));
      return absl::OkStatus();
    }
    ChildSa* old = sa.FindChild(old_id_);
    if (!old) {
      out.push_back(MakeNotify(NotifyType::kChildSaNotFound));
      return absl::OkStatus();
    }
    ChildSa* c = NewSuccessor(sa, *old, false);
    auto refuse = [&](const std::string& why) {
      Drop(sa, why);
      out.push_back(MakeNotify(NotifyType::kTemporaryFailure));
      return absl::OkStatus();
    };
    if (absl::Status s = AllocInboundSpi(sa, *c); !s.ok()) return refuse(absl::StrCat("SPI allocation: ", Msg(s)));
    c->spi_out = ReadBe32(chosen_.spi);
    c->proposal = chosen_;
    ex.nr = RandomBytes(32);
    c->ex_ni = ex.ni;
    c->ex_nr = ex.nr;
    Bytes shared;
    if (group_) {
      auto k = DhKey::Generate(group_);
      if (!k.ok()) return refuse(Msg(k.status()));
      dh_ = std::move(*k);
      auto s = dh_->Derive(peer_ke_);
      if (!s.ok()) return refuse(absl::StrCat("peer KE: ", Msg(s.status())));
      shared = std::move(*s);
    }
    auto keymat = Keymat(sa, c->proposal, shared, ex.ni, ex.nr, false);
    Wipe(shared);
    if (!keymat.ok()) return refuse(Msg(keymat.status()));
    kernel::SaParams held;
    absl::Status st = InstallChild(sa, *c, *keymat, &held);  // inbound now, outbound held back
    Wipe(*keymat);
    if (!st.ok()) return refuse(Msg(st));
    c->pending_out = std::move(held);
    Duration fallback = std::max<Duration>(sa.svc.config().rekey_grace * 5, Duration{10000});
    c->activate_at = sa.svc.now() + fallback;
    c->state = ChildState::kInstalled;
    old->peer_replaced_by = c->id;
    std::string suite = ProposalSuiteName(c->proposal);
    spdlog::info("child_sa_rekeyed {} old_child={} child={} spi_in={:08x} spi_out={:08x} pfs_group={} suite={} role=responder collision={}",
                 sa.log_prefix(), old->id, c->id, c->spi_in, c->spi_out, group_, suite, old->rekey_queued ? "pending" : "none");
    sa.svc.Emit(Event{EventType::kChildInstalled, sa.peer->cfg.name, sa.id, c->id, suite});
    Proposal mine = chosen_;
    mine.spi = Be32(c->spi_in);
    if (old->mode == kernel::Mode::kTransport) out.push_back(MakeNotify(NotifyType::kUseTransportMode));
    out.push_back({PayloadType::kSa, false, SaPayload{{mine}}});
    out.push_back({PayloadType::kNonce, false, NoncePayload{ex.nr}});
    if (group_) out.push_back({PayloadType::kKe, false, KePayload{group_, dh_->public_value()}});
    out.push_back({PayloadType::kTsi, false, TsPayload{c->ts_remote}});
    out.push_back({PayloadType::kTsr, false, TsPayload{c->ts_local}});
    return absl::OkStatus();
  }

  uint64_t old_id_;
  uint16_t group_;
  uint64_t new_id_ = 0;
  std::vector<Proposal> props_;
  std::optional<DhKey> dh_;
  std::optional<NotifyType> refuse_;
  Proposal chosen_;
  Bytes peer_ke_;
};

}  // namespace

std::unique_ptr<Task> NewChildRekey(bool initiator, uint64_t old_child_id, uint16_t dh_group) {
  return std::make_unique<ChildRekey>(initiator, old_child_id, dh_group);
}

std::unique_ptr<Task> NewCreateChildResponder(const std::vector<Payload>& in) {
  auto* sp = Get<SaPayload>(in, PayloadType::kSa);
  if (sp && !sp->proposals.empty() && sp->proposals[0].protocol == ProtocolId::kIke) return NewIkeRekey(false);
  if (FindNotify(in, NotifyType::kRekeySa)) return NewChildRekey(false, 0);
  return NewChildCreate(false, nullptr, false);
}

}  // namespace ipfleet::ike::internal
