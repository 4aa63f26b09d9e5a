#include <absl/strings/str_cat.h>

#include "internal.h"

namespace ipfleet::policy::internal {
namespace {

constexpr uint32_t kTcp = 6;
constexpr uint32_t kUdp = 17;
constexpr uint32_t kIcmpv6 = 58;

v1::TrafficSelector Sel(const std::string& cidr, uint32_t proto, uint32_t from, uint32_t to) {
  v1::TrafficSelector s;
  s.set_cidr(cidr);
  s.set_protocol(proto);
  s.set_port_from(from);
  s.set_port_to(to);
  return s;
}

}  // namespace

bool MatchesTcpPort(uint32_t protocol, uint32_t port_from, uint32_t port_to, uint32_t port) {
  return (protocol == 0 || protocol == kTcp) && port_from <= port && port <= port_to;
}

absl::StatusOr<std::vector<v1::BypassRule>> BuildBypass(const InventorySnapshot& snapshot,
                                                        const ControllerPath& controller) {
  std::vector<v1::BypassRule> rules;
  auto add = [&](std::string reason, v1::TrafficSelector remote, std::optional<v1::TrafficSelector> local,
                 v1::BypassAction action) {
    v1::BypassRule r;
    r.set_reason(std::move(reason));
    *r.mutable_remote() = std::move(remote);
    if (local) *r.mutable_local() = std::move(*local);
    r.set_action(action);
    r.set_priority(kBypassPriorityBase + static_cast<uint32_t>(rules.size()));
    rules.push_back(std::move(r));
  };

  // The agent must always reach the controller, whatever the tunnels say.
  for (const Prefix& addr : controller.addresses) {
    add("controller", Sel(addr.ToString(), kTcp, controller.port, controller.port), std::nullopt,
        v1::BYPASS_ACTION_ALLOW);
  }
  // IKE itself (and NAT-T) must never be caught by the policies it negotiates. Match both the local
  // port (ours is always 500/4500) and the remote one (a peer behind NAT may use another source port).
  for (const char* any : {"0.0.0.0/0", "::/0"}) {
    for (uint32_t port : {500u, 4500u}) {
      add("ike", Sel(any, kUdp, port, port), std::nullopt, v1::BYPASS_ACTION_ALLOW);
      add("ike", Sel(any, kUdp, 0, 65535), Sel(any, kUdp, port, port), v1::BYPASS_ACTION_ALLOW);
    }
  }
  // ICMPv6 neighbour discovery: router/neighbour solicitation/advertisement and redirect
  // (types 133-137). RFC 7296 3.13.1 puts the ICMP type in the high byte of the port field.
  add("icmpv6-nd", Sel("::/0", kIcmpv6, 133u << 8, (137u << 8) | 0xFF), std::nullopt, v1::BYPASS_ACTION_ALLOW);

  for (const BypassExemption& ex : snapshot.bypass) {
    auto remote = ParsePrefix(ex.remote.cidr);
    if (!remote.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("bypass \"", ex.reason, "\": ", remote.status().message()));
    }
    std::optional<v1::TrafficSelector> local;
    if (ex.local) {
      auto lp = ParsePrefix(ex.local->cidr);
      if (!lp.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("bypass \"", ex.reason, "\": ", lp.status().message()));
      }
      local = Sel(lp->ToString(), ex.local->protocol, ex.local->port_from, ex.local->port_to);
    }
    // A block rule sorts before the protecting policies, so it could cut the agent off too.
    if (ex.action == v1::BYPASS_ACTION_BLOCK &&
        MatchesTcpPort(ex.remote.protocol, ex.remote.port_from, ex.remote.port_to, controller.port)) {
      for (const Prefix& c : controller.addresses) {
        if (remote->Contains(c)) {
          return absl::FailedPreconditionError(absl::StrCat(
              "bypass \"", ex.reason, "\" would block the controller path ", c.ToString(), " tcp/", controller.port));
        }
      }
    }
    add(ex.reason, Sel(remote->ToString(), ex.remote.protocol, ex.remote.port_from, ex.remote.port_to),
        std::move(local), ex.action);
  }
  if (kBypassPriorityBase + rules.size() >= kProtectPriorityFloor) {
    return absl::InvalidArgumentError(absl::StrCat("too many bypass rules (", rules.size(), "); at most ",
                                                   kProtectPriorityFloor - kBypassPriorityBase));
  }
  return rules;
}

}  // namespace ipfleet::policy::internal
