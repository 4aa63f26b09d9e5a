// The `serve` subcommand as ipfleet-controller's main() expects it (see controller/CMakeLists.txt):
// linked in through the `ipfleet_controller_serve` target.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

namespace ipfleet::controller {

using Action = std::function<int()>;

// Registers `serve`; wires in the fleet/rollout module (controller part 2) when it is built.
void RegisterServeCommand(CLI::App& app, Action* action);

}  // namespace ipfleet::controller
