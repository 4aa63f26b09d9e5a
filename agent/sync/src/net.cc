#include "ipfleet/agent/sync/net.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

#include <absl/strings/str_cat.h>

namespace ipfleet::agent {

std::string IpAddress::ToString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (family == 0) return "";
  inet_ntop(family, bytes.data(), buf, sizeof(buf));
  return buf;
}

bool Prefix::Contains(const IpAddress& ip) const {
  if (ip.family != address.family) return false;
  int full = length / 8, rest = length % 8;
  if (std::memcmp(ip.bytes.data(), address.bytes.data(), full) != 0) return false;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (ip.bytes[full] & mask) == (address.bytes[full] & mask);
}

bool Prefix::Covers(const Prefix& other) const {
  return other.address.family == address.family && other.length >= length && Contains(other.address);
}

std::string Prefix::ToString() const { return absl::StrCat(address.ToString(), "/", length); }

absl::StatusOr<IpAddress> ParseIp(std::string_view text) {
  IpAddress ip;
  std::string s(text);
  if (inet_pton(AF_INET, s.c_str(), ip.bytes.data()) == 1) {
    ip.family = AF_INET;
  } else if (inet_pton(AF_INET6, s.c_str(), ip.bytes.data()) == 1) {
    ip.family = AF_INET6;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("inet_pton: not an IP address: '", std::string(text), "'"));
  }
  return ip;
}

absl::StatusOr<Prefix> ParsePrefix(std::string_view text) {
  Prefix p;
  auto slash = text.find('/');
  IPFLEET_ASSIGN_OR_RETURN(p.address, ParseIp(text.substr(0, slash)));
  int max = p.address.family == AF_INET ? 32 : 128;
  if (slash == std::string_view::npos) {
    p.length = static_cast<uint8_t>(max);
  } else {
    auto len = text.substr(slash + 1);
    int v = -1;
    auto [ptr, ec] = std::from_chars(len.data(), len.data() + len.size(), v);
    if (ec != std::errc() || ptr != len.data() + len.size() || v < 0 || v > max) {
      return absl::InvalidArgumentError(absl::StrCat("bad prefix length in '", std::string(text), "'"));
    }
    p.length = static_cast<uint8_t>(v);
  }
  // Normalise host bits away so equal prefixes compare equal.
  for (int bit = p.length; bit < max; ++bit) p.address.bytes[bit / 8] &= static_cast<uint8_t>(~(0x80 >> (bit % 8)));
  return p;
}

absl::Status SplitHostPort(std::string_view text, std::string* host, uint16_t* port, uint16_t default_port) {
  std::string_view h = text, p;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos) return absl::InvalidArgumentError(absl::StrCat("bad address '", std::string(text), "'"));
    h = text.substr(1, close - 1);
    if (close + 1 < text.size() && text[close + 1] == ':') p = text.substr(close + 2);
  } else if (auto colon = text.rfind(':'); colon != std::string_view::npos && text.find(':') == colon) {
    h = text.substr(0, colon);
    p = text.substr(colon + 1);
  }
  *host = std::string(h);
  *port = default_port;
  if (!p.empty()) {
    unsigned v = 0;
    auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), v);
    if (ec != std::errc() || ptr != p.data() + p.size() || v == 0 || v > 65535) {
      return absl::InvalidArgumentError(absl::StrCat("bad port in '", std::string(text), "'"));
    }
    *port = static_cast<uint16_t>(v);
  }
  return absl::OkStatus();
}

}  // namespace ipfleet::agent
