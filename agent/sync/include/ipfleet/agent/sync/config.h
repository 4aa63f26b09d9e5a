// The agent's own model of what a host should run. Wire types (generated proto code) stop in
// translate.cc: the applier, the IKE seam and health only ever see these structs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ipfleet/agent/sync/net.h"

namespace ipfleet::agent {

struct Selector {
  Prefix prefix;
  uint8_t protocol = 0;  // 0 = any
  uint16_t port_from = 0;
  uint16_t port_to = 65535;
  bool operator==(const Selector&) const = default;
  std::string ToString() const;
};

struct BypassConfig {
  std::string reason;
  Selector remote;
  Selector local;  // prefix length 0 (any) when the bundle leaves it empty
  bool allow = true;
  uint32_t priority = 0;
  bool operator==(const BypassConfig&) const = default;
};

struct StaticSaKey {
  uint32_t spi = 0;
  std::string encryption_key;  // secret: never logged
  std::string integrity_key;   // secret: never logged; empty for AEAD
  bool operator==(const StaticSaKey&) const = default;
};

struct StaticKeysConfig {
  StaticSaKey outbound;
  StaticSaKey inbound;
  uint64_t key_generation = 0;
  bool operator==(const StaticKeysConfig&) const = default;
};

struct LifetimeConfig {
  uint32_t rekey_seconds = 0;
  uint32_t hard_seconds = 0;
  uint64_t soft_bytes = 0, hard_bytes = 0, soft_packets = 0, hard_packets = 0;
  uint32_t jitter_percent = 0;
  bool operator==(const LifetimeConfig&) const = default;
};

struct ProposalConfig {
  std::string name;
  std::vector<std::string> ike_encryption, ike_integrity, ike_prf, ike_dh_groups;
  std::vector<std::string> esp_encryption, esp_integrity;
  bool esn = false;
  bool pfs = false;
  std::vector<std::string> pfs_groups;
  LifetimeConfig ike_lifetime, child_lifetime;
  bool operator==(const ProposalConfig&) const = default;
};

enum class AuthKind { kCertificate, kPsk, kStatic };
enum class StartKind { kStart, kTrap, kNone };

struct TunnelConfig {
  std::string name;
  bool transport = false;
  std::string local_host;       // this host
  std::string remote_name;      // host or external peer name
  bool remote_is_external = false;
  IpAddress local_address, remote_address;
  std::string local_identity, remote_identity;
  // Protected selectors; for transport mode without subnets these are the outer addresses.
  std::vector<Selector> local_subnets, remote_subnets;
  ProposalConfig proposal;
  AuthKind auth = AuthKind::kCertificate;
  std::string psk;  // secret: never logged
  uint32_t dpd_interval_seconds = 5;
  uint32_t dpd_max_retries = 3;
  uint32_t stale_child_seconds = 5;
  StartKind start = StartKind::kStart;
  std::optional<StaticKeysConfig> static_keys;
  uint32_t reqid = 0;
  bool initiator = false;
  std::optional<IpAddress> probe_source, probe_destination;
  bool operator==(const TunnelConfig&) const = default;
};

// Everything one verified bundle asks this host to run.
struct DesiredState {
  std::string host;
  uint64_t version = 0;
  uint64_t generation = 0;
  std::vector<TunnelConfig> tunnels;
  std::vector<BypassConfig> bypass;
  std::vector<std::string> ca_chain_pem;
  std::string crl_pem;
  std::string controller_address;  // "ADDR:PORT" as compiled by the controller
};

}  // namespace ipfleet::agent
