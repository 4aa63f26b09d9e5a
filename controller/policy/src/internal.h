// Pieces of the compiler split by job; not part of the public interface.
#pragma once

#include <vector>

#include "ipfleet/policy/cidr.h"
#include "ipfleet/policy/compiler.h"

namespace ipfleet::policy::internal {

struct ControllerPath {
  std::vector<Prefix> addresses;
  uint32_t port = 0;
};

// The bypass rules every bundle carries, in priority order (controller, IKE, ICMPv6 ND, operator).
absl::StatusOr<std::vector<v1::BypassRule>> BuildBypass(const InventorySnapshot& snapshot,
                                                        const ControllerPath& controller);

// Key lengths for the first ESP transform of `proposal`.
struct KeyLengths {
  size_t encryption = 0;  // including the 4-byte salt for AEAD
  size_t integrity = 0;
};
absl::StatusOr<KeyLengths> StaticKeyLengths(const v1::Proposal& proposal);

// Fresh keys for both directions of a static tunnel.
absl::StatusOr<StaticKeyMaterial> NewStaticKeys(const KeyLengths& lengths, uint64_t generation, KeySource& keys);

// True when material matches the lengths (a proposal change forces new keys).
bool KeysFit(const StaticKeyMaterial& material, const KeyLengths& lengths);

// True when a selector with this protocol/port range would match TCP to `port`.
bool MatchesTcpPort(uint32_t protocol, uint32_t port_from, uint32_t port_to, uint32_t port);

}  // namespace ipfleet::policy::internal
