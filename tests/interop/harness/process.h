// Child processes for the interop harness: short commands run to completion under a deadline, and
// long-running daemons (charon, tshark) owned by an RAII handle that always stops them.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "ipfleet/common/status.h"

namespace ipfleet::interop {

struct CommandResult {
  int exit_code = -1;  // -1 when killed by a signal
  std::string out;
  std::string err;
};

// Runs argv (PATH lookup) with `env` added to the environment, collects stdout/stderr and waits at most
// `timeout`; on timeout the child's whole process group is killed and an error returned.
absl::StatusOr<CommandResult> Run(const std::vector<std::string>& argv,
                                  std::chrono::milliseconds timeout = std::chrono::seconds(10),
                                  const std::vector<std::string>& env = {});

// Like Run but an exit code other than 0 is an error naming the command and its stderr.
absl::StatusOr<CommandResult> RunOk(const std::vector<std::string>& argv,
                                    std::chrono::milliseconds timeout = std::chrono::seconds(10),
                                    const std::vector<std::string>& env = {});

// A background process in its own process group, stdout+stderr appended to a log file.
// The destructor stops it (SIGTERM, bounded wait, then SIGKILL of the group).
class Process {
 public:
  static absl::StatusOr<Process> Spawn(const std::vector<std::string>& argv,
                                       const std::vector<std::string>& env,
                                       const std::string& log_path);
  Process() = default;
  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process();

  pid_t pid() const { return pid_; }
  // True while the child has not exited (reaps it when it has).
  bool Running();
  // Sends `sig` to the child only (not its group).
  absl::Status Signal(int sig);
  // Sends `sig`, waits up to `grace` for exit, then SIGKILLs the group. Returns the wait status
  // (or -1 when there was no child).
  int Stop(int sig = 15, std::chrono::milliseconds grace = std::chrono::seconds(3));
  // Raw wait status once exited, -1 before.
  int wait_status() const { return wait_status_; }

 private:
  pid_t pid_ = -1;
  int wait_status_ = -1;
};

// Polls `cond` every `step` until it returns true or `timeout` passes; returns the last result.
bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds timeout,
             std::chrono::milliseconds step = std::chrono::milliseconds(10));

// Quotes argv for error messages and logs.
std::string JoinArgv(const std::vector<std::string>& argv);

}  // namespace ipfleet::interop
