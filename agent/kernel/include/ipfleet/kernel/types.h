// Plain data model of the kernel IPsec layer: addresses, selectors, SA and policy parameters.
// Only std types and absl::Status here, so the IKE engine, sync/ and health/ can use it without
// pulling in netlink or generated code.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <absl/status/statusor.h>

namespace ipfleet::kernel {

// ---- Ownership ---------------------------------------------------------------------------
// The agent only ever changes state it created. Two markers, both visible in `ip xfrm` output:
//  * SAs: the reqid lies in [kOwnedReqidFirst, kOwnedReqidLast]. Every SA the agent installs
//    carries such a reqid (the IKE engine allocates reqids from this range); policy templates
//    use the same reqids.
//  * Policies: the policy index lies in [kOwnedPolicyIndexFirst, kOwnedPolicyIndexLast]. The
//    layer assigns the index itself when PolicyParams::index is 0 (index = base | n<<3 | dir,
//    the kernel requires the low three bits to be the direction). The kernel's own index
//    generator counts up from 8 in steps of 8, so it only reaches this range after ~65 million
//    policy creations in one namespace. Bypass/block policies (no template) are owned through
//    their index alone.
// Anything else (foreign tools, `ip xfrm`, strongSwan with its default reqids) is never touched.
inline constexpr uint32_t kOwnedReqidFirst = 0x1F000000;
inline constexpr uint32_t kOwnedReqidLast = 0x1FFFFFFF;
inline constexpr uint32_t kOwnedPolicyIndexFirst = 0x1F000000;
inline constexpr uint32_t kOwnedPolicyIndexLast = 0x1FFFFFFF;

inline constexpr bool IsOwnedReqid(uint32_t reqid) {
  return reqid >= kOwnedReqidFirst && reqid <= kOwnedReqidLast;
}
inline constexpr bool IsOwnedPolicyIndex(uint32_t index) {
  return index >= kOwnedPolicyIndexFirst && index <= kOwnedPolicyIndexLast;
}

// ---- Addresses and selectors ---------------------------------------------------------------
struct IpAddress {
  enum class Family : uint8_t { kUnspec = 0, kV4 = 4, kV6 = 6 };
  Family family = Family::kUnspec;
  // v4: the first 4 bytes; v6: all 16. Network byte order.
  std::array<uint8_t, 16> bytes{};

  static absl::StatusOr<IpAddress> Parse(std::string_view text);
  // Aborts on bad input: for constants in code and tests only.
  static IpAddress MustParse(std::string_view text);
  static IpAddress AnyOf(Family family);  // 0.0.0.0 or ::
  std::string ToString() const;
  bool is_v4() const { return family == Family::kV4; }
  bool is_v6() const { return family == Family::kV6; }
  int max_prefix() const { return is_v4() ? 32 : 128; }
  friend bool operator==(const IpAddress&, const IpAddress&) = default;
  friend auto operator<=>(const IpAddress&, const IpAddress&) = default;
};

struct IpPrefix {
  IpAddress address;
  uint8_t length = 0;
  // "192.0.2.0/24", "2001:db8::1" (a host prefix when the length is omitted).
  static absl::StatusOr<IpPrefix> Parse(std::string_view text);
  static IpPrefix MustParse(std::string_view text);
  std::string ToString() const;
  friend bool operator==(const IpPrefix&, const IpPrefix&) = default;
  friend auto operator<=>(const IpPrefix&, const IpPrefix&) = default;
};

// Traffic selector. proto 0 = any protocol; ports 0 = any port. For ICMP/ICMPv6 the kernel
// carries type in src_port and code in dst_port (as `ip xfrm ... proto icmp type T code C`).
struct Selector {
  IpPrefix src;
  IpPrefix dst;
  uint8_t proto = 0;
  uint16_t src_port = 0;
  uint16_t dst_port = 0;
  std::string ToString() const;  // "192.0.2.1/32[any]->192.0.2.2/32[any] proto=0"
  friend bool operator==(const Selector&, const Selector&) = default;
  friend auto operator<=>(const Selector&, const Selector&) = default;
};

// XFRM mark: matches packets whose (skb mark & mask) == value. {0,0} = no mark.
struct Mark {
  uint32_t value = 0;
  uint32_t mask = 0;
  friend bool operator==(const Mark&, const Mark&) = default;
  friend auto operator<=>(const Mark&, const Mark&) = default;
};

enum class IpsecProto : uint8_t { kEsp = 50, kAh = 51 };
enum class Mode : uint8_t { kTransport = 0, kTunnel = 1 };

// ---- SAs -----------------------------------------------------------------------------------
// Algorithm names are the kernel's crypto API names, e.g. "rfc4106(gcm(aes))", "cbc(aes)",
// "hmac(sha256)". Keys are raw bytes; for rfc4106 the 4-byte salt is appended to the key
// (16+4 bytes for AES-128-GCM, 32+4 for AES-256-GCM). Keys are never logged.
struct CryptAlgo {
  std::string name;
  std::vector<uint8_t> key;
  friend bool operator==(const CryptAlgo&, const CryptAlgo&) = default;
};
struct AuthAlgo {
  std::string name;
  std::vector<uint8_t> key;
  uint32_t trunc_bits = 0;  // 0: the RFC 4868 default (half the hash length)
  friend bool operator==(const AuthAlgo&, const AuthAlgo&) = default;
};
struct AeadAlgo {
  std::string name;
  std::vector<uint8_t> key;  // including the salt
  uint32_t icv_bits = 128;
  friend bool operator==(const AeadAlgo&, const AeadAlgo&) = default;
};

// UDP encapsulation of ESP for NAT traversal (RFC 3948), type ESPINUDP.
struct NatTEncap {
  uint16_t src_port = 4500;
  uint16_t dst_port = 4500;
  friend bool operator==(const NatTEncap&, const NatTEncap&) = default;
};

// 0 means "no limit" in every field (the kernel's XFRM_INF).
struct Lifetime {
  uint64_t soft_bytes = 0;
  uint64_t hard_bytes = 0;
  uint64_t soft_packets = 0;
  uint64_t hard_packets = 0;
  uint64_t soft_add_seconds = 0;  // after installation
  uint64_t hard_add_seconds = 0;
  uint64_t soft_use_seconds = 0;  // after first use
  uint64_t hard_use_seconds = 0;
  friend bool operator==(const Lifetime&, const Lifetime&) = default;
};

// How the kernel identifies an SA: destination, SPI, protocol (and mark, when set).
struct SaId {
  IpAddress dst;
  uint32_t spi = 0;  // host byte order
  IpsecProto proto = IpsecProto::kEsp;
  Mark mark;
  std::string ToString() const;  // "spi=0x1f000001 dst=192.0.2.2 proto=esp"
  friend bool operator==(const SaId&, const SaId&) = default;
  friend auto operator<=>(const SaId&, const SaId&) = default;
};

struct SaParams {
  IpAddress src;
  IpAddress dst;
  uint32_t spi = 0;
  IpsecProto proto = IpsecProto::kEsp;
  Mode mode = Mode::kTunnel;
  uint32_t reqid = 0;  // owned SAs: within [kOwnedReqidFirst, kOwnedReqidLast]
  // Either aead, or crypt (+ auth). Exactly as the kernel accepts them.
  std::optional<CryptAlgo> crypt;
  std::optional<AuthAlgo> auth;
  std::optional<AeadAlgo> aead;
  uint32_t replay_window = 32;  // packets; 0 disables anti-replay (outbound SAs)
  bool esn = false;             // 64-bit extended sequence numbers (RFC 4303)
  std::optional<NatTEncap> encap;
  Lifetime lifetime;
  Mark mark;
  // Inner traffic the SA may carry; unset = any (the usual choice for tunnel mode).
  std::optional<Selector> selector;

  SaId id() const { return SaId{dst, spi, proto, mark}; }
  friend bool operator==(const SaParams&, const SaParams&) = default;
};

struct SaCounters {
  uint64_t bytes = 0;
  uint64_t packets = 0;
  uint64_t add_time = 0;  // unix seconds when installed
  uint64_t use_time = 0;  // unix seconds of first use, 0 = never used
  uint32_t replay_window_failures = 0;  // outside the replay window
  uint32_t replay_failures = 0;         // replayed sequence numbers
  uint32_t integrity_failures = 0;      // ICV / authentication check failed
  friend bool operator==(const SaCounters&, const SaCounters&) = default;
};

// An SA as read back from the kernel (dump or query). Contains keys: never log params.
struct SaState {
  SaParams params;
  SaCounters counters;
};

// ---- Policies ------------------------------------------------------------------------------
enum class Direction : uint8_t { kIn = 0, kOut = 1, kFwd = 2 };
enum class PolicyAction : uint8_t { kAllow = 0, kBlock = 1 };

// One transform a policy requires. For transport mode the endpoints may stay unspecified.
struct PolicyTemplate {
  IpAddress src;  // tunnel endpoints (tunnel mode)
  IpAddress dst;
  IpsecProto proto = IpsecProto::kEsp;
  Mode mode = Mode::kTunnel;
  uint32_t reqid = 0;
  uint32_t spi = 0;        // 0 = any SA with the reqid
  bool optional = false;   // level "use" instead of "required"
  friend bool operator==(const PolicyTemplate&, const PolicyTemplate&) = default;
};

// How the kernel identifies a policy: selector + direction + mark (index when known).
struct PolicyId {
  Selector selector;
  Direction dir = Direction::kOut;
  Mark mark;
  std::string ToString() const;  // "dir=out 192.0.2.0/24[any]->..."
  friend bool operator==(const PolicyId&, const PolicyId&) = default;
  friend auto operator<=>(const PolicyId&, const PolicyId&) = default;
};

struct PolicyParams {
  Selector selector;
  Direction dir = Direction::kOut;
  PolicyAction action = PolicyAction::kAllow;
  uint32_t priority = 0;  // lower value wins
  std::vector<PolicyTemplate> templates;  // empty + kAllow = bypass ("none"), kBlock = drop
  // 0 = let the layer assign an owned index (see the ownership note). A dump fills it in.
  uint32_t index = 0;
  Mark mark;
  Lifetime lifetime;

  PolicyId id() const { return PolicyId{selector, dir, mark}; }
  friend bool operator==(const PolicyParams&, const PolicyParams&) = default;
};

struct PolicyState {
  PolicyParams params;
  uint64_t add_time = 0;
  uint64_t use_time = 0;
};

// True when the layer created it (see the ownership note at the top).
bool IsOwned(const SaParams& sa);
bool IsOwned(const PolicyParams& policy);

const char* ToString(Direction dir);
const char* ToString(Mode mode);
const char* ToString(IpsecProto proto);

}  // namespace ipfleet::kernel
