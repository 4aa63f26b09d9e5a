#include "ipfleet/kernel/types.h"

#include <arpa/inet.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include <absl/status/status.h>
#include <absl/strings/numbers.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_format.h>

namespace ipfleet::kernel {

absl::StatusOr<IpAddress> IpAddress::Parse(std::string_view text) {
  std::string s(text);
  IpAddress a;
  if (inet_pton(AF_INET, s.c_str(), a.bytes.data()) == 1) {
    a.family = Family::kV4;
    return a;
  }
  if (inet_pton(AF_INET6, s.c_str(), a.bytes.data()) == 1) {
    a.family = Family::kV6;
    return a;
  }
  return absl::InvalidArgumentError(absl::StrCat("not an IP address: '", s, "'"));
}

IpAddress IpAddress::MustParse(std::string_view text) {
  auto a = Parse(text);
  if (!a.ok()) {
    std::fprintf(stderr, "IpAddress::MustParse: %s\n", a.status().ToString().c_str());
    std::abort();
  }
  return *a;
}

IpAddress IpAddress::AnyOf(Family family) {
  IpAddress a;
  a.family = family;
  return a;
}

std::string IpAddress::ToString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  switch (family) {
    case Family::kV4:
      inet_ntop(AF_INET, bytes.data(), buf, sizeof buf);
      return buf;
    case Family::kV6:
      inet_ntop(AF_INET6, bytes.data(), buf, sizeof buf);
      return buf;
    case Family::kUnspec:
      break;
  }
  return "unspec";
}

absl::StatusOr<IpPrefix> IpPrefix::Parse(std::string_view text) {
  IpPrefix p;
  auto slash = text.find('/');
  auto addr = IpAddress::Parse(text.substr(0, slash));
  if (!addr.ok()) return addr.status();
  p.address = *addr;
  p.length = static_cast<uint8_t>(p.address.max_prefix());
  if (slash != std::string_view::npos) {
    int len = 0;
    if (!absl::SimpleAtoi(std::string(text.substr(slash + 1)), &len) || len < 0 || len > p.address.max_prefix()) {
      return absl::InvalidArgumentError(absl::StrCat("bad prefix length in '", std::string(text), "'"));
    }
    p.length = static_cast<uint8_t>(len);
  }
  return p;
}

IpPrefix IpPrefix::MustParse(std::string_view text) {
  auto p = Parse(text);
  if (!p.ok()) {
    std::fprintf(stderr, "IpPrefix::MustParse: %s\n", p.status().ToString().c_str());
    std::abort();
  }
  return *p;
}

std::string IpPrefix::ToString() const {
  return absl::StrCat(address.ToString(), "/", length);
}

namespace {
std::string PortText(uint16_t port) { return port == 0 ? "any" : std::to_string(port); }
}  // namespace

std::string Selector::ToString() const {
  return absl::StrCat(src.ToString(), "[", PortText(src_port), "]->", dst.ToString(), "[",
                      PortText(dst_port), "] proto=", proto);
}

std::string SaId::ToString() const {
  std::string s = absl::StrFormat("spi=0x%08x dst=%s proto=%s", spi, dst.ToString(),
                                  kernel::ToString(proto));
  if (mark.value != 0 || mark.mask != 0) {
    absl::StrAppend(&s, absl::StrFormat(" mark=0x%x/0x%x", mark.value, mark.mask));
  }
  return s;
}

std::string PolicyId::ToString() const {
  std::string s = absl::StrCat("dir=", kernel::ToString(dir), " ", selector.ToString());
  if (mark.value != 0 || mark.mask != 0) {
    absl::StrAppend(&s, absl::StrFormat(" mark=0x%x/0x%x", mark.value, mark.mask));
  }
  return s;
}

bool IsOwned(const SaParams& sa) { return IsOwnedReqid(sa.reqid); }

bool IsOwned(const PolicyParams& policy) {
  if (IsOwnedPolicyIndex(policy.index)) return true;
  // Fallback for a policy whose index the kernel re-chose: a template with an owned reqid.
  for (const auto& t : policy.templates) {
    if (IsOwnedReqid(t.reqid)) return true;
  }
  return false;
}

const char* ToString(Direction dir) {
  switch (dir) {
    case Direction::kIn: return "in";
    case Direction::kOut: return "out";
    case Direction::kFwd: return "fwd";
  }
  return "?";
}

const char* ToString(Mode mode) {
  return mode == Mode::kTunnel ? "tunnel" : "transport";
}

const char* ToString(IpsecProto proto) {
  return proto == IpsecProto::kEsp ? "esp" : "ah";
}

}  // namespace ipfleet::kernel
