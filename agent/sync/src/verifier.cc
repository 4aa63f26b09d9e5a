#include "ipfleet/agent/sync/verifier.h"

#include <absl/strings/str_cat.h>

#include "ipfleet/ca/bundle_signing.h"
#include "ipfleet/v1/types.pb.h"

namespace ipfleet::agent {

BundleVerifyFn MakeCaVerifier(std::string pinned_ca_pem) {
  return [ca = std::move(pinned_ca_pem)](const v1::SignedBundle& sb) -> absl::Status {
    if (sb.signature().empty()) return absl::UnauthenticatedError("bundle is not signed");
    // The CRL travels inside the (not yet trusted) bundle; VerifyBundle only accepts a CRL
    // signed by the pinned CA, so reading it before verification is safe.
    v1::PolicyBundle b;
    std::string crl;
    if (b.ParseFromString(sb.bundle())) crl = b.crl();
    auto info = ca::VerifyBundle(sb.bundle(), sb.signature(), sb.signer_certificate(), ca, crl, sb.algorithm());
    if (!info.ok()) return info.status();
    return absl::OkStatus();
  };
}

}  // namespace ipfleet::agent
