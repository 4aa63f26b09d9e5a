// ipfleet-agent: enroll | run | status | sas
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "enroll.h"
#include "ipfleet/common/logging.h"
#include "run.h"
#include "show.h"

int main(int argc, char** argv) {
  using namespace ipfleet::agent::daemon;
  CLI::App app{"ipfleet-agent: the per-host IPsec agent of an ipfleet fleet"};
  app.require_subcommand(1);
  std::string data_dir = "/var/lib/ipfleet-agent";
  std::string log_level;
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error (default: IPFLEET_LOG_LEVEL or info)");

  EnrollOptions eo;
  auto* enroll = app.add_subcommand("enroll", "Pin the CA, create a key here, and get a host certificate with a token");
  enroll->add_option("--controller", eo.controllers,
                     "controller AgentService ADDR:PORT; repeat it for each controller replica (the session fails "
                     "over among them)")
      ->required();
  enroll->add_option("--name", eo.name, "host name the token was issued for")->required();
  enroll->add_option("--token", eo.token, "one-time enrollment token")->required();
  enroll->add_option("--ca-fingerprint", eo.ca_fingerprint, "SHA-256 fingerprint of the fleet CA")->required();
  enroll->add_option("--ca-file", eo.ca_file, "fleet CA PEM obtained out of band (checked against the fingerprint)");
  enroll->add_option("--tls-server-name", eo.tls_server_name, "name to check in the controller certificate");
  enroll->add_option("--data-dir", data_dir, "agent data directory")->capture_default_str();

  RunOptions ro;
  auto* run = app.add_subcommand("run", "Run the agent (session, bundles, IKE, health)");
  run->add_option("--data-dir", data_dir, "agent data directory")->capture_default_str();
  run->add_option("--metrics-port", ro.metrics_port, "loopback port for /metrics (-1: off)")->capture_default_str();
  run->add_option("--metrics-address", ro.metrics_address, "loopback address for /metrics")->capture_default_str();
  run->add_option("--health-interval", ro.health_interval_seconds, "seconds between periodic health reports")->capture_default_str();
  run->add_option("--ike-port", ro.ike_port, "UDP port for IKE")->capture_default_str();
  run->add_flag("--fake-kernel", ro.fake_kernel, "keep SAs in memory instead of the kernel (demo/benchmark)");

  bool json = false;
  auto* status = app.add_subcommand("status", "Show this host's tunnels (from the running agent)");
  status->add_option("--data-dir", data_dir, "agent data directory")->capture_default_str();
  status->add_flag("--json", json, "print the raw health report as JSON");

  bool kernel = false, policies = false;
  auto* sas = app.add_subcommand("sas", "Show SAs like setkey -D (-P: policies, like setkey -DP)");
  sas->add_option("--data-dir", data_dir, "agent data directory")->capture_default_str();
  sas->add_flag("--kernel", kernel, "read the owned SAs from the kernel instead of the agent's report");
  sas->add_flag("-P,--policies", policies, "with --kernel: the owned policies");

  CLI11_PARSE(app, argc, argv);
  ipfleet::logging::Init("ipfleet-agent", log_level);
  if (enroll->parsed()) {
    eo.data_dir = data_dir;
    absl::Status s = Enroll(eo);
    if (!s.ok()) {
      spdlog::error("event=enroll_failed error=\"{}\"", std::string(s.message()));
      return 1;
    }
    return 0;
  }
  if (run->parsed()) {
    ro.data_dir = data_dir;
    return Run(ro);
  }
  if (status->parsed()) return Status(data_dir, json);
  if (sas->parsed()) return Sas(data_dir, kernel || policies, policies);
  return 2;
}
