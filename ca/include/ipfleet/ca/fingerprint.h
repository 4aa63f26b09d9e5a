// Certificate fingerprints for pinning the CA (enrollment) and for display.
#pragma once

#include <string>
#include <string_view>

#include "ipfleet/common/openssl.h"
#include "ipfleet/common/status.h"

namespace ipfleet::ca {

// SHA-256 over the DER encoding, upper-case hex pairs joined by ':' ("AB:01:...", 95 chars) —
// the same text as `openssl x509 -noout -fingerprint -sha256`.
absl::StatusOr<std::string> FingerprintSha256(X509* cert);
absl::StatusOr<std::string> FingerprintSha256Pem(std::string_view cert_pem);

// Compares two fingerprints ignoring case and ':' separators.
bool FingerprintEquals(std::string_view a, std::string_view b);

}  // namespace ipfleet::ca
