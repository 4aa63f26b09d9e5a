// Controller part 2 plugged into the daemon: the FleetModule behind the AdminService's Apply,
// rollout, command and tunnel RPCs, wired to the session registry.
#pragma once

#include <memory>

#include "ipfleet/common/status.h"
#include "ipfleet/controller/api/context.h"
#include "ipfleet/controller/api/fleet_module.h"
#include "ipfleet/rollout/engine.h"

namespace ipfleet::rollout {

struct ModuleOptions {
  EngineOptions engine;
};

// Loads the policy-signing key from ctx.data_dir, derives the controller path from
// ctx.agent_endpoint and registers the session handlers. Use as the daemon's FleetModuleFactory.
absl::StatusOr<std::unique_ptr<controller::FleetModule>> MakeFleetModule(controller::ControllerContext& ctx,
                                                                         ModuleOptions options = {});

}  // namespace ipfleet::rollout
