// The real ipfleet-controller binary as a child process, for tests that kill and restart it.
// Start() returns only once the admin API answers (or with an error carrying the controller's log),
// and stopping never waits forever: a controller that ignores the signal is killed after a deadline.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "harness/process.h"
#include "ipfleet/v1/admin_service.grpc.pb.h"

namespace ipfleet::testing {

struct ControllerProcessOptions {
  std::filesystem::path binary;    // path of ipfleet-controller
  std::filesystem::path data_dir;  // an initialised controller directory
  std::string listen = "127.0.0.1:0";
  std::string notify_socket;       // NOTIFY_SOCKET for the child; empty leaves it unset
  std::vector<std::string> extra_args;  // appended to `serve` (e.g. --inventory, --replica-id)
};

class ControllerProcess {
 public:
  explicit ControllerProcess(ControllerProcessOptions options) : options_(std::move(options)) {}

  // Starts the controller (stdout and stderr appended to <data_dir>/controller.log) and waits until
  // its admin socket answers. Fails if the child exits first or `timeout` passes.
  absl::Status Start(std::chrono::milliseconds timeout = std::chrono::seconds(30));

  // Sends `sig` and reaps the child; after `grace` it is SIGKILLed. Returns the wait status.
  int Stop(int sig, std::chrono::milliseconds grace = std::chrono::seconds(20)) { return process_.Stop(sig, grace); }

  v1::AdminService::Stub& admin() { return *admin_; }
  pid_t pid() const { return process_.pid(); }
  std::filesystem::path log_path() const { return options_.data_dir / "controller.log"; }
  std::string Log() const;

 private:
  ControllerProcessOptions options_;
  interop::Process process_;  // stopped (SIGTERM, then SIGKILL) when destroyed
  std::unique_ptr<v1::AdminService::Stub> admin_;
};

}  // namespace ipfleet::testing
