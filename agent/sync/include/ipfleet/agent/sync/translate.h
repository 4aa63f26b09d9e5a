// The only place where bundle wire types become the agent's config structs.
#pragma once

#include "ipfleet/agent/sync/config.h"
#include "ipfleet/common/status.h"

namespace ipfleet::v1 {
class PolicyBundle;
}

namespace ipfleet::agent {

// Validates and converts; errors name the tunnel or rule and the field.
absl::StatusOr<DesiredState> TranslateBundle(const v1::PolicyBundle& bundle);

}  // namespace ipfleet::agent
