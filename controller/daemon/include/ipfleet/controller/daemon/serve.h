// `ipfleet-controller serve`: the running controller. Opens the inventory (migrating it), loads
// the CA and the controller's TLS identity from the data directory, and serves
//   AgentService  on TCP with TLS (Enroll: server-auth + token; Session: client cert checked),
//   AdminService  on DIR/admin.sock (0600) and optionally on TCP with an admin client cert.
#pragma once

#include <CLI/CLI.hpp>

#include <filesystem>
#include <memory>
#include <string>

#include "ipfleet/common/status.h"
#include "ipfleet/controller/api/context.h"
#include "ipfleet/controller/api/fleet_module.h"

namespace ipfleet::controller {

struct ServeOptions {
  std::filesystem::path data_dir = "/var/lib/ipfleet";
  std::string listen = "127.0.0.1:7443";  // AgentService; port 0 picks a free port (tests)
  std::string admin_listen;               // optional AdminService TCP address
  std::string advertise;                  // HOST:PORT agents dial; default from listen / TLS cert
  bool fsync_every_commit = true;
  // "sqlite" (default), "sqlite:PATH" or "postgresql://..."; empty: DATA_DIR/inventory.url or sqlite.
  std::string inventory;
  std::string replica_id;  // empty: HOSTNAME:AGENT-PORT
  // Web dashboard (HTTPS) on "ADDRESS:PORT"; empty: off. See controller/dashboard.
  std::string dashboard;
  bool dashboard_anonymous_loopback = true;
  int dashboard_max_connection_seconds = 30;
  // Plain-HTTP Prometheus endpoint on a loopback "ADDRESS:PORT"; empty: off (the dashboard
  // serves /metrics too, behind its authentication).
  std::string metrics_listen;
  Clock clock = SystemNow;
  FleetModuleFactory fleet_factory;  // controller part 2; empty: those RPCs are UNIMPLEMENTED
};

class Controller {
 public:
  // Starts everything; errors say what is missing ("run `ipfleet-controller init` first").
  static absl::StatusOr<std::unique_ptr<Controller>> Start(const ServeOptions& options);
  ~Controller();

  // Closes sessions, stops both servers (in-flight calls get up to `grace`), stops the module.
  void Shutdown(std::chrono::milliseconds grace = std::chrono::milliseconds(2000));

  int agent_port() const;
  int admin_tcp_port() const;  // 0 when not listening on TCP
  int dashboard_port() const;  // 0 when no dashboard
  int metrics_port() const;    // 0 when no plain /metrics endpoint
  std::filesystem::path admin_socket() const;
  ControllerContext& context();
  // Regenerates the CRL (called periodically by RunServe).
  absl::Status RefreshCrl();

  struct Impl;

 private:
  explicit Controller(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Runs the controller until SIGTERM/SIGINT; notifies systemd (READY=1, STOPPING=1) when
// NOTIFY_SOCKET is set. Returns the process exit code.
int RunServe(const ServeOptions& options);

// Registers the `serve` subcommand; when chosen, parsing stores the body in *action (run by main
// after parsing; returns the exit code).
void AddServeCommand(CLI::App& app, std::function<int()>* action, FleetModuleFactory fleet_factory = {});

}  // namespace ipfleet::controller
