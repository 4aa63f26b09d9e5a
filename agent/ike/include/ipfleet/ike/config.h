// The engine's own configuration types. sync/ translates policy bundles into these; the peer
// tool reads them from YAML. No generated code here (DESIGN.md: wire types stop at the edges).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "ipfleet/common/status.h"
#include "ipfleet/ike/wire.h"
#include "ipfleet/kernel/types.h"

namespace ipfleet::ike {

using Duration = std::chrono::milliseconds;

enum class AuthKind { kPubkey, kPsk };
enum class StartAction { kNone, kStart, kTrap };
enum class DpdAction { kClear, kRestart };

// An IKE identity (RFC 7296 3.5). Parse: IP literal -> ID_IPV4/6_ADDR, contains '=' -> DER DN,
// contains '@' -> RFC822, otherwise FQDN.
struct Identity {
  IdType type = IdType::kFqdn;
  Bytes data;  // wire form (DER for DN)
  static absl::StatusOr<Identity> Parse(const std::string& text);
  std::string ToString() const;
  bool empty() const { return data.empty(); }
  bool operator==(const Identity&) const = default;
};

// One traffic selector: an address prefix with optional protocol and port range.
struct TsConfig {
  kernel::IpPrefix prefix;
  uint8_t proto = 0;
  uint16_t port_lo = 0;
  uint16_t port_hi = 0xffff;
  // "10.0.0.0/24", "2001:db8::/64", "10.0.0.1/32[tcp/80]", "10.0.0.0/8[17]".
  static absl::StatusOr<TsConfig> Parse(const std::string& text);
  std::string ToString() const;
  bool operator==(const TsConfig&) const = default;
};

// Proposal strings as in docs/ike.md, e.g. "aes128gcm16-prfsha256-x25519" or "aes256-sha256".
absl::StatusOr<Proposal> ParseProposal(const std::string& text, ProtocolId protocol);
// "AES_GCM_16_128/PRF_HMAC_SHA2_256/CURVE_25519".
std::string ProposalSuiteName(const Proposal& p);

struct ChildConfig {
  std::string name;
  std::vector<TsConfig> local_ts;   // empty: our IKE address as a host selector
  std::vector<TsConfig> remote_ts;  // empty: the peer's IKE address
  kernel::Mode mode = kernel::Mode::kTunnel;
  std::vector<std::string> esp_proposals = {"aes128gcm16"};
  uint32_t reqid = 0;  // 0: allocated from the owned range
  StartAction start_action = StartAction::kNone;
  // Lifetimes (rekey.h). rekey_time: CREATE_CHILD_SA rekey this long after installation, minus a
  // random 0..rand_time so a fleet does not rekey in lockstep (0 = only on the kernel's soft
  // EXPIRE). life_time: hard limit, the CHILD_SA is deleted (0 = rekey_time + 10%). Byte/packet
  // limits go to the kernel as soft (rekey) and hard (+10%) limits; 0 = none. A DH group in
  // esp_proposals means PFS: rekeys carry a KE payload.
  Duration rekey_time{0};
  Duration rand_time{0};
  Duration life_time{0};
  uint64_t rekey_bytes = 0;
  uint64_t rekey_packets = 0;
  bool operator==(const ChildConfig&) const = default;
};

struct PeerConfig {
  std::string name;
  kernel::IpAddress local_addr;
  uint16_t local_port = 500;
  kernel::IpAddress remote_addr;  // kUnspec family = any (responder only)
  uint16_t remote_port = 500;
  std::string local_id;   // Identity::Parse syntax; empty = our IP address
  std::string remote_id;  // empty = any identity (pubkey: whatever the verified cert proves)
  AuthKind auth = AuthKind::kPubkey;
  std::string psk;
  std::string cert_pem;  // our certificate (end entity first, then intermediates)
  std::string key_pem;   // our private key (never logged)
  std::vector<std::string> ca_pems;
  std::vector<std::string> crl_pems;
  std::vector<std::string> ike_proposals = {"aes128gcm16-prfsha256-x25519"};
  Duration dpd_interval{0};  // 0: no liveness checks
  DpdAction dpd_action = DpdAction::kClear;
  // IKE_SA rekey (RFC 7296 2.18) this long after establishment minus random 0..ike_rand_time; 0 = never.
  Duration ike_rekey_time{0};
  Duration ike_rand_time{0};
  std::vector<ChildConfig> children;
  bool operator==(const PeerConfig&) const = default;
};

struct IkeConfig {
  std::vector<PeerConfig> peers;
  Duration retransmit_timeout{1000};  // first retransmission; doubles each time
  int retransmit_tries = 5;           // retransmissions before the exchange fails
  Duration half_open_timeout{30000};  // responder IKE_SA that never completed IKE_AUTH
  // NAT traversal (RFC 3948, RFC 7296 2.23): keepalive interval of the side behind a NAT; 0 = off.
  Duration nat_keepalive{20000};
  // IKE fragmentation (RFC 7383): offered/accepted when true; messages whose IP datagram would
  // exceed fragment_size bytes (IP + UDP headers included, as charon's fragment_size) are split.
  bool fragmentation = true;
  size_t fragment_size = 1280;
  Duration reassembly_timeout{10000};  // a message whose fragments do not all arrive in time is dropped
  // DoS resistance (RFC 7296 2.6): above cookie_threshold half-open IKE_SAs, IKE_SA_INIT requests
  // are answered with a stateless COOKIE; beyond the hard limits new ones are dropped.
  size_t cookie_threshold = 50;
  size_t half_open_max = 1000;
  size_t half_open_per_peer = 20;   // per remote IP address
  Duration cookie_secret_lifetime{120000};
  // After a CHILD_SA rekey the old inbound SA stays this long for packets still in flight.
  Duration rekey_grace{2000};
};

const char* ToString(StartAction a);
const char* ToString(AuthKind a);

}  // namespace ipfleet::ike
