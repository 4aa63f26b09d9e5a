// `ipfleet`: the operator CLI. Talks only the AdminService contract, over the controller's unix
// socket (default) or TCP with an admin client certificate.
#include <CLI/CLI.hpp>

#include <cstdlib>

#include "commands.h"

namespace {

constexpr const char* kFooter = R"(Controller address: --controller unix:PATH | HOST:PORT, else $IPFLEET_CONTROLLER,
else unix:DATA_DIR/admin.sock (DATA_DIR: --data-dir, default /var/lib/ipfleet).
Over TCP pass --tls-cert/--tls-key (an admin certificate: `ipfleet cert issue --kind admin`).

Exit codes:
  0 ok                     4 not found (host, certificate, rollout, command)
  1 unexpected error       5 conflict (already exists, token used/expired, wrong state)
  2 usage / invalid input  6 permission denied / not authenticated
  3 controller unreachable 7 not supported by this controller
                           8 operation failed (command failed, rollout halted, wait timed out))";

}  // namespace

int main(int argc, char** argv) {
  using namespace ipfleet::cli;
  State state;
  CLI::App app{"ipfleet: run an IPsec fleet from one place (hosts, certificates, rollouts, SA status)", "ipfleet"};
  app.footer(kFooter);
  app.require_subcommand(1);
  app.fallthrough();
  app.add_option("--controller,-c", state.global.controller, "Controller: unix:PATH or HOST:PORT");
  app.add_option("--data-dir", state.global.data_dir, "Controller data directory (for the default socket and CA)")
      ->capture_default_str();
  app.add_option("-o,--output", state.global.output, "Output format")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  app.add_option("--tls-ca", state.global.tls_ca, "CA certificate for TCP (default DATA_DIR/ca/ca.crt)");
  app.add_option("--tls-cert", state.global.tls_cert, "Admin client certificate for TCP");
  app.add_option("--tls-key", state.global.tls_key, "Admin client key for TCP");
  app.add_option("--timeout", state.global.timeout_seconds, "Seconds to wait for the controller")->capture_default_str();

  AddHostCommands(app, state);
  AddCertCommands(app, state);
  AddStatusCommands(app, state);
  AddFleetCommands(app, state);
  AddDashboardCommands(app, state);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kUsage;
  }
  return state.exit_code;
}
