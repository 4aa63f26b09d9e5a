// How the `ipfleet` CLI reaches the controller and turns failures into exit codes and advice.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>

#include "ipfleet/v1/admin_service.grpc.pb.h"

namespace ipfleet::cli {

// Exit codes (documented in docs/controller.md and `ipfleet --help`).
enum Exit : int {
  kOk = 0,
  kError = 1,          // internal or unexpected error
  kUsage = 2,          // bad command line or invalid argument
  kUnreachable = 3,    // controller not reachable / timed out
  kNotFound = 4,       // no such host, certificate, rollout, command
  kConflict = 5,       // already exists, already used, wrong state
  kDenied = 6,         // permission denied / not authenticated
  kUnsupported = 7,    // the controller does not implement this call
  kFailed = 8,         // the operation ran and failed (command failed, rollout halted)
};

struct GlobalOptions {
  std::string controller;  // unix:PATH | HOST:PORT; empty -> IPFLEET_CONTROLLER -> DATA_DIR/admin.sock
  std::string data_dir = "/var/lib/ipfleet";
  std::string output = "table";  // table | json
  std::string tls_ca;    // HOST:PORT only: CA certificate (default DATA_DIR/ca/ca.crt)
  std::string tls_cert;  // admin client certificate
  std::string tls_key;
  int timeout_seconds = 15;
  bool json() const { return output == "json"; }
};

class Client {
 public:
  explicit Client(const GlobalOptions& g);
  // The address actually used (for messages).
  const std::string& target() const { return target_; }
  v1::AdminService::Stub& stub() { return *stub_; }
  // A context with the configured deadline plus `extra_seconds`.
  std::unique_ptr<grpc::ClientContext> Context(int extra_seconds = 0) const;
  // Prints a helpful message for a failed call to stderr and returns the exit code.
  int Fail(const std::string& what, const grpc::Status& st) const;
  // Set when the channel could not even be configured (e.g. unreadable --tls-key).
  const std::string& setup_error() const { return setup_error_; }

 private:
  GlobalOptions g_;
  std::string target_;
  std::string setup_error_;
  std::unique_ptr<v1::AdminService::Stub> stub_;
};

int ExitCodeFor(grpc::StatusCode code);

}  // namespace ipfleet::cli
