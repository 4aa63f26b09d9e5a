// Subcommand groups of the `ipfleet` CLI. Each Add* registers its subcommands; their callbacks
// store the process exit code in `state.exit_code`.
#pragma once

#include <CLI/CLI.hpp>

#include "client.h"

namespace ipfleet::cli {

struct State {
  GlobalOptions global;
  int exit_code = kOk;
};

void AddHostCommands(CLI::App& app, State& state);    // host add|list|show|remove|token
void AddCertCommands(CLI::App& app, State& state);    // cert list|issue|revoke
void AddStatusCommands(CLI::App& app, State& state);  // status, sas
void AddFleetCommands(CLI::App& app, State& state);   // apply, rollout, flush-sa, rekey, command, tunnels, peers
void AddDashboardCommands(CLI::App& app, State& state);  // dashboard token

}  // namespace ipfleet::cli
