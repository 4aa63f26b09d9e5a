// Everything a bundle must pass before anything on the host changes: signature chained to the
// pinned CA, addressed to this host, a higher version than the last applied, and no policy that
// would capture the agent's own path to the controller.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "ipfleet/agent/sync/config.h"
#include "ipfleet/common/status.h"

namespace ipfleet::v1 {
class SignedBundle;
}

namespace ipfleet::agent {

// Verifies the detached signature over `bundle` bytes with the signer certificate, and the
// signer certificate against the pinned CA (and CRL). Adapted to ipfleet_ca in verifier.cc.
using BundleVerifyFn = std::function<absl::Status(const v1::SignedBundle&)>;

struct ControllerEndpoint {
  IpAddress address;
  uint16_t port = 0;
};

struct CheckContext {
  std::string host;
  uint64_t last_applied_version = 0;
  // Addresses the agent actually uses to reach the controller (from its config), in addition
  // to the bundle's own controller_address.
  std::vector<ControllerEndpoint> controller_endpoints;
  // On restart the last good bundle is re-checked with version >= instead of >.
  bool allow_same_version = false;
};

// Reason prefixes used in refusals (also the start of BundleAck.error):
inline constexpr char kRefusedSignature[] = "bad signature";
inline constexpr char kRefusedHost[] = "wrong host";
inline constexpr char kRefusedVersion[] = "rollback";
inline constexpr char kRefusedControllerPath[] = "controller path cut";
inline constexpr char kRefusedInvalid[] = "invalid bundle";

absl::StatusOr<DesiredState> CheckBundle(const v1::SignedBundle& signed_bundle, const BundleVerifyFn& verify,
                                         const CheckContext& ctx);

// The controller-path rule alone: each endpoint must not be captured by a tunnel's protecting
// selectors unless an allow bypass rule (always ordered first) matches it, and no block rule may
// match it.
absl::Status CheckControllerPath(const DesiredState& state, const std::vector<ControllerEndpoint>& endpoints);

}  // namespace ipfleet::agent
