// What the agent keeps across restarts in DATA/state (0700), every file written atomically:
//   last-good.bundle   the last applied SignedBundle, exactly as received (0600)
//   commands.json      command journal for exactly-once execution (0600)
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "ipfleet/common/status.h"

namespace ipfleet::agent {

class StateStore {
 public:
  explicit StateStore(std::filesystem::path data_dir);

  absl::Status Init();

  absl::Status SaveLastGoodBundle(const std::string& signed_bundle_bytes);
  // nullopt when none was ever applied.
  absl::StatusOr<std::optional<std::string>> LoadLastGoodBundle() const;

  // Command journal. `started` is recorded before a command runs; a crash between start and
  // finish leaves started > executed, and that command is never run again (at most once; the
  // controller delivers until acknowledged, so each command runs exactly once).
  struct Journal {
    uint64_t started = 0;
    uint64_t executed = 0;
    // Serialized CommandResult per recent id, re-sent when the controller repeats a command.
    std::map<uint64_t, std::string> results;
  };
  absl::StatusOr<Journal> LoadJournal() const;
  absl::Status SaveJournal(const Journal& j);

  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
};

}  // namespace ipfleet::agent
