#include "ipfleet/controller/serve_command.h"

#include "ipfleet/controller/daemon/serve.h"
#ifdef IPFLEET_HAVE_FLEET_MODULE
#include "ipfleet/rollout/module.h"
#endif

namespace ipfleet::controller {

void RegisterServeCommand(CLI::App& app, Action* action) {
  FleetModuleFactory factory;
#ifdef IPFLEET_HAVE_FLEET_MODULE
  factory = [](ControllerContext& ctx) { return rollout::MakeFleetModule(ctx); };
#endif
  AddServeCommand(app, action, std::move(factory));
}

}  // namespace ipfleet::controller
