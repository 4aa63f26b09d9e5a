// Test helpers: throwaway network namespaces (created with `ip netns add`, always removed) and
// shell commands whose output serves as the independent judge.
#pragma once

#include <string>
#include <vector>

namespace ipfleet::kernel::testing {

// Runs `cmd` with /bin/sh, returns stdout+stderr; *status gets the exit status.
std::string Sh(const std::string& cmd, int* status = nullptr);
bool IsRoot();
bool HaveIp();

// A network namespace that exists for the lifetime of the object.
class ScopedNetns {
 public:
  ScopedNetns();  // unique name: ipfleet-kt-<pid>-<n>
  ~ScopedNetns();
  ScopedNetns(const ScopedNetns&) = delete;
  ScopedNetns& operator=(const ScopedNetns&) = delete;
  const std::string& name() const { return name_; }
  std::string path() const { return "/run/netns/" + name_; }
  bool ok() const { return ok_; }
  // `ip -n NAME ARGS`
  std::string Ip(const std::string& args, int* status = nullptr) const;

 private:
  std::string name_;
  bool ok_ = false;
};

}  // namespace ipfleet::kernel::testing
