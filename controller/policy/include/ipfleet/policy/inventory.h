// The compiler's input: a plain, self-contained snapshot of the desired fleet at one generation.
// Filled by the store adapter (hosts from the inventory) and the fleet-file expansion (tunnels);
// the compiler reads nothing else, so the same snapshot always compiles to the same bytes.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ipfleet/v1/types.pb.h"

namespace ipfleet::policy {

// Traffic selector as written by an operator; cidr is validated by the compiler.
struct Selector {
  std::string cidr;
  uint32_t protocol = 0;  // 0 = any
  uint32_t port_from = 0;
  uint32_t port_to = 65535;
};

struct Host {
  std::string name;
  std::vector<std::string> addresses;  // outer (IKE/ESP) addresses
  std::vector<std::string> dns_names;
  std::map<std::string, std::string> labels;
  // Protected subnets behind the host; empty means "the host itself" (its outer address).
  std::vector<std::string> subnets;
};

struct ExternalPeer {
  std::string name;
  std::string address;
  std::string identity;  // "fqdn:..", "ip:..", "dn:.."
  v1::AuthMethod auth = v1::AUTH_METHOD_CERTIFICATE;
  std::string psk;  // secret, AUTH_METHOD_PSK only
  std::vector<std::string> subnets;
};

struct TunnelEnd {
  std::string name;       // host or external peer name
  bool external = false;  // true when `name` is an external peer
  // Per-tunnel override of this end's protected subnets (tunnel mode only).
  std::vector<std::string> subnets;
};

struct Tunnel {
  std::string name;
  TunnelEnd a;  // by convention the lower-named host; external peers are always `b`
  TunnelEnd b;
  std::string proposal;
  v1::TunnelMode mode = v1::TUNNEL_MODE_TUNNEL;
  v1::AuthMethod auth = v1::AUTH_METHOD_CERTIFICATE;
  v1::StartAction start_action = v1::START_ACTION_START;
  v1::DpdSettings dpd;
  // "ipv4" / "ipv6" / empty (= IPv4 when both ends have one, else IPv6).
  std::string family;
  // Static-key tunnels: fresh keys on every generation (otherwise only when none exist yet).
  bool rotate_keys = false;
  // Where the tunnel came from ("tunnels[3]", "mesh fra-web", "hub hq"), for error messages.
  std::string origin;
};

// Keys of one static-key tunnel; a_to_b protects traffic from end a to end b.
struct StaticKeyMaterial {
  uint64_t key_generation = 0;
  v1::StaticSaKeys a_to_b;
  v1::StaticSaKeys b_to_a;
};

struct BypassExemption {
  std::string reason;
  Selector remote;
  std::optional<Selector> local;
  v1::BypassAction action = v1::BYPASS_ACTION_ALLOW;
};

struct ControllerEndpoint {
  std::vector<std::string> addresses;  // every address agents may use to reach the controller
  uint32_t port = 0;
};

struct InventorySnapshot {
  uint64_t generation = 0;
  int64_t created_unix = 0;  // when the generation was applied (informational, copied into bundles)
  ControllerEndpoint controller;
  std::vector<Host> hosts;
  std::vector<ExternalPeer> external_peers;
  std::map<std::string, v1::Proposal> proposals;  // by name
  std::vector<Tunnel> tunnels;
  std::vector<BypassExemption> bypass;
  // Keys of static-key tunnels from earlier generations, by tunnel name; reused unless rotation is due.
  std::map<std::string, StaticKeyMaterial> static_keys;
};

}  // namespace ipfleet::policy
