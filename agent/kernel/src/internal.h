// Note: Debian's abseil has its own string_view, so std::string_view never goes into absl calls.
// Helpers shared by the netlink implementation and the fake (not part of the public interface).
#pragma once

#include <cstdint>
#include <string_view>

#include <absl/status/status.h>

#include "ipfleet/kernel/types.h"

namespace ipfleet::kernel::internal {

// RFC 4868 / RFC 2404 truncation when AuthAlgo::trunc_bits is 0.
uint32_t DefaultTruncBits(std::string_view auth_name);

// Same SA as far as the agent cares (identity, mode, reqid, algorithms and keys, encapsulation);
// lifetimes, replay settings and counters are not compared.
bool SameSa(const SaParams& a, const SaParams& b);
// Same policy, ignoring the index (the kernel keeps it on replace).
bool SamePolicy(const PolicyParams& a, const PolicyParams& b);

// Checks what the kernel would refuse anyway, so the fake refuses the same things.
absl::Status ValidateSa(const SaParams& sa, const char* op);
absl::Status ValidatePolicy(const PolicyParams& policy, const char* op);

// Policy index in the owned range: base | (n << 3) | dir.
uint32_t OwnedPolicyIndex(uint32_t n, Direction dir);
// n of an owned index (inverse of OwnedPolicyIndex).
uint32_t OwnedPolicyIndexSerial(uint32_t index);

}  // namespace ipfleet::kernel::internal
