// Verifying a peer's certificate against the fleet CA and CRL, for IKE and TLS.
#pragma once

#include <optional>
#include <string_view>

#include "ipfleet/ca/cert.h"
#include "ipfleet/common/openssl.h"
#include "ipfleet/common/status.h"

namespace ipfleet::ca {

enum class Purpose {
  kAny,            // chain + validity + CRL only
  kIke,            // EKU id-kp-ipsecIKE (or no EKU at all, as RFC 4945 allows)
  kTlsClient,      // EKU clientAuth
  kTlsServer,      // EKU serverAuth
  kPolicySigning,  // EKU ipfleet policy-signing
};

struct VerifyOptions {
  Purpose purpose = Purpose::kAny;
  std::optional<TimePoint> at;  // verification time; default now
  bool require_crl = false;     // if true, an empty crl_pem is an error
};

// Verifies `cert` chains to `ca` (a self-signed root), is within validity, has the purpose's EKU,
// and (when a CRL is given) is not revoked; the CRL itself must be signed by the CA and current.
// On success returns what the certificate says (SANs, CN, serial) so the caller can match the
// peer's identity. Errors: Unauthenticated naming the check ("X509_verify_cert: certificate
// revoked", "EKU: certificate lacks id-kp-ipsecIKE"), InvalidArgument for unparseable input.
absl::StatusOr<CertInfo> VerifyPeerCertificate(std::string_view cert_pem, std::string_view ca_pem,
                                               std::string_view crl_pem,
                                               const VerifyOptions& options = {});
// Same for already parsed handles (IKE gets DER certificates; parse with ParseCertificateDer).
// `crl` may be null (no revocation check unless options.require_crl).
absl::StatusOr<CertInfo> VerifyPeerCertificate(X509* cert, X509* ca, X509_CRL* crl,
                                               const VerifyOptions& options = {});

}  // namespace ipfleet::ca
