#include "ipfleet/ca/verify.h"

#include <algorithm>

#include "ipfleet/ca/profiles.h"
#include "x509_util.h"

namespace ipfleet::ca {

namespace {

// Frees the stack only; the certificates stay owned by their X509Ptr.
struct StackFree {
  void operator()(STACK_OF(X509) * s) const { sk_X509_free(s); }
};
using X509Stack = std::unique_ptr<STACK_OF(X509), StackFree>;

bool HasEku(const CertInfo& info, std::string_view oid) {
  return std::find(info.ekus.begin(), info.ekus.end(), oid) != info.ekus.end();
}

absl::Status CheckPurpose(const CertInfo& info, Purpose purpose) {
  switch (purpose) {
    case Purpose::kAny:
      return absl::OkStatus();
    case Purpose::kIke:
      // RFC 4945 5.1.3.12: no EKU at all is acceptable for IKE; if present it must say IKE.
      if (info.ekus.empty() || HasEku(info, kOidIpsecIke)) return absl::OkStatus();
      return absl::UnauthenticatedError("EKU: certificate " + info.serial_hex + " lacks id-kp-ipsecIKE");
    case Purpose::kTlsClient:
      if (HasEku(info, kOidClientAuth)) return absl::OkStatus();
      return absl::UnauthenticatedError("EKU: certificate " + info.serial_hex + " lacks clientAuth");
    case Purpose::kTlsServer:
      if (HasEku(info, kOidServerAuth)) return absl::OkStatus();
      return absl::UnauthenticatedError("EKU: certificate " + info.serial_hex + " lacks serverAuth");
    case Purpose::kPolicySigning:
      if (HasEku(info, kOidPolicySigning)) return absl::OkStatus();
      return absl::UnauthenticatedError("EKU: certificate " + info.serial_hex +
                                        " is not a policy-signing certificate");
  }
  return absl::InternalError("unknown purpose");
}

absl::StatusOr<CertInfo> VerifyWith(X509* cert, X509* anchor, STACK_OF(X509)* untrusted, X509_CRL* crl,
                                     const VerifyOptions& options) {
  if (cert == nullptr || anchor == nullptr) return absl::InvalidArgumentError("missing certificate or CA");
  if (crl == nullptr && options.require_crl) {
    return absl::UnauthenticatedError("no CRL given but a revocation check is required");
  }
  ossl::X509Store store(X509_STORE_new());
  if (!store) return ossl::Error("X509_STORE_new");
  if (X509_STORE_add_cert(store.get(), anchor) != 1) return ossl::Error("X509_STORE_add_cert");
  if (crl != nullptr) {
    if (X509_STORE_add_crl(store.get(), crl) != 1) return ossl::Error("X509_STORE_add_crl");
  }
  ossl::X509StoreCtx ctx(X509_STORE_CTX_new());
  if (!ctx) return ossl::Error("X509_STORE_CTX_new");
  if (X509_STORE_CTX_init(ctx.get(), store.get(), cert, untrusted) != 1) {
    return ossl::Error("X509_STORE_CTX_init");
  }
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
  if (crl != nullptr) X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_CRL_CHECK);
  if (options.at.has_value()) {
    X509_VERIFY_PARAM_set_time(param, static_cast<time_t>(internal::ToUnix(*options.at)));
  }
  int rc = X509_verify_cert(ctx.get());
  if (rc != 1) {
    int err = X509_STORE_CTX_get_error(ctx.get());
    ossl::DrainErrors();
    return absl::UnauthenticatedError(std::string("X509_verify_cert: ") + X509_verify_cert_error_string(err));
  }
  IPFLEET_ASSIGN_OR_RETURN(CertInfo info, InspectCertificate(cert));
  IPFLEET_RETURN_IF_ERROR(CheckPurpose(info, options.purpose));
  return info;
}

}  // namespace

absl::StatusOr<CertInfo> VerifyPeerCertificate(X509* cert, X509* ca, X509_CRL* crl,
                                               const VerifyOptions& options) {
  return VerifyWith(cert, ca, nullptr, crl, options);
}

absl::StatusOr<CertInfo> VerifyPeerCertificate(std::string_view cert_pem, std::string_view ca_pem,
                                               std::string_view crl_pem, const VerifyOptions& options) {
  IPFLEET_ASSIGN_OR_RETURN(ossl::X509Ptr cert, ParseCertificatePem(cert_pem));
  IPFLEET_ASSIGN_OR_RETURN(std::vector<ossl::X509Ptr> chain, ParseCertificateChainPem(ca_pem));
  // The first self-signed certificate is the trust anchor; any others are intermediates.
  X509* anchor = nullptr;
  X509Stack untrusted(sk_X509_new_null());
  if (!untrusted) return ossl::Error("sk_X509_new_null");
  for (const auto& c : chain) {
    if (anchor == nullptr && X509_self_signed(c.get(), 0) == 1) {
      anchor = c.get();
    } else if (sk_X509_push(untrusted.get(), c.get()) == 0) {
      return ossl::Error("sk_X509_push");
    }
  }
  ossl::DrainErrors();
  if (anchor == nullptr) return absl::InvalidArgumentError("CA chain contains no self-signed root");
  ossl::X509Crl crl;
  if (!crl_pem.empty()) {
    IPFLEET_ASSIGN_OR_RETURN(crl, ParseCrlPem(crl_pem));
  }
  return VerifyWith(cert.get(), anchor, untrusted.get(), crl.get(), options);
}

}  // namespace ipfleet::ca
