// IKE_SA_INIT tasks: SA/KE/Nonce negotiation (IkeInit), NAT detection notifies (IkeNatd) and
// RFC 7427 SIGNATURE_HASH_ALGORITHMS (IkeSigHash).
#include <absl/strings/str_cat.h>
#include <openssl/evp.h>

#include "../internal.h"

namespace ipfleet::ike::internal {
namespace {

Payload MakePayload(PayloadType t, PayloadBody b) { return Payload{t, false, std::move(b)}; }

Bytes GroupBytes(uint16_t g) { return Bytes{uint8_t(g >> 8), uint8_t(g & 0xff)}; }

class IkeInit : public Task {
 public:
  using Task::Task;
  const char* name() const override { return "ike_init"; }

  absl::Status Build(IkeSa& sa, Exchange& ex, std::vector<Payload>& out) override {
    if (initiator_) {
      if (ex.retry_group) sa.ke_group = ex.retry_group;
      if (!sa.ke_group) sa.ke_group = TransformId(sa.peer->ike_proposals.front(), TransformType::kDh).value_or(0);
      if (!sa.dh || sa.dh->group() != sa.ke_group) {
        IPFLEET_ASSIGN_OR_RETURN(DhKey k, DhKey::Generate(sa.ke_group));
        sa.dh = std::move(k);
      }
      if (sa.ni.empty()) sa.ni = RandomBytes(32);
      SaPayload sp;
      uint8_t n = 1;
      for (Proposal p : sa.peer->ike_proposals) {
        p.number = n++;
        sp.proposals.push_back(std::move(p));
      }
      out.push_back(MakePayload(PayloadType::kSa, std::move(sp)));
      out.push_back(MakePayload(PayloadType::kKe, KePayload{sa.ke_group, sa.dh->public_value()}));
      out.push_back(MakePayload(PayloadType::kNonce, NoncePayload{sa.ni}));
      return absl::OkStatus();
    }
    out.push_back(MakePayload(PayloadType::kSa, SaPayload{{*sa.proposal}}));
    out.push_back(MakePayload(PayloadType::kKe, KePayload{sa.ke_group, sa.dh->public_value()}));
    out.push_back(MakePayload(PayloadType::kNonce, NoncePayload{sa.nr}));
    // RFC 7296 3.7: the responder names the CAs it trusts here already, so a certificate-using
    // initiator knows to send its CERT in IKE_AUTH (charon sends none without this request).
    if (sa.peer->cfg.auth == AuthKind::kPubkey && sa.peer->creds && !sa.peer->creds->certreq.empty())
      out.push_back(MakePayload(PayloadType::kCertReq,
                                CertReqPayload{CertEncoding::kX509Signature, sa.peer->creds->certreq}));
    return absl::OkStatus();
  }

  absl::Status Process(IkeSa& sa, Exchange& ex, const std::vector<Payload>& in) override {
    return initiator_ ? ProcessResponse(sa, ex, in) : ProcessRequest(sa, ex, in);
  }

 private:
  absl::Status ProcessRequest(IkeSa& sa, Exchange& ex, const std::vector<Payload>& in) {
    auto* sp = Get<SaPayload>(in, PayloadType::kSa);
    auto* ke = Get<KePayload>(in, PayloadType::kKe);
    auto* no = Get<NoncePayload>(in, PayloadType::kNonce);
    if (!sp || !ke || !no) {
      ex.fatal_notify = MakeNotify(NotifyType::kInvalidSyntax);
      return absl::InvalidArgumentError("IKE_SA_INIT request lacks SA, KE or Nonce");
    }
    auto chosen = SelectProposal(sp->proposals, sa.peer->ike_proposals);
    if (!chosen) {
      std::string why = DescribeMismatch(sp->proposals, sa.peer->ike_proposals);
      spdlog::warn("proposal_mismatch {} exchange=IKE_SA_INIT protocol=IKE {}", sa.log_prefix(), why);
      sa.svc.Emit(Event{EventType::kProposalMismatch, sa.peer->cfg.name, sa.id, 0, "IKE " + why});
      ex.fatal_notify = MakeNotify(NotifyType::kNoProposalChosen);
      return absl::FailedPreconditionError("no acceptable IKE proposal");
    }
    chosen->spi.clear();
    uint16_t group = TransformId(*chosen, TransformType::kDh).value_or(0);
    if (ke->group != group) {
      // RFC 7296 1.2: tell the initiator which group we picked; it retries with that KE.
      spdlog::info("invalid_ke {} offered_group={} wanted_group={}", sa.log_prefix(), ke->group, group);
      ex.fatal_notify = MakeNotify(NotifyType::kInvalidKePayload, GroupBytes(group));
      return absl::FailedPreconditionError("KE group differs from the selected DH group");
    }
    sa.proposal = *chosen;
    sa.ke_group = group;
    sa.ni = no->data;
    IPFLEET_ASSIGN_OR_RETURN(DhKey k, DhKey::Generate(group));
    sa.dh = std::move(k);
    auto shared = sa.dh->Derive(ke->data);
    if (!shared.ok()) {
      // A bad public value (off-curve point, y outside 1..p-1): refuse as a syntax error.
      spdlog::warn("ke_rejected {} group={} reason=\"{}\"", sa.log_prefix(), group, Msg(shared.status()));
      ex.fatal_notify = MakeNotify(NotifyType::kInvalidSyntax);
      return shared.status();
    }
    sa.nr = RandomBytes(32);
    absl::Status s = sa.DeriveKeys(*shared);
    Wipe(*shared);
    return s;
  }

  absl::Status ProcessResponse(IkeSa& sa, Exchange& ex, const std::vector<Payload>& in) {
    if (auto* n = FindNotify(in, NotifyType::kInvalidKePayload)) {
      uint16_t g = n->data.size() == 2 ? uint16_t(n->data[0] << 8 | n->data[1]) : 0;
      bool offered = false;
      for (const auto& p : sa.peer->ike_proposals)
        for (const auto& t : p.transforms)
          if (t.type == TransformType::kDh && t.id == g) offered = true;
      if (!offered || g == sa.ke_group)
        return absl::FailedPreconditionError(absl::StrCat("INVALID_KE_PAYLOAD asks for group ", g, " which we did not offer"));
      ex.retry_group = g;
      return absl::UnavailableError(absl::StrCat("responder wants DH group ", g));
    }
    if (auto* n = FindErrorNotify(in))
      return absl::FailedPreconditionError(absl::StrCat("peer refused IKE_SA_INIT with ", NotifyName(n->type)));
    auto* sp = Get<SaPayload>(in, PayloadType::kSa);
    auto* ke = Get<KePayload>(in, PayloadType::kKe);
    auto* no = Get<NoncePayload>(in, PayloadType::kNonce);
    if (!sp || !ke || !no) return absl::InvalidArgumentError("IKE_SA_INIT response lacks SA, KE or Nonce");
    if (sp->proposals.size() != 1 || !ProposalAcceptable(sp->proposals[0], sa.peer->ike_proposals))
      return absl::InvalidArgumentError("responder chose an IKE proposal we did not offer");
    Proposal chosen = sp->proposals[0];
    if (TransformId(chosen, TransformType::kDh).value_or(0) != sa.ke_group || ke->group != sa.ke_group)
      return absl::InvalidArgumentError("responder's DH group differs from our KE");
    sa.proposal = chosen;
    sa.nr = no->data;
    IPFLEET_ASSIGN_OR_RETURN(Bytes shared, sa.dh->Derive(ke->data));
    absl::Status s = sa.DeriveKeys(shared);
    Wipe(shared);
    return s;
  }
};

// RFC 7296 2.23: SHA-1(SPIi | SPIr | IP | port). Detection only; NAT-T itself is part 2.
Bytes NatHash(uint64_t spi_i, uint64_t spi_r, const Endpoint& ep) {
  Bytes in;
  for (uint64_t spi : {spi_i, spi_r})
    for (int s = 56; s >= 0; s -= 8) in.push_back(uint8_t(spi >> s));
  in.insert(in.end(), ep.addr.bytes.begin(), ep.addr.bytes.begin() + (ep.addr.is_v4() ? 4 : 16));
  in.push_back(uint8_t(ep.port >> 8));
  in.push_back(uint8_t(ep.port));
  Bytes md(20);
  unsigned int len = 0;
  EVP_Digest(in.data(), in.size(), md.data(), &len, EVP_sha1(), nullptr);
  return md;
}

class IkeNatd : public Task {
 public:
  using Task::Task;
  const char* name() const override { return "ike_natd"; }
  absl::Status Build(IkeSa& sa, Exchange& ex, std::vector<Payload>& out) override {
    if (ex.fatal_notify) return absl::OkStatus();
    uint64_t spi_r = initiator_ ? 0 : sa.spi_r;  // the request is sent before SPIr exists
    out.push_back(MakeNotify(NotifyType::kNatDetectionSourceIp, NatHash(sa.spi_i, spi_r, sa.local)));
    out.push_back(MakeNotify(NotifyType::kNatDetectionDestinationIp, NatHash(sa.spi_i, spi_r, sa.remote)));
    return absl::OkStatus();
  }
  absl::Status Process(IkeSa& sa, Exchange&, const std::vector<Payload>& in) override {
    uint64_t spi_r = initiator_ ? sa.spi_r : 0;
    bool src_ok = false, have = false;
    for (const auto& p : in) {
      auto* n = std::get_if<NotifyPayload>(&p.body);
      if (!n || n->type != static_cast<uint16_t>(NotifyType::kNatDetectionSourceIp)) continue;
      have = true;
      if (n->data == NatHash(sa.spi_i, spi_r, sa.remote)) src_ok = true;
      spdlog::debug("natd_source {} got={} want={}", sa.log_prefix(), Hex(n->data), Hex(NatHash(sa.spi_i, spi_r, sa.remote)));
    }
    auto* dst = FindNotify(in, NotifyType::kNatDetectionDestinationIp);
    bool dst_ok = dst && dst->data == NatHash(sa.spi_i, spi_r, sa.local);
    if (have && (!src_ok || !dst_ok)) {
      sa.nat_detected = true;
      sa.nat_remote = !src_ok;
      sa.nat_local = !dst_ok;
      spdlog::info("nat_detected {} remote_behind_nat={} local_behind_nat={}", sa.log_prefix(), !src_ok, !dst_ok);
    }
    return absl::OkStatus();
  }
};

class IkeSigHash : public Task {
 public:
  using Task::Task;
  const char* name() const override { return "ike_sighash"; }
  absl::Status Build(IkeSa&, Exchange& ex, std::vector<Payload>& out) override {
    if (ex.fatal_notify) return absl::OkStatus();
    out.push_back(MakeNotify(NotifyType::kSignatureHashAlgorithms, Bytes{0, 2, 0, 3, 0, 4}));
    return absl::OkStatus();
  }
  absl::Status Process(IkeSa& sa, Exchange&, const std::vector<Payload>& in) override {
    if (auto* n = FindNotify(in, NotifyType::kSignatureHashAlgorithms)) {
      sa.peer_sig_hashes.clear();
      for (size_t i = 0; i + 1 < n->data.size(); i += 2) sa.peer_sig_hashes.push_back(uint16_t(n->data[i] << 8 | n->data[i + 1]));
    }
    return absl::OkStatus();
  }
};

}  // namespace

std::unique_ptr<Task> NewIkeInit(bool initiator) { return std::make_unique<IkeInit>(initiator); }
std::unique_ptr<Task> NewIkeNatd(bool initiator) { return std::make_unique<IkeNatd>(initiator); }
std::unique_ptr<Task> NewIkeSigHash(bool initiator) { return std::make_unique<IkeSigHash>(initiator); }

}  // namespace ipfleet::ike::internal
