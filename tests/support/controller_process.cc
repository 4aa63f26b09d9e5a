#include "controller_process.h"

#include <grpcpp/grpcpp.h>

#include <fstream>
#include <sstream>

namespace ipfleet::testing {
namespace {

// gRPC backs off exponentially (1 s, 1.6 s, 2.6 s, ...) after a failed connect, and channels to the
// same target share that state. The first connect usually fails because the child has not bound
// its socket yet, and after a restart the backoff of the killed controller's connection carries
// over: CI once saw a restarted controller stay unreachable for more than 20 s. A test wants the
// next attempt right away.
std::unique_ptr<v1::AdminService::Stub> FastReconnectAdminStub(const std::filesystem::path& socket) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 50);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 50);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 250);
  return v1::AdminService::NewStub(
      grpc::CreateCustomChannel("unix:" + socket.string(), grpc::InsecureChannelCredentials(), args));
}

}  // namespace

std::string ControllerProcess::Log() const {
  std::ifstream in(log_path(), std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::Status ControllerProcess::Start(std::chrono::milliseconds timeout) {
  if (process_.Running()) return absl::FailedPreconditionError("controller already started");
  std::vector<std::string> env;
  if (!options_.notify_socket.empty()) env.push_back("NOTIFY_SOCKET=" + options_.notify_socket);
  std::vector<std::string> argv = {options_.binary.string(), "serve", "--data-dir", options_.data_dir.string(),
                                   "--listen", options_.listen};
  argv.insert(argv.end(), options_.extra_args.begin(), options_.extra_args.end());
  absl::StatusOr<interop::Process> p = interop::Process::Spawn(argv, env, log_path().string());
  if (!p.ok()) return p.status();
  process_ = std::move(*p);
  admin_ = FastReconnectAdminStub(options_.data_dir / "admin.sock");
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (!process_.Running()) {
      return absl::InternalError("controller exited during start-up (wait status " +
                                 std::to_string(process_.wait_status()) + "); its log:\n" + Log());
    }
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
    ctx.set_wait_for_ready(true);  // ride out the connect attempts instead of failing fast
    v1::FleetStatusResponse r;
    if (admin_->FleetStatus(&ctx, v1::FleetStatusRequest(), &r).ok()) return absl::OkStatus();
  }
  return absl::DeadlineExceededError("controller's admin API did not answer within " +
                                     std::to_string(timeout.count()) + " ms; its log:\n" + Log());
}

}  // namespace ipfleet::testing
