#include "controller_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <thread>

#include <grpcpp/grpcpp.h>

namespace ipfleet::testing {
namespace {

using Clock = std::chrono::steady_clock;

// gRPC backs off exponentially (1 s, 1.6 s, 2.6 s, ...) after a failed connect. The first connect
// usually fails because the child has not bound its socket yet, and a restarted controller then
// stays unreachable for many seconds. A test wants the next attempt right away.
std::unique_ptr<v1::AdminService::Stub> FastReconnectAdminStub(const std::filesystem::path& socket) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 50);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 50);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 250);
  return v1::AdminService::NewStub(
      grpc::CreateCustomChannel("unix:" + socket.string(), grpc::InsecureChannelCredentials(), args));
}

}  // namespace

ControllerProcess::ControllerProcess(ControllerProcessOptions options) : options_(std::move(options)) {}

ControllerProcess::~ControllerProcess() {
  if (running()) Stop(SIGKILL);
}

std::string ControllerProcess::Log() const {
  std::ifstream in(log_path(), std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::Status ControllerProcess::Start(std::chrono::milliseconds timeout) {
  if (running()) return absl::FailedPreconditionError("controller already started");
  const std::string log = log_path().string();
  pid_ = ::fork();
  if (pid_ < 0) return absl::InternalError("fork failed");
  if (pid_ == 0) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    if (!options_.notify_socket.empty()) ::setenv("NOTIFY_SOCKET", options_.notify_socket.c_str(), 1);
    ::execl(options_.binary.c_str(), "ipfleet-controller", "serve", "--data-dir", options_.data_dir.c_str(),
            "--listen", options_.listen.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  admin_ = FastReconnectAdminStub(options_.data_dir / "admin.sock");
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return absl::InternalError("controller exited during start-up (wait status " + std::to_string(status) +
                                 "); its log:\n" + Log());
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

int ControllerProcess::Stop(int sig, std::chrono::milliseconds grace, bool* killed_after_grace) {
  if (killed_after_grace) *killed_after_grace = false;
  if (!running()) return -1;
  ::kill(pid_, sig);
  int status = 0;
  const auto deadline = Clock::now() + grace;
  while (::waitpid(pid_, &status, WNOHANG) == 0) {
    if (Clock::now() >= deadline) {
      if (killed_after_grace) *killed_after_grace = true;
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  pid_ = -1;
  return status;
}

}  // namespace ipfleet::testing
