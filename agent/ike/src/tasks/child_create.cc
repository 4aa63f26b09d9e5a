// CHILD_SA creation, in IKE_AUTH (first child) and CREATE_CHILD_SA (additional children):
// ESP proposal, traffic selectors with narrowing (RFC 7296 2.9), USE_TRANSPORT_MODE, KEYMAT,
// and installation through the kernel interface. A refused child never fails the IKE_SA.
#include <absl/strings/str_cat.h>
#include <absl/strings/str_join.h>

#include "../internal.h"

namespace ipfleet::ike::internal {
namespace {

std::vector<std::string> TsStrings(const std::vector<TrafficSelector>& v) {
  std::vector<std::string> out;
  for (const auto& t : v) out.push_back(TsToString(t));
  return out;
}

class ChildCreate : public RequestResponseTask {
 public:
  ChildCreate(bool initiator, const PeerRuntime::Child* cfg, bool in_auth)
      : RequestResponseTask(initiator), cfg_(cfg), in_auth_(in_auth) {}
  const char* name() const override { return "child_create"; }
  bool CreatesChild(const std::string& child_name) const override {
    return initiator_ && cfg_ && cfg_->cfg.name == child_name;
  }

 private:
  ChildSa* NewChild(IkeSa& sa) {
    auto c = std::make_unique<ChildSa>();
    c->id = sa.svc.NextId();
    c->cfg = cfg_;
    c->created = sa.svc.now();
    c->mode = cfg_->cfg.mode;
    sa.children.push_back(std::move(c));
    return sa.children.back().get();
  }

  void Fail(IkeSa& sa, const std::string& why) {
    spdlog::warn("child_failed {} child={} reason=\"{}\"", sa.log_prefix(), cfg_ ? cfg_->cfg.name : "?", why);
    sa.svc.Emit(Event{EventType::kChildFailed, sa.peer->cfg.name, sa.id, child_id_, why});
    if (ChildSa* c = sa.FindChild(child_id_)) {
      UninstallChild(sa, *c);
      std::erase_if(sa.children, [&](const auto& p) { return p->id == child_id_; });
    }
    child_id_ = 0;
  }

  absl::Status BuildRequest(IkeSa& sa, Exchange& ex, std::vector<Payload>& out) override {
    ChildSa* c = NewChild(sa);
    child_id_ = c->id;
    if (absl::Status s = AllocInboundSpi(sa, *c); !s.ok()) {
      Fail(sa, absl::StrCat("SPI allocation: ", Msg(s)));
      return s;
    }
    SaPayload sp;
    uint8_t n = 1;
    for (Proposal p : cfg_->esp_proposals) {
      p.number = n++;
      p.spi = Be32(c->spi_in);
      sp.proposals.push_back(std::move(p));
    }
    if (cfg_->cfg.mode == kernel::Mode::kTransport) out.push_back(MakeNotify(NotifyType::kUseTransportMode));
    out.push_back({PayloadType::kSa, false, std::move(sp)});
    if (!in_auth_) {
      ex.ni = RandomBytes(32);
      out.push_back({PayloadType::kNonce, false, NoncePayload{ex.ni}});
    }
    ts_local_ = ConfiguredTs(cfg_->cfg.local_ts, sa.local.addr);
    ts_remote_ = ConfiguredTs(cfg_->cfg.remote_ts, sa.remote.addr);
    out.push_back({PayloadType::kTsi, false, TsPayload{ts_local_}});
    out.push_back({PayloadType::kTsr, false, TsPayload{ts_remote_}});
    return absl::OkStatus();
  }

  void ProcessResponse(IkeSa& sa, Exchange& ex, const std::vector<Payload>& in) override {
    ChildSa* c = sa.FindChild(child_id_);
    if (!c) return;
    if (auto* n = FindErrorNotify(in)) return Fail(sa, absl::StrCat("peer refused CHILD_SA with ", NotifyName(n->type)));
    auto* sp = Get<SaPayload>(in, PayloadType::kSa);
    auto* tsi = Get<TsPayload>(in, PayloadType::kTsi);
    auto* tsr = Get<TsPayload>(in, PayloadType::kTsr);
    if (!sp || !tsi || !tsr) return Fail(sa, "response lacks SA, TSi or TSr");
    if (sp->proposals.size() != 1 || !ProposalAcceptable(sp->proposals[0], cfg_->esp_proposals) ||
        sp->proposals[0].spi.size() != 4)
      return Fail(sa, "responder chose an ESP proposal we did not offer");
    if (!TsSubset(tsi->selectors, ts_local_) || !TsSubset(tsr->selectors, ts_remote_))
      return Fail(sa, "responder's traffic selectors are not a subset of ours");
    if (!in_auth_) {
      auto* no = Get<NoncePayload>(in, PayloadType::kNonce);
      if (!no) return Fail(sa, "CREATE_CHILD_SA response lacks Nonce");
      ex.nr = no->data;
    }
    c->proposal = sp->proposals[0];
    c->spi_out = ReadBe32(sp->proposals[0].spi);
    c->ts_local = tsi->selectors;
    c->ts_remote = tsr->selectors;
    c->mode = (cfg_->cfg.mode == kernel::Mode::kTransport && FindNotify(in, NotifyType::kUseTransportMode))
                  ? kernel::Mode::kTransport
                  : kernel::Mode::kTunnel;
    if (absl::Status s = Install(sa, ex, *c, /*we_initiated=*/true); !s.ok()) Fail(sa, Msg(s));
  }

  absl::Status ProcessRequest(IkeSa& sa, Exchange& ex, const std::vector<Payload>& in) override {
    auto* sp = Get<SaPayload>(in, PayloadType::kSa);
    auto* tsi = Get<TsPayload>(in, PayloadType::kTsi);
    auto* tsr = Get<TsPayload>(in, PayloadType::kTsr);
    if (in_auth_ && !sp) return absl::OkStatus();  // IKE_AUTH without a child (allowed)
    if (!in_auth_) {
      // Rekeying (REKEY_SA, or an IKE SA proposal) is part 2: refuse it cleanly.
      if (FindNotify(in, NotifyType::kRekeySa) || (sp && !sp->proposals.empty() && sp->proposals[0].protocol == ProtocolId::kIke)) {
        refuse_ = NotifyType::kNoAdditionalSas;
        return absl::OkStatus();
      }
      auto* no = Get<NoncePayload>(in, PayloadType::kNonce);
      if (!no || !sp || !tsi || !tsr) {
        refuse_ = NotifyType::kInvalidSyntax;
        return absl::OkStatus();
      }
      ex.ni = no->data;
      if (Get<KePayload>(in, PayloadType::kKe)) {
        // PFS for additional CHILD_SAs is not configured in part 1.
        refuse_ = NotifyType::kNoProposalChosen;
        spdlog::warn("child_refused {} reason=\"KE in CREATE_CHILD_SA (PFS) not configured\"", sa.log_prefix());
        return absl::OkStatus();
      }
    }
    if (!sp || !tsi || !tsr) {
      refuse_ = NotifyType::kInvalidSyntax;
      return absl::OkStatus();
    }
    // Child config: the first whose selectors overlap both of the initiator's.
    for (const auto& cand : sa.peer->children) {
      auto l = NarrowTs(tsr->selectors, ConfiguredTs(cand.cfg.local_ts, sa.local.addr));
      auto r = NarrowTs(tsi->selectors, ConfiguredTs(cand.cfg.remote_ts, sa.remote.addr));
      if (!l.empty() && !r.empty()) {
        cfg_ = &cand;
        ts_local_ = l;
        ts_remote_ = r;
        break;
      }
    }
    if (!cfg_) {
      spdlog::warn("ts_unacceptable {} tsi={} tsr={}", sa.log_prefix(), absl::StrJoin(TsStrings(tsi->selectors), ","),
                   absl::StrJoin(TsStrings(tsr->selectors), ","));
      refuse_ = NotifyType::kTsUnacceptable;
      return absl::OkStatus();
    }
    std::vector<Proposal> offered = sp->proposals;
    for (auto& p : offered)  // a DH transform in IKE_AUTH's SA is ignored (RFC 7296 1.2)
      if (in_auth_) std::erase_if(p.transforms, [](const Transform& t) { return t.type == TransformType::kDh; });
    auto chosen = SelectProposal(offered, cfg_->esp_proposals);
    if (!chosen || chosen->spi.size() != 4) {
      std::string why = DescribeMismatch(offered, cfg_->esp_proposals);
      spdlog::warn("proposal_mismatch {} exchange={} protocol=ESP child={} {}", sa.log_prefix(),
                   in_auth_ ? "IKE_AUTH" : "CREATE_CHILD_SA", cfg_->cfg.name, why);
      sa.svc.Emit(Event{EventType::kProposalMismatch, sa.peer->cfg.name, sa.id, 0, "ESP " + why});
      refuse_ = NotifyType::kNoProposalChosen;
      return absl::OkStatus();
    }
    transport_ = cfg_->cfg.mode == kernel::Mode::kTransport && FindNotify(in, NotifyType::kUseTransportMode);
    chosen_ = *chosen;
    return absl::OkStatus();
  }

  absl::Status BuildResponse(IkeSa& sa, Exchange& ex, std::vector<Payload>& out) override {
    if (refuse_) {
      out.push_back(MakeNotify(*refuse_));
      return absl::OkStatus();
    }
    if (!cfg_) return absl::OkStatus();  // no child requested
    ChildSa* c = NewChild(sa);
    child_id_ = c->id;
    if (absl::Status s = AllocInboundSpi(sa, *c); !s.ok()) {
      Fail(sa, absl::StrCat("SPI allocation: ", Msg(s)));
      out.push_back(MakeNotify(NotifyType::kTemporaryFailure));
      return absl::OkStatus();
    }
    c->spi_out = ReadBe32(chosen_.spi);
    c->proposal = chosen_;
    c->ts_local = ts_local_;
    c->ts_remote = ts_remote_;
    c->mode = transport_ ? kernel::Mode::kTransport : kernel::Mode::kTunnel;
    if (!in_auth_) ex.nr = RandomBytes(32);
    if (absl::Status s = Install(sa, ex, *c, /*we_initiated=*/false); !s.ok()) {
      Fail(sa, Msg(s));
      out.push_back(MakeNotify(NotifyType::kTemporaryFailure));
      return absl::OkStatus();
    }
    Proposal mine = chosen_;
    mine.spi = Be32(c->spi_in);
    if (transport_) out.push_back(MakeNotify(NotifyType::kUseTransportMode));
    out.push_back({PayloadType::kSa, false, SaPayload{{mine}}});
    if (!in_auth_) out.push_back({PayloadType::kNonce, false, NoncePayload{ex.nr}});
    // TSi is the initiator's side: our remote selectors.
    out.push_back({PayloadType::kTsi, false, TsPayload{ts_remote_}});
    out.push_back({PayloadType::kTsr, false, TsPayload{ts_local_}});
    return absl::OkStatus();
  }

  absl::Status Install(IkeSa& sa, Exchange& ex, ChildSa& c, bool we_initiated) {
    IPFLEET_ASSIGN_OR_RETURN(size_t len, EspKeymatLen(c.proposal));
    const Bytes& ni = in_auth_ ? sa.ni : ex.ni;
    const Bytes& nr = in_auth_ ? sa.nr : ex.nr;
    IPFLEET_ASSIGN_OR_RETURN(Bytes keymat, DeriveChildKeymat(*sa.prf, sa.keys->sk_d, {}, ni, nr, len));
    if (!we_initiated) {
      // KEYMAT starts with the exchange initiator's outbound keys; InstallChild wants ours first.
      Bytes swapped(keymat.begin() + len / 2, keymat.end());
      swapped.insert(swapped.end(), keymat.begin(), keymat.begin() + len / 2);
      Wipe(keymat);
      keymat = std::move(swapped);
    }
    absl::Status s = InstallChild(sa, c, keymat);
    Wipe(keymat);
    IPFLEET_RETURN_IF_ERROR(s);
    c.state = ChildState::kInstalled;
    std::string suite = ProposalSuiteName(c.proposal);
    spdlog::info("child_sa_installed {} child={} name={} spi_in={:08x} spi_out={:08x} mode={} reqid={} local_ts={} remote_ts={} suite={}",
                 sa.log_prefix(), c.id, cfg_->cfg.name, c.spi_in, c.spi_out, kernel::ToString(c.mode), cfg_->reqid,
                 absl::StrJoin(TsStrings(c.ts_local), ","), absl::StrJoin(TsStrings(c.ts_remote), ","), suite);
    sa.svc.Emit(Event{EventType::kChildInstalled, sa.peer->cfg.name, sa.id, c.id, suite});
    return absl::OkStatus();
  }

  const PeerRuntime::Child* cfg_;
  bool in_auth_;
  uint64_t child_id_ = 0;
  std::vector<TrafficSelector> ts_local_, ts_remote_;
  std::optional<NotifyType> refuse_;
  Proposal chosen_;
  bool transport_ = false;
};

}  // namespace

std::unique_ptr<Task> NewChildCreate(bool initiator, const PeerRuntime::Child* child, bool in_ike_auth) {
  return std::make_unique<ChildCreate>(initiator, child, in_ike_auth);
}

}  // namespace ipfleet::ike::internal
