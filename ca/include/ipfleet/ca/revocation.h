// Revocation reasons (RFC 5280 5.3.1) and the persisted revocation list.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ipfleet/ca/cert.h"
#include "ipfleet/common/status.h"

namespace ipfleet::ca {

// CRLReason values of RFC 5280 (7 is unused by the RFC).
enum class RevocationReason : int {
  kUnspecified = 0,
  kKeyCompromise = 1,
  kCaCompromise = 2,
  kAffiliationChanged = 3,
  kSuperseded = 4,
  kCessationOfOperation = 5,
  kCertificateHold = 6,
  kRemoveFromCrl = 8,
  kPrivilegeWithdrawn = 9,
  kAaCompromise = 10,
};

// RFC spelling ("keyCompromise"); parsing also accepts "key-compromise", "key_compromise",
// any case, and the numeric value.
std::string_view RevocationReasonName(RevocationReason r);
absl::StatusOr<RevocationReason> ParseRevocationReason(std::string_view text);

struct RevokedEntry {
  std::string serial_hex;  // NormalizeSerialHex spelling
  RevocationReason reason = RevocationReason::kUnspecified;
  TimePoint revoked_at;
};

// The CA's persisted state besides its key and certificate (DIR/ca/state.json, 0600):
//   {"version":1,"crl_number":N,"revoked":[{"serial":"..","reason":1,"revoked_at":UNIX},..]}
// Rewritten atomically only when something is revoked or a CRL is generated — never per issued
// certificate. Parsing a damaged file gives InvalidArgument naming the file and the problem.
struct CaState {
  uint64_t crl_number = 0;  // number of the last CRL generated (0: none yet)
  std::vector<RevokedEntry> revoked;
};
absl::StatusOr<CaState> ParseCaState(std::string_view json, std::string_view origin);
std::string SerializeCaState(const CaState& state);

}  // namespace ipfleet::ca
