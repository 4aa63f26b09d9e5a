#include "harness/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include <absl/strings/str_cat.h>
#include <absl/strings/str_join.h>

extern char** environ;

namespace ipfleet::interop {
namespace {

using Clock = std::chrono::steady_clock;

// Builds envp: the current environment with `extra` (NAME=value) overriding same-named entries.
std::vector<std::string> MergeEnv(const std::vector<std::string>& extra) {
  std::vector<std::string> out;
  for (char** e = environ; e && *e; ++e) {
    std::string entry(*e);
    std::string name = entry.substr(0, entry.find('='));
    bool overridden = false;
    for (const auto& x : extra) {
      if (x.substr(0, x.find('=')) == name) overridden = true;
    }
    if (!overridden) out.push_back(std::move(entry));
  }
  out.insert(out.end(), extra.begin(), extra.end());
  return out;
}

std::vector<char*> CStrings(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// Owns a file descriptor.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

absl::StatusOr<pid_t> SpawnWith(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                                posix_spawn_file_actions_t* actions) {
  if (argv.empty()) return absl::InvalidArgumentError("spawn: empty argv");
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // Own process group so a timeout can kill the whole tree (ip netns exec → unshare → sh → charon).
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  sigset_t dfl;
  sigemptyset(&dfl);
  sigaddset(&dfl, SIGPIPE);
  sigaddset(&dfl, SIGINT);
  sigaddset(&dfl, SIGTERM);
  posix_spawnattr_setsigdefault(&attr, &dfl);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<std::string> args = argv;
  std::vector<std::string> envs = MergeEnv(env);
  auto cargs = CStrings(args);
  auto cenv = CStrings(envs);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, cargs[0], actions, &attr, cargs.data(), cenv.data());
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return absl::InternalError(absl::StrCat("posix_spawnp(", argv[0], "): ", std::strerror(rc)));
  return pid;
}

}  // namespace

std::string JoinArgv(const std::vector<std::string>& argv) { return absl::StrJoin(argv, " "); }

absl::StatusOr<CommandResult> Run(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                                  const std::vector<std::string>& env) {
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) return absl::InternalError(absl::StrCat("pipe2: ", std::strerror(errno)));
  Fd out_r{out_pipe[0]}, out_w{out_pipe[1]};
  if (pipe2(err_pipe, O_CLOEXEC) != 0) return absl::InternalError(absl::StrCat("pipe2: ", std::strerror(errno)));
  Fd err_r{err_pipe[0]}, err_w{err_pipe[1]};

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_w.fd, 1);
  posix_spawn_file_actions_adddup2(&actions, err_w.fd, 2);
  auto pid = SpawnWith(argv, env, &actions);
  posix_spawn_file_actions_destroy(&actions);
  if (!pid.ok()) return pid.status();
  close(out_w.fd);
  out_w.fd = -1;
  close(err_w.fd);
  err_w.fd = -1;

  CommandResult result;
  const auto deadline = Clock::now() + timeout;
  bool out_open = true, err_open = true, timed_out = false;
  char buf[8192];
  while (out_open || err_open) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    pollfd fds[2] = {{out_open ? out_r.fd : -1, POLLIN, 0}, {err_open ? err_r.fd : -1, POLLIN, 0}};
    int n = poll(fds, 2, static_cast<int>(left));
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t r = read(fds[i].fd, buf, sizeof buf);
      if (r > 0) {
        (i == 0 ? result.out : result.err).append(buf, static_cast<size_t>(r));
      } else if (r == 0 || errno != EINTR) {
        (i == 0 ? out_open : err_open) = false;
      }
    }
  }
  int status = 0;
  if (!timed_out) {
    // Output closed; the child exits right after. Still bounded: poll waitpid until the deadline.
    timed_out = !WaitFor([&] { return waitpid(*pid, &status, WNOHANG) == *pid; },
                         std::max(std::chrono::milliseconds(100),
                                  std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now())),
                         std::chrono::milliseconds(1));
  }
  if (timed_out) {
    kill(-*pid, SIGKILL);
    waitpid(*pid, &status, 0);
    return absl::DeadlineExceededError(absl::StrCat("command timed out after ", timeout.count(),
                                                    " ms: ", JoinArgv(argv), " stderr=", result.err));
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

absl::StatusOr<CommandResult> RunOk(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                                    const std::vector<std::string>& env) {
  IPFLEET_ASSIGN_OR_RETURN(CommandResult r, Run(argv, timeout, env));
  if (r.exit_code != 0) {
    return absl::InternalError(absl::StrCat("command failed (exit ", r.exit_code, "): ", JoinArgv(argv),
                                            " stderr=", r.err.substr(0, 2000), " stdout=", r.out.substr(0, 2000)));
  }
  return r;
}

absl::StatusOr<Process> Process::Spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                                       const std::string& log_path) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  auto pid = SpawnWith(argv, env, &actions);
  posix_spawn_file_actions_destroy(&actions);
  if (!pid.ok()) return pid.status();
  Process p;
  p.pid_ = *pid;
  return p;
}

Process::Process(Process&& other) noexcept : pid_(other.pid_), wait_status_(other.wait_status_) {
  other.pid_ = -1;
}

Process& Process::operator=(Process&& other) noexcept {
  if (this != &other) {
    Stop();
    pid_ = other.pid_;
    wait_status_ = other.wait_status_;
    other.pid_ = -1;
  }
  return *this;
}

Process::~Process() { Stop(); }

bool Process::Running() {
  if (pid_ < 0 || wait_status_ != -1) return false;
  int status = 0;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    wait_status_ = status;
    // Whatever the leader left behind in its group goes too.
    kill(-pid_, SIGKILL);
    return false;
  }
  return r == 0;
}

absl::Status Process::Signal(int sig) {
  if (!Running()) return absl::FailedPreconditionError("process not running");
  if (kill(pid_, sig) != 0) return absl::InternalError(absl::StrCat("kill: ", std::strerror(errno)));
  return absl::OkStatus();
}

int Process::Stop(int sig, std::chrono::milliseconds grace) {
  if (pid_ < 0) return -1;
  if (Running()) {
    kill(pid_, sig);
    if (!WaitFor([&] { return !Running(); }, grace)) {
      kill(-pid_, SIGKILL);
      int status = 0;
      waitpid(pid_, &status, 0);
      wait_status_ = status;
    }
  }
  kill(-pid_, SIGKILL);  // stragglers in the group; harmless when none
  pid_ = -1;
  return wait_status_;
}

bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds timeout,
             std::chrono::milliseconds step) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    if (cond()) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(step);
  }
}

}  // namespace ipfleet::interop
