// IKE_AUTH identity and authentication: IDi/IDr, CERT, CERTREQ, AUTH, INITIAL_CONTACT.
// The peer is accepted only when its AUTH verifies and, with certificates, the certificate chains
// to a configured CA, is not revoked (when CRLs are configured) and proves the claimed ID.
#include <absl/strings/str_cat.h>
#include <openssl/crypto.h>

#include "../internal.h"

namespace ipfleet::ike::internal {
namespace {

IdPayload ToIdPayload(const Identity& id) { return IdPayload{id.type, id.data}; }

Identity MyId(const PeerRuntime& peer, const Endpoint& local) {
  if (!peer.local_id.empty()) return peer.local_id;
  Identity id;
  id.type = local.addr.is_v4() ? IdType::kIpv4 : IdType::kIpv6;
  id.data.assign(local.addr.bytes.begin(), local.addr.bytes.begin() + (local.addr.is_v4() ? 4 : 16));
  return id;
}

bool MethodFits(AuthKind kind, AuthMethod m) {
  return kind == AuthKind::kPsk ? m == AuthMethod::kPsk : m == AuthMethod::kDigitalSignature;
}

class IkeAuth : public Task {
 public:
  using Task::Task;
  const char* name() const override { return "ike_auth"; }

  absl::Status Build(IkeSa& sa, Exchange&, std::vector<Payload>& out) override {
    const PeerRuntime& peer = *sa.peer;
    sa.my_id = MyId(peer, sa.local);
    IdPayload id = ToIdPayload(sa.my_id);
    out.push_back({initiator_ ? PayloadType::kIdi : PayloadType::kIdr, false, id});
    bool pubkey = peer.cfg.auth == AuthKind::kPubkey;
    if (pubkey)
      for (const Bytes& der : peer.creds->cert_chain)
        out.push_back({PayloadType::kCert, false, CertPayload{CertEncoding::kX509Signature, der}});
    if (initiator_) {
      if (pubkey && !peer.creds->certreq.empty())
        out.push_back({PayloadType::kCertReq, false, CertReqPayload{CertEncoding::kX509Signature, peer.creds->certreq}});
      if (!sa.svc.HasOtherSa(sa)) out.push_back(MakeNotify(NotifyType::kInitialContact));
      if (peer.remote_id) out.push_back({PayloadType::kIdr, false, ToIdPayload(*peer.remote_id)});
    }
    // RFC 7296 2.15: we sign our own IKE_SA_INIT message, the peer's nonce and prf(SK_p, ID').
    const Bytes& msg = initiator_ ? sa.init_request : sa.init_response;
    const Bytes& nonce = initiator_ ? sa.nr : sa.ni;
    const Bytes& skp = initiator_ ? sa.keys->sk_pi : sa.keys->sk_pr;
    IPFLEET_ASSIGN_OR_RETURN(Bytes octets, AuthOctets(*sa.prf, skp, msg, nonce, EncodeIdBody(id)));
    AuthPayload auth;
    if (pubkey) {
      auth.method = AuthMethod::kDigitalSignature;
      IPFLEET_ASSIGN_OR_RETURN(auth.data, SignAuth(peer.creds->key.get(), octets, sa.peer_sig_hashes));
    } else {
      auth.method = AuthMethod::kPsk;
      IPFLEET_ASSIGN_OR_RETURN(auth.data, PskAuth(*sa.prf, peer.creds->psk, octets));
    }
    // AUTH goes before the CHILD_SA payloads but after the IDs/certs; order as charon sends it.
    out.push_back({PayloadType::kAuth, false, std::move(auth)});
    return absl::OkStatus();
  }

  absl::Status Process(IkeSa& sa, Exchange& ex, const std::vector<Payload>& in) override {
    absl::Status s = Verify(sa, ex, in);
    if (!s.ok()) {
      spdlog::warn("auth_failed {} role={} reason=\"{}\"", sa.log_prefix(), initiator_ ? "initiator" : "responder", Msg(s));
      if (!initiator_) ex.fatal_notify = MakeNotify(NotifyType::kAuthenticationFailed);
    }
    return s;
  }

 private:
  absl::Status Verify(IkeSa& sa, Exchange&, const std::vector<Payload>& in) {
    if (initiator_) {
      if (FindNotify(in, NotifyType::kAuthenticationFailed))
        return absl::UnauthenticatedError("peer answered AUTHENTICATION_FAILED");
      if (auto* n = FindErrorNotify(in); n && !FindPayload(in, PayloadType::kAuth))
        return absl::FailedPreconditionError(absl::StrCat("peer refused IKE_AUTH with ", NotifyName(n->type)));
    }
    auto* idp = Get<IdPayload>(in, initiator_ ? PayloadType::kIdr : PayloadType::kIdi);
    auto* auth = Get<AuthPayload>(in, PayloadType::kAuth);
    if (!idp || !auth) return absl::InvalidArgumentError("IKE_AUTH lacks ID or AUTH");
    Identity peer_id{idp->type, idp->data};

    std::shared_ptr<const PeerRuntime> peer = sa.peer;
    if (!initiator_) {
      // Pick the tunnel by the claimed identity among those matching the addresses.
      std::shared_ptr<const PeerRuntime> pick;
      for (auto& cand : sa.svc.PeersFor(sa.local, sa.remote)) {
        if (cand->remote_id && !(*cand->remote_id == peer_id)) continue;
        if (!MethodFits(cand->cfg.auth, auth->method)) continue;
        pick = cand;
        break;
      }
      if (!pick) return absl::UnauthenticatedError(absl::StrCat("no tunnel accepts peer ID '", peer_id.ToString(), "' with AUTH method ", static_cast<int>(auth->method)));
      sa.peer = peer = pick;
    } else if (peer->remote_id && !(*peer->remote_id == peer_id)) {
      return absl::UnauthenticatedError(absl::StrCat("responder ID '", peer_id.ToString(), "' is not the configured '", peer->remote_id->ToString(), "'"));
    }
    if (!MethodFits(peer->cfg.auth, auth->method))
      return absl::UnauthenticatedError(absl::StrCat("AUTH method ", static_cast<int>(auth->method), " not allowed for this tunnel"));

    const Bytes& msg = initiator_ ? sa.init_response : sa.init_request;
    const Bytes& nonce = initiator_ ? sa.ni : sa.nr;
    const Bytes& skp = initiator_ ? sa.keys->sk_pr : sa.keys->sk_pi;
    IPFLEET_ASSIGN_OR_RETURN(Bytes octets, AuthOctets(*sa.prf, skp, msg, nonce, EncodeIdBody(*idp)));
    if (peer->cfg.auth == AuthKind::kPsk) {
      IPFLEET_ASSIGN_OR_RETURN(Bytes want, PskAuth(*sa.prf, peer->creds->psk, octets));
      if (want.size() != auth->data.size() || CRYPTO_memcmp(want.data(), auth->data.data(), want.size()) != 0)
        return absl::UnauthenticatedError("PSK AUTH does not match");
    } else {
      std::vector<Bytes> certs;
      for (const auto& p : in)
        if (auto* c = std::get_if<CertPayload>(&p.body); c && c->encoding == CertEncoding::kX509Signature)
          certs.push_back(c->data);
      IPFLEET_ASSIGN_OR_RETURN(ossl::X509Ptr cert, VerifyPeerCert(*peer->creds, certs));
      IPFLEET_RETURN_IF_ERROR(CheckIdInCert(cert.get(), peer_id));
      EVP_PKEY* pub = X509_get0_pubkey(cert.get());
      if (!pub) return ossl::Error("X509_get0_pubkey", absl::StatusCode::kUnauthenticated);
      IPFLEET_RETURN_IF_ERROR(VerifyAuth(pub, auth->data, octets));
    }
    sa.peer_id = peer_id;
    spdlog::info("peer_authenticated {} peer_id=\"{}\" method={}", sa.log_prefix(), peer_id.ToString(), ToString(peer->cfg.auth));
    if (!initiator_ && FindNotify(in, NotifyType::kInitialContact)) {
      sa.my_id = MyId(*peer, sa.local);  // the identity we answer with (Build sets the same)
      sa.svc.InitialContact(sa);
    }
    return absl::OkStatus();
  }
};

}  // namespace

std::unique_ptr<Task> NewIkeAuth(bool initiator) { return std::make_unique<IkeAuth>(initiator); }

}  // namespace ipfleet::ike::internal
