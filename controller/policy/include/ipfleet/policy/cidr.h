// IP prefixes for selector checks: parse, canonicalise, containment. Only what the compiler needs.
#pragma once

#include <absl/strings/string_view.h>
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "ipfleet/common/status.h"

namespace ipfleet::policy {

struct Prefix {
  int family = 0;                   // AF_INET or AF_INET6
  std::array<uint8_t, 16> bytes{};  // network order; host bits cleared
  int length = 0;

  // Canonical text ("10.1.0.0/24", "2001:db8::/64"): the same prefix always prints the same.
  std::string ToString() const;
  std::string AddressToString() const;  // the address alone ("10.1.0.0", "2001:db8::")
  bool Contains(const Prefix& other) const;  // other lies inside this (same family)
  bool Overlaps(const Prefix& other) const;
  bool IsV6() const;
  friend bool operator==(const Prefix&, const Prefix&) = default;
};

// Parses "ADDR/LEN" or a bare address (a host prefix). With `strict`, set host bits are an
// error (an operator writing 10.1.0.5/24 probably meant something else); without, they are cleared.
absl::StatusOr<Prefix> ParsePrefix(absl::string_view text, bool strict = true);

// The /32 or /128 prefix of one address.
absl::StatusOr<Prefix> HostPrefix(absl::string_view address);

}  // namespace ipfleet::policy
