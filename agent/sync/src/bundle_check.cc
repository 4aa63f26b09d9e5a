#include "ipfleet/agent/sync/bundle_check.h"

#include <absl/strings/str_cat.h>

#include "ipfleet/agent/sync/translate.h"
#include "ipfleet/v1/types.pb.h"

namespace ipfleet::agent {
namespace {

constexpr uint8_t kTcp = 6;

bool SelectorMatches(const Selector& s, const IpAddress& ip, uint16_t port) {
  bool addr = s.prefix.address.empty() ? true : s.prefix.Contains(ip);
  bool proto = s.protocol == 0 || s.protocol == kTcp;
  bool ports = s.protocol == 0 || (port >= s.port_from && port <= s.port_to);
  return addr && proto && ports;
}

}  // namespace

absl::Status CheckControllerPath(const DesiredState& state, const std::vector<ControllerEndpoint>& endpoints) {
  for (const auto& ep : endpoints) {
    const std::string where = absl::StrCat(ep.address.ToString(), ":", ep.port);
    bool allowed = false;
    for (const auto& b : state.bypass) {
      if (!SelectorMatches(b.remote, ep.address, ep.port)) continue;
      if (!b.allow) {
        return absl::FailedPreconditionError(
            absl::StrCat(kRefusedControllerPath, ": bypass rule '", b.reason, "' blocks the controller at ", where));
      }
      allowed = true;
    }
    if (allowed) continue;
    for (const auto& t : state.tunnels) {
      for (const auto& sel : t.remote_subnets) {
        if (SelectorMatches(sel, ep.address, ep.port)) {
          return absl::FailedPreconditionError(absl::StrCat(kRefusedControllerPath, ": tunnel ", t.name,
                                                            " would capture the controller at ", where,
                                                            " (selector ", sel.ToString(), ") with no bypass"));
        }
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<DesiredState> CheckBundle(const v1::SignedBundle& sb, const BundleVerifyFn& verify,
                                         const CheckContext& ctx) {
  if (absl::Status s = verify(sb); !s.ok()) {
    return absl::PermissionDeniedError(absl::StrCat(kRefusedSignature, ": ", s.message()));
  }
  v1::PolicyBundle bundle;
  if (!bundle.ParseFromString(sb.bundle())) {
    return absl::InvalidArgumentError(absl::StrCat(kRefusedInvalid, ": PolicyBundle does not parse"));
  }
  if (bundle.host() != ctx.host) {
    return absl::PermissionDeniedError(
        absl::StrCat(kRefusedHost, ": bundle is for '", bundle.host(), "', this host is '", ctx.host, "'"));
  }
  bool too_old = ctx.allow_same_version ? bundle.version() < ctx.last_applied_version
                                        : bundle.version() <= ctx.last_applied_version;
  if (too_old) {
    return absl::FailedPreconditionError(absl::StrCat(kRefusedVersion, ": version ", bundle.version(),
                                                      " is not higher than applied ", ctx.last_applied_version));
  }
  auto state = TranslateBundle(bundle);
  if (!state.ok()) return absl::InvalidArgumentError(absl::StrCat(kRefusedInvalid, ": ", state.status().message()));
  std::vector<ControllerEndpoint> endpoints = ctx.controller_endpoints;
  if (!state->controller_address.empty()) {
    std::string h;
    uint16_t port = 0;
    if (SplitHostPort(state->controller_address, &h, &port).ok()) {
      if (auto ip = ParseIp(h); ip.ok()) endpoints.push_back({*ip, port});
    }
  }
  IPFLEET_RETURN_IF_ERROR(CheckControllerPath(*state, endpoints));
  return state;
}

}  // namespace ipfleet::agent
