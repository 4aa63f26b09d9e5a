// ipfleet-controller: the controller daemon and its offline subcommands. Each subcommand lives in
// its own library and registers itself here; main only parses and runs the chosen one.
#include <CLI/CLI.hpp>

#include <cstdlib>

#include "ipfleet/common/logging.h"
#include "ipfleet/controller/offline/commands.h"
#ifdef IPFLEET_HAVE_SERVE
#include "ipfleet/controller/serve_command.h"
#endif

int main(int argc, char** argv) {
  CLI::App app{"ipfleet-controller: the ipfleet controller (fleet CA, inventory, policy rollout)"};
  app.require_subcommand(1);
  ipfleet::controller::Action action;
  ipfleet::controller::RegisterInitCommand(app, &action);
  ipfleet::controller::RegisterCaCommands(app, &action);
  ipfleet::controller::RegisterMigrateInventoryCommand(app, &action);
#ifdef IPFLEET_HAVE_SERVE
  ipfleet::controller::RegisterServeCommand(app, &action);
#endif
  CLI11_PARSE(app, argc, argv);
  // Offline commands talk to a person: warnings only unless IPFLEET_LOG_LEVEL says otherwise.
  ipfleet::logging::Init("ipfleet-controller", std::getenv("IPFLEET_LOG_LEVEL") ? "" : "warn");
  return action ? action() : 2;
}
