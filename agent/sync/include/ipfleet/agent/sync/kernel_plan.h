// Turns the agent's config into kernel parameter structs: bypass policies, and the SAs and
// policies of statically keyed tunnels (programmed directly, without IKE).
#pragma once

#include <vector>

#include "ipfleet/agent/sync/config.h"
#include "ipfleet/common/status.h"
#include "ipfleet/kernel/types.h"

namespace ipfleet::agent {

kernel::IpAddress ToKernel(const IpAddress& ip);
IpAddress FromKernel(const kernel::IpAddress& ip);

// Bypass rules become allow (no template) or block policies, in and out.
absl::StatusOr<std::vector<kernel::PolicyParams>> BypassPolicies(const BypassConfig& rule);

// The owned reqid used for a tunnel (the bundle's, mapped into the owned range if needed).
uint32_t OwnedReqid(const TunnelConfig& tunnel);

// Protecting policies of a tunnel (out, in, and fwd for tunnel mode) with one ESP template.
absl::StatusOr<std::vector<kernel::PolicyParams>> TunnelPolicies(const TunnelConfig& tunnel, uint32_t priority);

struct StaticSas {
  kernel::SaParams outbound;
  kernel::SaParams inbound;
};
// SAs of a statically keyed tunnel; the algorithm comes from the proposal's first ESP cipher.
absl::StatusOr<StaticSas> StaticTunnelSas(const TunnelConfig& tunnel);

// Protecting priority: after every bypass rule (lower wins in the kernel).
uint32_t ProtectingPriority(const std::vector<BypassConfig>& bypass);

}  // namespace ipfleet::agent
