// IKE_SA rekey (RFC 7296 1.3.2, 2.18): CREATE_CHILD_SA with an IKE proposal carrying the new
// SPI, Nonce and KE. The new IKE_SA's keys come from the old SK_d:
//   SKEYSEED = prf_old(SK_d old, g^ir new | Ni | Nr), {SK_d ...} = prf+_new(SKEYSEED, Ni | Nr | SPIi | SPIr).
// The exchange's initiator is the new SA's initiator; CHILD_SAs move to the new SA and the old
// one is deleted by the rekey initiator. Collisions follow 2.8.1 (see rekey.h).
#include <absl/strings/str_cat.h>

#include "../rekey.h"

namespace ipfleet::ike::internal {
namespace {

Bytes Spi8(uint64_t v) {
  Bytes b;
  for (int s = 56; s >= 0; s -= 8) b.push_back(uint8_t(v >> s));
  return b;
}
uint64_t ReadSpi8(const Bytes& b) {
  uint64_t v = 0;
  for (uint8_t x : b) v = v << 8 | x;
  return v;
}

absl::Status DeriveRekeyed(const IkeSa& old, IkeSa& n, ByteView shared) {
  uint16_t key_bits = 0;
  auto encr_id = TransformId(*n.proposal, TransformType::kEncr, &key_bits);
  auto prf_id = TransformId(*n.proposal, TransformType::kPrf);
  auto integ_id = TransformId(*n.proposal, TransformType::kInteg).value_or(integ::kNone);
  if (!encr_id || !prf_id) return absl::InvalidArgumentError("IKE proposal lacks ENCR or PRF");
  IPFLEET_ASSIGN_OR_RETURN(Prf p, Prf::FromTransform(*prf_id));
  IPFLEET_ASSIGN_OR_RETURN(SkCipher c, SkCipher::Create(*encr_id, key_bits, integ_id));
  Bytes seed(shared.begin(), shared.end());
  seed.insert(seed.end(), n.ni.begin(), n.ni.end());
  seed.insert(seed.end(), n.nr.begin(), n.nr.end());
  IkeKeys k;
  // The old SA's PRF keyed with its SK_d makes SKEYSEED; the new PRF runs prf+.
  auto skeyseed = old.prf->Compute(old.keys->sk_d, seed);
  Wipe(seed);
  if (!skeyseed.ok()) return skeyseed.status();
  k.skeyseed = std::move(*skeyseed);
  Bytes s2 = n.ni;
  s2.insert(s2.end(), n.nr.begin(), n.nr.end());
  for (uint64_t spi : {n.spi_i, n.spi_r}) {
    Bytes b = Spi8(spi);
    s2.insert(s2.end(), b.begin(), b.end());
  }
  size_t lp = p.key_len(), li = c.integ_key_len(), le = c.encr_key_len();
  IPFLEET_ASSIGN_OR_RETURN(Bytes stream, p.Plus(k.skeyseed, s2, 3 * lp + 2 * li + 2 * le));
  size_t off = 0;
  auto take = [&](size_t len) {
    Bytes b(stream.begin() + off, stream.begin() + off + len);
    off += len;
    return b;
  };
  k.sk_d = take(lp);
  k.sk_ai = take(li);
  k.sk_ar = take(li);
  k.sk_ei = take(le);
  k.sk_er = take(le);
  k.sk_pi = take(lp);
  k.sk_pr = take(lp);
  Wipe(stream);
  n.prf = p;
  n.cipher = c;
  n.keys = std::make_unique<IkeKeys>(std::move(k));
  return absl::OkStatus();
}

// What the new IKE_SA inherits from the old one.
void Inherit(const IkeSa& old, IkeSa& n) {
  n.peer_id = old.peer_id;
  n.my_id = old.my_id;
  n.peer_sig_hashes = old.peer_sig_hashes;
  n.nat_detected = old.nat_detected;
  n.nat_local = old.nat_local;
  n.nat_remote = old.nat_remote;
  n.frag_supported = old.frag_supported;
  n.state = IkeState::kEstablished;
  n.established_at = n.created = n.last_heard = old.svc.now();
}

class IkeRekey : public RequestResponseTask {
 public:
  IkeRekey(bool initiator, uint16_t group) : RequestResponseTask(initiator), group_(group) {}
  const char* name() const override { return "ike_rekey"; }

 private:
  absl::Status BuildRequest(IkeSa& sa, Exchange&, std::vector<Payload>& out) override {
    if (sa.state != IkeState::kEstablished || sa.replaced_by || sa.peer_replaced_by || sa.redundant) {
      sa.rekey_queued = false;
      return absl::FailedPreconditionError("IKE_SA not established or already rekeyed");
    }
    ns_ = std::make_unique<IkeSa>(sa.svc, sa.svc.NextId(), sa.peer, true, sa.local, sa.remote);
    ns_->spi_i = sa.svc.NewIkeSpi();
    if (!group_) group_ = sa.ke_group;
    IPFLEET_ASSIGN_OR_RETURN(DhKey k, DhKey::Generate(group_));
    ns_->dh = std::move(k);
    ns_->ke_group = group_;
    ns_->ni = RandomBytes(32);
    SaPayload sp;
    uint8_t n = 1;
    for (Proposal p : sa.peer->ike_proposals) {
      p.number = n++;
      p.spi = Spi8(ns_->spi_i);
      sp.proposals.push_back(std::move(p));
    }
    out.push_back({PayloadType::kSa, false, std::move(sp)});
    out.push_back({PayloadType::kNonce, false, NoncePayload{ns_->ni}});
    out.push_back({PayloadType::kKe, false, KePayload{group_, ns_->dh->public_value()}});
    return absl::OkStatus();
  }

  void Abandon(IkeSa& sa, const std::string& why, bool retry) {
    spdlog::warn("ike_rekey_failed {} reason=\"{}\"", sa.log_prefix(), why);
    ns_.reset();
    // The peer's rekey of this SA completed meanwhile: its SA takes the children.
    if (IkeSa* theirs = sa.peer_replaced_by ? sa.svc.FindIke(sa.peer_replaced_by) : nullptr) {
      MoveChildren(sa, *theirs);
      return;
    }
    if (retry) sa.rekey_at = sa.svc.now() + Duration{2000 + static_cast<int64_t>(RandomBytes(1)[0]) * 12};
  }

  void ProcessResponse(IkeSa& sa, Exchange&, const std::vector<Payload>& in) override {
    sa.rekey_queued = false;
    if (!ns_) return;
    if (auto* n = FindErrorNotify(in)) {
      uint16_t want = n->data.size() == 2 ? uint16_t(n->data[0] << 8 | n->data[1]) : 0;
      bool offered = false;
      for (const auto& p : sa.peer->ike_proposals)
        for (const auto& t : p.transforms) offered |= t.type == TransformType::kDh && t.id == want;
      if (n->type == static_cast<uint16_t>(NotifyType::kInvalidKePayload) && offered && want != group_ &&
          !sa.peer_replaced_by) {
        ns_.reset();
        sa.rekey_queued = true;
        auto again = std::make_unique<Exchange>();
        again->type = ExchangeType::kCreateChildSa;
        again->tasks.push_back(NewIkeRekey(true, want));
        sa.queue.push_front(std::move(again));
        return;
      }
      return Abandon(sa, absl::StrCat("peer answered ", NotifyName(n->type)), true);
    }
    auto* sp = Get<SaPayload>(in, PayloadType::kSa);
    auto* no = Get<NoncePayload>(in, PayloadType::kNonce);
    auto* ke = Get<KePayload>(in, PayloadType::kKe);
    if (!sp || !no || !ke) return Abandon(sa, "response lacks SA, Nonce or KE", true);
    if (sp->proposals.size() != 1 || sp->proposals[0].spi.size() != 8 ||
        !ProposalAcceptable(sp->proposals[0], sa.peer->ike_proposals))
      return Abandon(sa, "responder chose an IKE proposal we did not offer", true);
    Proposal chosen = sp->proposals[0];
    if (TransformId(chosen, TransformType::kDh).value_or(0) != group_ || ke->group != group_)
      return Abandon(sa, "responder's DH group differs from our KE", true);
    ns_->spi_r = ReadSpi8(chosen.spi);
    chosen.spi.clear();
    ns_->proposal = chosen;
    ns_->nr = no->data;
    auto shared = ns_->dh->Derive(ke->data);
    if (!shared.ok()) return Abandon(sa, Msg(shared.status()), true);
    absl::Status st = DeriveRekeyed(sa, *ns_, *shared);
    Wipe(*shared);
    if (!st.ok()) return Abandon(sa, Msg(st), true);
    Inherit(sa, *ns_);
    IkeSa* theirs = sa.peer_replaced_by ? sa.svc.FindIke(sa.peer_replaced_by) : nullptr;
    bool ours_lost = theirs && LowestNonceIn(ns_->ni, ns_->nr, theirs->ni, theirs->nr);
    IkeSa& n = sa.svc.AdoptIkeSa(std::move(ns_));
    spdlog::info("ike_sa_rekeyed {} new_ike={} new_spis={:016x}_i/{:016x}_r suite={} collision={}", sa.log_prefix(), n.id,
                 n.spi_i, n.spi_r, n.suite(), theirs ? (ours_lost ? "lost" : "won") : "none");
    auto del = [](IkeSa& target) {
      auto d = std::make_unique<Exchange>();
      d->type = ExchangeType::kInformational;
      d->tasks.push_back(NewIkeDelete(true));
      target.queue.push_back(std::move(d));
    };
    if (ours_lost) {
      n.redundant = true;
      MoveChildren(sa, *theirs);  // the peer's new SA wins; the peer deletes the old one
      del(n);
      return;
    }
    if (theirs) {
      theirs->redundant = true;  // the peer deletes it
      MoveChildren(*theirs, n);
    }
    MoveChildren(sa, n);
    sa.replaced_by = n.id;
    sa.svc.Emit(Event{EventType::kIkeEstablished, sa.peer->cfg.name, n.id, 0, absl::StrCat("rekeyed from ike=", sa.id)});
    del(sa);
  }

  absl::Status ProcessRequest(IkeSa& sa, Exchange& ex, const std::vector<Payload>& in) override {
    if (sa.state != IkeState::kEstablished || sa.replaced_by || sa.peer_replaced_by || sa.redundant) {
      refuse_ = NotifyType::kTemporaryFailure;  // 2.25: already rekeyed or being deleted
      return absl::OkStatus();
    }
    auto* sp = Get<SaPayload>(in, PayloadType::kSa);
    auto* no = Get<NoncePayload>(in, PayloadType::kNonce);
    auto* ke = Get<KePayload>(in, PayloadType::kKe);
    if (!sp || !no || !ke) {
      refuse_ = NotifyType::kInvalidSyntax;
      return absl::OkStatus();
    }
    auto chosen = SelectProposal(sp->proposals, sa.peer->ike_proposals);
    if (!chosen || chosen->spi.size() != 8) {
      std::string why = DescribeMismatch(sp->proposals, sa.peer->ike_proposals);
      spdlog::warn("proposal_mismatch {} exchange=CREATE_CHILD_SA(ike rekey) protocol=IKE {}", sa.log_prefix(), why);
      refuse_ = NotifyType::kNoProposalChosen;
      return absl::OkStatus();
    }
    group_ = TransformId(*chosen, TransformType::kDh).value_or(0);
    if (ke->group != group_) {
      refuse_ = NotifyType::kInvalidKePayload;
      return absl::OkStatus();
    }
    peer_spi_ = ReadSpi8(chosen->spi);
    chosen->spi.clear();
    chosen_ = *chosen;
    ex.ni = no->data;
    peer_ke_ = ke->data;
    return absl::OkStatus();
  }

  absl::Status BuildResponse(IkeSa& sa, Exchange& ex, std::vector<Payload>& out) override {
    if (refuse_) {
      Bytes data;
      if (*refuse_ == NotifyType::kInvalidKePayload) data = Bytes{uint8_t(group_ >> 8), uint8_t(group_)};
      spdlog::info("ike_rekey_refused {} notify={}", sa.log_prefix(), NotifyName(static_cast<uint16_t>(*refuse_)));
      out.push_back(MakeNotify(*refuse_, data));
      return absl::OkStatus();
    }
    auto n = std::make_unique<IkeSa>(sa.svc, sa.svc.NextId(), sa.peer, false, sa.local, sa.remote);
    n->spi_i = peer_spi_;
    n->spi_r = sa.svc.NewIkeSpi();
    n->proposal = chosen_;
    n->ke_group = group_;
    n->ni = ex.ni;
    n->nr = RandomBytes(32);
    auto fail = [&](const absl::Status& s) {
      spdlog::warn("ike_rekey_failed {} role=responder reason=\"{}\"", sa.log_prefix(), Msg(s));
      out.push_back(MakeNotify(NotifyType::kTemporaryFailure));
      return absl::OkStatus();
    };
    auto k = DhKey::Generate(group_);
    if (!k.ok()) return fail(k.status());
    n->dh = std::move(*k);
    auto shared = n->dh->Derive(peer_ke_);
    if (!shared.ok()) return fail(shared.status());
    absl::Status st = DeriveRekeyed(sa, *n, *shared);
    Wipe(*shared);
    if (!st.ok()) return fail(st);
    Inherit(sa, *n);
    Bytes nr = n->nr, pub = n->dh->public_value();
    Proposal mine = chosen_;
    mine.spi = Spi8(n->spi_r);
    IkeSa& adopted = sa.svc.AdoptIkeSa(std::move(n));
    sa.peer_replaced_by = adopted.id;
    // Our own rekey of this SA in flight: decided when its response arrives (2.8.1). A queued,
    // unsent one is dropped by its Build.
    bool collision = sa.rekey_queued && sa.outstanding && !sa.outstanding->ex->tasks.empty() &&
                     std::string(sa.outstanding->ex->tasks.front()->name()) == "ike_rekey";
    if (!collision) MoveChildren(sa, adopted);
    spdlog::info("ike_sa_rekeyed {} new_ike={} new_spis={:016x}_i/{:016x}_r role=responder collision={}", sa.log_prefix(),
                 adopted.id, adopted.spi_i, adopted.spi_r, collision ? "pending" : "none");
    sa.svc.Emit(Event{EventType::kIkeEstablished, sa.peer->cfg.name, adopted.id, 0, absl::StrCat("rekeyed from ike=", sa.id)});
    out.push_back({PayloadType::kSa, false, SaPayload{{mine}}});
    out.push_back({PayloadType::kNonce, false, NoncePayload{nr}});
    out.push_back({PayloadType::kKe, false, KePayload{group_, pub}});
    return absl::OkStatus();
  }

  uint16_t group_;
  std::unique_ptr<IkeSa> ns_;
  std::optional<NotifyType> refuse_;
  Proposal chosen_;
  uint64_t peer_spi_ = 0;
  Bytes peer_ke_;
};

}  // namespace

std::unique_ptr<Task> NewIkeRekey(bool initiator, uint16_t dh_group) { return std::make_unique<IkeRekey>(initiator, dh_group); }

}  // namespace ipfleet::ike::internal
