#include "ipfleet/controller/api/peer_auth.h"

#include <absl/strings/str_cat.h>
#include <grpc/grpc_security_constants.h>

#include "ipfleet/ca/verify.h"

namespace ipfleet::controller {

bool IsTls(const grpc::ServerContextBase& ctx) {
  auto auth = ctx.auth_context();
  if (!auth) return false;
  for (const auto& v : auth->FindPropertyValues(GRPC_TRANSPORT_SECURITY_TYPE_PROPERTY_NAME)) {
    if (std::string(v.data(), v.size()) == GRPC_SSL_TRANSPORT_SECURITY_TYPE) return true;
  }
  return false;
}

absl::StatusOr<PeerIdentity> VerifyPeer(const grpc::ServerContextBase& ctx, Pki& pki,
                                        inventory::Store& store, const std::string& kind) {
  auto auth = ctx.auth_context();
  std::string pem;
  if (auth) {
    auto values = auth->FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME);
    if (!values.empty()) pem.assign(values.front().data(), values.front().size());
  }
  return VerifyClientCertificate(std::move(pem), pki, store, kind);
}

absl::StatusOr<PeerIdentity> VerifyClientCertificate(std::string pem, Pki& pki, inventory::Store& store,
                                                     const std::string& kind) {
  if (pem.empty()) {
    return absl::UnauthenticatedError(absl::StrCat(
        "no client certificate: this call needs mutual TLS with a ", kind,
        " certificate issued by the fleet CA",
        kind == "host" ? " (enroll the host first with `ipfleet-agent enroll`)" : ""));
  }
  ca::VerifyOptions opts;
  opts.purpose = ca::Purpose::kTlsClient;
  std::string crl = pki.CurrentCrl();
  absl::StatusOr<ca::CertInfo> info = ca::VerifyPeerCertificate(pem, pki.CaPem(), crl, opts);
  if (!info.ok()) {
    return absl::UnauthenticatedError(
        absl::StrCat("client certificate refused: ", std::string(info.status().message())));
  }
  absl::StatusOr<inventory::Certificate> rec = store.GetCertificate(info->serial_hex);
  if (absl::IsNotFound(rec.status())) {
    return absl::PermissionDeniedError(absl::StrCat("client certificate serial ", info->serial_hex,
                                                    " was not issued by this controller"));
  }
  if (!rec.ok()) return absl::UnavailableError(std::string(rec.status().message()));
  if (rec->revoked) {
    return absl::UnauthenticatedError(absl::StrCat(
        "client certificate serial ", info->serial_hex, " is revoked (", rec->revocation_reason,
        ")", kind == "host" ? "; re-enroll the host with a new token (`ipfleet host token NAME`)" : ""));
  }
  if (rec->kind != kind || rec->name != info->subject_cn) {
    return absl::PermissionDeniedError(absl::StrCat("client certificate for '", info->subject_cn,
                                                    "' is of kind ", rec->kind, "; this call needs a ",
                                                    kind, " certificate"));
  }
  return PeerIdentity{info->subject_cn, info->serial_hex, std::move(pem)};
}

}  // namespace ipfleet::controller
