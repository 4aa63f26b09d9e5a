#include "ipfleet/agent/sync/kernel_plan.h"

#include <netinet/in.h>

#include <algorithm>
#include <functional>

#include <absl/strings/str_cat.h>

namespace ipfleet::agent {
namespace {

constexpr uint8_t kIcmp = 1;
constexpr uint8_t kIcmpV6 = 58;
constexpr uint32_t kDefaultProtectingPriority = 10000;
constexpr int kMaxExpandedPorts = 32;

kernel::IpPrefix ToKernelPrefix(const Prefix& p, int family_hint) {
  kernel::IpPrefix k;
  if (p.address.empty()) {
    k.address = kernel::IpAddress::AnyOf(family_hint == AF_INET6 ? kernel::IpAddress::Family::kV6
                                                                 : kernel::IpAddress::Family::kV4);
    k.length = 0;
    return k;
  }
  k.address = ToKernel(p.address);
  k.length = p.length;
  return k;
}

// One selector side's port values as the kernel wants them: single port (0 = any). For ICMP the
// RFC 7296 range encodes type<<8|code; the kernel carries type in sport and code in dport.
struct PortChoice {
  uint16_t port = 0;   // TCP/UDP port, or ICMP type
  uint16_t code = 0;   // ICMP code
};

absl::StatusOr<std::vector<PortChoice>> Expand(const Selector& s) {
  if (s.port_from == 0 && s.port_to == 65535) return std::vector<PortChoice>{PortChoice{}};
  std::vector<PortChoice> out;
  if (s.protocol == kIcmp || s.protocol == kIcmpV6) {
    int tfrom = s.port_from >> 8, tto = s.port_to >> 8;
    bool any_code = (s.port_from & 0xff) == 0 && (s.port_to & 0xff) == 0xff;
    if (tto - tfrom + 1 > kMaxExpandedPorts) return absl::InvalidArgumentError(absl::StrCat("ICMP type range too wide in ", s.ToString()));
    for (int t = tfrom; t <= tto; ++t) {
      out.push_back(PortChoice{static_cast<uint16_t>(t), any_code ? uint16_t{0} : static_cast<uint16_t>(s.port_from & 0xff)});
    }
    return out;
  }
  if (s.port_to - s.port_from + 1 > kMaxExpandedPorts) {
    return absl::InvalidArgumentError(absl::StrCat("port range too wide for kernel selectors in ", s.ToString()));
  }
  for (int p = s.port_from; p <= s.port_to; ++p) out.push_back(PortChoice{static_cast<uint16_t>(p), 0});
  return out;
}

std::vector<int> Families(const Selector& a, const Selector& b) {
  int fa = a.prefix.address.family, fb = b.prefix.address.family;
  if (fa && fb) return fa == fb ? std::vector<int>{fa} : std::vector<int>{};
  if (fa) return {fa};
  if (fb) return {fb};
  return {AF_INET, AF_INET6};
}

bool IsIcmp(uint8_t p) { return p == kIcmp || p == kIcmpV6; }

}  // namespace

kernel::IpAddress ToKernel(const IpAddress& ip) {
  kernel::IpAddress k;
  k.family = ip.family == AF_INET6 ? kernel::IpAddress::Family::kV6
             : ip.family == AF_INET ? kernel::IpAddress::Family::kV4
                                    : kernel::IpAddress::Family::kUnspec;
  k.bytes = ip.bytes;
  return k;
}

IpAddress FromKernel(const kernel::IpAddress& k) {
  IpAddress ip;
  ip.family = k.is_v6() ? AF_INET6 : k.is_v4() ? AF_INET : 0;
  ip.bytes = k.bytes;
  return ip;
}

absl::StatusOr<std::vector<kernel::PolicyParams>> BypassPolicies(const BypassConfig& rule) {
  std::vector<kernel::PolicyParams> out;
  uint8_t proto = rule.remote.protocol ? rule.remote.protocol : rule.local.protocol;
  IPFLEET_ASSIGN_OR_RETURN(auto remote_ports, Expand(rule.remote));
  IPFLEET_ASSIGN_OR_RETURN(auto local_ports, Expand(rule.local));
  for (int fam : Families(rule.remote, rule.local)) {
    auto local = ToKernelPrefix(rule.local.prefix, fam);
    auto remote = ToKernelPrefix(rule.remote.prefix, fam);
    uint8_t p = proto;
    if (IsIcmp(proto)) p = fam == AF_INET6 ? kIcmpV6 : kIcmp;
    for (const auto& rp : remote_ports) {
      for (const auto& lp : local_ports) {
        for (auto dir : {kernel::Direction::kOut, kernel::Direction::kIn}) {
          kernel::PolicyParams pol;
          pol.dir = dir;
          pol.action = rule.allow ? kernel::PolicyAction::kAllow : kernel::PolicyAction::kBlock;
          pol.priority = rule.priority;
          pol.selector.proto = p;
          bool outbound = dir == kernel::Direction::kOut;
          pol.selector.src = outbound ? local : remote;
          pol.selector.dst = outbound ? remote : local;
          if (IsIcmp(p)) {
            // ICMP type lives in sport and code in dport whatever the direction.
            pol.selector.src_port = rp.port;
            pol.selector.dst_port = rp.code;
          } else {
            pol.selector.src_port = outbound ? lp.port : rp.port;
            pol.selector.dst_port = outbound ? rp.port : lp.port;
          }
          out.push_back(pol);
        }
      }
    }
  }
  return out;
}

uint32_t OwnedReqid(const TunnelConfig& t) {
  if (kernel::IsOwnedReqid(t.reqid)) return t.reqid;
  uint32_t span = kernel::kOwnedReqidLast - kernel::kOwnedReqidFirst;
  uint32_t n = t.reqid ? t.reqid : static_cast<uint32_t>(std::hash<std::string>{}(t.name));
  return kernel::kOwnedReqidFirst + 1 + (n % span);
}

absl::StatusOr<std::vector<kernel::PolicyParams>> TunnelPolicies(const TunnelConfig& t, uint32_t priority) {
  std::vector<kernel::PolicyParams> out;
  const uint32_t reqid = OwnedReqid(t);
  const auto mode = t.transport ? kernel::Mode::kTransport : kernel::Mode::kTunnel;
  for (const auto& ls : t.local_subnets) {
    for (const auto& rs : t.remote_subnets) {
      if (ls.prefix.address.family != rs.prefix.address.family) continue;
      uint8_t proto = ls.protocol ? ls.protocol : rs.protocol;
      IPFLEET_ASSIGN_OR_RETURN(auto lports, Expand(ls));
      IPFLEET_ASSIGN_OR_RETURN(auto rports, Expand(rs));
      for (const auto& lp : lports) {
        for (const auto& rp : rports) {
          std::vector<kernel::Direction> dirs = {kernel::Direction::kOut, kernel::Direction::kIn};
          if (!t.transport) dirs.push_back(kernel::Direction::kFwd);
          for (auto dir : dirs) {
            bool outbound = dir == kernel::Direction::kOut;
            kernel::PolicyParams pol;
            pol.dir = dir;
            pol.priority = priority;
            pol.selector.proto = proto;
            pol.selector.src = ToKernelPrefix(outbound ? ls.prefix : rs.prefix, ls.prefix.address.family);
            pol.selector.dst = ToKernelPrefix(outbound ? rs.prefix : ls.prefix, ls.prefix.address.family);
            pol.selector.src_port = outbound ? lp.port : rp.port;
            pol.selector.dst_port = outbound ? rp.port : lp.port;
            kernel::PolicyTemplate tmpl;
            tmpl.mode = mode;
            tmpl.reqid = reqid;
            if (!t.transport) {
              tmpl.src = ToKernel(outbound ? t.local_address : t.remote_address);
              tmpl.dst = ToKernel(outbound ? t.remote_address : t.local_address);
            }
            pol.templates.push_back(tmpl);
            out.push_back(pol);
          }
        }
      }
    }
  }
  if (out.empty()) return absl::InvalidArgumentError(absl::StrCat("tunnel ", t.name, ": no selector pair of one family"));
  return out;
}

absl::StatusOr<StaticSas> StaticTunnelSas(const TunnelConfig& t) {
  if (!t.static_keys) return absl::InvalidArgumentError(absl::StrCat("tunnel ", t.name, ": no static keys"));
  const std::string& enc = t.proposal.esp_encryption.front();
  auto make = [&](const StaticSaKey& key, bool outbound) -> absl::StatusOr<kernel::SaParams> {
    kernel::SaParams sa;
    sa.src = ToKernel(outbound ? t.local_address : t.remote_address);
    sa.dst = ToKernel(outbound ? t.remote_address : t.local_address);
    sa.spi = key.spi;
    sa.mode = t.transport ? kernel::Mode::kTransport : kernel::Mode::kTunnel;
    sa.reqid = OwnedReqid(t);
    sa.esn = t.proposal.esn;
    sa.replay_window = outbound ? 0 : 32;
    std::vector<uint8_t> ek(key.encryption_key.begin(), key.encryption_key.end());
    if (enc == "aes128gcm16" || enc == "aes256gcm16") {
      size_t want = enc == "aes128gcm16" ? 20 : 36;
      if (ek.size() != want) {
        return absl::InvalidArgumentError(absl::StrCat("tunnel ", t.name, ": ", enc, " needs a ", want, "-byte key+salt"));
      }
      sa.aead = kernel::AeadAlgo{"rfc4106(gcm(aes))", ek, 128};
    } else if (enc == "aes128" || enc == "aes256") {
      size_t want = enc == "aes128" ? 16 : 32;
      if (ek.size() != want) return absl::InvalidArgumentError(absl::StrCat("tunnel ", t.name, ": ", enc, " needs a ", want, "-byte key"));
      sa.crypt = kernel::CryptAlgo{"cbc(aes)", ek};
      const std::string integ = t.proposal.esp_integrity.empty() ? "sha256" : t.proposal.esp_integrity.front();
      std::string name;
      uint32_t bits = 0;
      size_t klen = 0;
      if (integ == "sha256") { name = "hmac(sha256)"; bits = 128; klen = 32; }
      else if (integ == "sha384") { name = "hmac(sha384)"; bits = 192; klen = 48; }
      else if (integ == "sha512") { name = "hmac(sha512)"; bits = 256; klen = 64; }
      else return absl::InvalidArgumentError(absl::StrCat("tunnel ", t.name, ": unsupported ESP integrity '", integ, "'"));
      if (key.integrity_key.size() != klen) {
        return absl::InvalidArgumentError(absl::StrCat("tunnel ", t.name, ": ", integ, " needs a ", klen, "-byte key"));
      }
      sa.auth = kernel::AuthAlgo{name, std::vector<uint8_t>(key.integrity_key.begin(), key.integrity_key.end()), bits};
    } else {
      return absl::InvalidArgumentError(absl::StrCat("tunnel ", t.name, ": unsupported ESP cipher '", enc, "'"));
    }
    const auto& lt = t.proposal.child_lifetime;
    sa.lifetime.soft_bytes = lt.soft_bytes;
    sa.lifetime.hard_bytes = lt.hard_bytes;
    sa.lifetime.soft_packets = lt.soft_packets;
    sa.lifetime.hard_packets = lt.hard_packets;
    return sa;
  };
  StaticSas s;
  IPFLEET_ASSIGN_OR_RETURN(s.outbound, make(t.static_keys->outbound, true));
  IPFLEET_ASSIGN_OR_RETURN(s.inbound, make(t.static_keys->inbound, false));
  return s;
}

uint32_t ProtectingPriority(const std::vector<BypassConfig>& bypass) {
  uint32_t p = kDefaultProtectingPriority;
  for (const auto& b : bypass) p = std::max(p, b.priority + 1);
  return p;
}

}  // namespace ipfleet::agent
