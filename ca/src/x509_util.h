// Internal helpers shared by the CA sources (not part of the public API).
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "ipfleet/ca/cert.h"
#include "ipfleet/common/openssl.h"
#include "ipfleet/common/status.h"

namespace ipfleet::ca::internal {

absl::StatusOr<TimePoint> FromAsn1Time(const ASN1_TIME* t);
int64_t ToUnix(TimePoint t);
TimePoint FromUnix(int64_t secs);

// UTF-8 text of the first CN in `name`, empty when there is none.
std::string CommonName(const X509_NAME* name);

// The dotted text of an OID.
std::string OidText(const ASN1_OBJECT* obj);

// OBJ_txt2obj for a dotted OID (no_name = 1). Caller owns the result.
absl::StatusOr<ASN1_OBJECT*> OidObject(std::string_view dotted);

// Checks a DNS name for a SAN: LDH labels, 1..63 chars each, total <= 253, optional "*." prefix.
bool IsValidDnsName(std::string_view name);

}  // namespace ipfleet::ca::internal
