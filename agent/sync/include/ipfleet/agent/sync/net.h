// IP addresses and prefixes for selectors and the controller-path check (inet_pton based).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "ipfleet/common/status.h"

namespace ipfleet::agent {

struct IpAddress {
  int family = 0;  // AF_INET or AF_INET6; 0 when unset
  std::array<uint8_t, 16> bytes{};
  bool operator==(const IpAddress&) const = default;
  bool empty() const { return family == 0; }
  std::string ToString() const;
};

struct Prefix {
  IpAddress address;
  uint8_t length = 0;
  bool operator==(const Prefix&) const = default;
  bool Contains(const IpAddress& ip) const;
  // True when every address in `other` is inside this prefix.
  bool Covers(const Prefix& other) const;
  std::string ToString() const;
};

absl::StatusOr<IpAddress> ParseIp(std::string_view text);
// "198.51.100.0/24", "2001:db8::/64", or a bare address (full-length prefix).
absl::StatusOr<Prefix> ParsePrefix(std::string_view text);
// Splits "ADDR:PORT" or "[V6]:PORT"; a missing port gives `default_port`.
absl::Status SplitHostPort(std::string_view text, std::string* host, uint16_t* port, uint16_t default_port = 0);

}  // namespace ipfleet::agent
