// A per-test scratch directory under /tmp. Removed afterwards unless the test failed or
// IPFLEET_INTEROP_KEEP=1, so charon logs and captures of a failure stay for the report.
#pragma once

#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>

namespace ipfleet::interop {

class WorkDir {
 public:
  explicit WorkDir(const std::string& tag) {
    std::string tmpl = "/tmp/ipfleet-interop-" + tag + "-XXXXXX";
    if (char* d = mkdtemp(tmpl.data())) path_ = d;
  }
  ~WorkDir() {
    const char* keep = std::getenv("IPFLEET_INTEROP_KEEP");
    if (!path_.empty() && !keep_ && !(keep && std::string(keep) == "1")) {
      std::error_code ec;
      std::filesystem::remove_all(path_, ec);
    }
  }
  WorkDir(const WorkDir&) = delete;
  WorkDir& operator=(const WorkDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  bool ok() const { return !path_.empty(); }
  void Keep() { keep_ = true; }

 private:
  std::filesystem::path path_;
  bool keep_ = false;
};

}  // namespace ipfleet::interop
