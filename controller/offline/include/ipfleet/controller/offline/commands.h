// Subcommands of ipfleet-controller that work while no controller runs (like nebula-cert / pki):
//   init, ca issue, ca revoke, ca crl, migrate-inventory.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

namespace ipfleet::controller {

// What main() runs after parsing: the selected subcommand's body, returning the exit code.
// Register functions install it from their subcommand's callback, so parsing stays side-effect
// free and every subcommand lives in its own file.
using Action = std::function<int()>;

// `init --data-dir DIR [--ca-key ecdsa-p256|rsa-3072] [--name NAME] [--address IP_OR_DNS ...]`
void RegisterInitCommand(CLI::App& app, Action* action);

// `ca issue|revoke|crl ...`
void RegisterCaCommands(CLI::App& app, Action* action);

// `migrate-inventory --data-dir DIR [--from SPEC] --to SPEC`
void RegisterMigrateInventoryCommand(CLI::App& app, Action* action);

}  // namespace ipfleet::controller
