#include "ipfleet/ca/profiles.h"

#include <string>

namespace ipfleet::ca {

std::string_view ProfileName(Profile p) {
  switch (p) {
    case Profile::kHost: return "host";
    case Profile::kExternal: return "external";
    case Profile::kController: return "controller";
    case Profile::kPolicySigner: return "policy-signer";
  }
  return "unknown";
}

absl::StatusOr<Profile> ParseProfile(std::string_view name) {
  for (Profile p : {Profile::kHost, Profile::kExternal, Profile::kController, Profile::kPolicySigner}) {
    if (ProfileName(p) == name) return p;
  }
  return absl::InvalidArgumentError("unknown certificate profile \"" + std::string(name) +
                                    "\" (host, external, controller, policy-signer)");
}

}  // namespace ipfleet::ca
