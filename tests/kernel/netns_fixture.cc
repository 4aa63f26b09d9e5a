#include "netns_fixture.h"

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdio>

namespace ipfleet::kernel::testing {

std::string Sh(const std::string& cmd, int* status) {
  std::string out;
  FILE* f = popen((cmd + " 2>&1").c_str(), "r");
  if (f == nullptr) {
    if (status) *status = -1;
    return out;
  }
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), f)) > 0) out.append(buf.data(), n);
  int rc = pclose(f);
  if (status) *status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  return out;
}

bool IsRoot() { return geteuid() == 0; }

bool HaveIp() {
  int st = 0;
  Sh("ip -V", &st);
  return st == 0;
}

namespace {
std::atomic<int> counter{0};
}

ScopedNetns::ScopedNetns() {
  name_ = "ipfleet-kt-" + std::to_string(getpid()) + "-" + std::to_string(counter++);
  int st = 0;
  Sh("ip netns add " + name_, &st);
  ok_ = st == 0;
  if (ok_) Sh("ip -n " + name_ + " link set lo up");
}

ScopedNetns::~ScopedNetns() {
  if (ok_) Sh("ip netns del " + name_);
}

std::string ScopedNetns::Ip(const std::string& args, int* status) const {
  return Sh("ip -n " + name_ + " " + args, status);
}

}  // namespace ipfleet::kernel::testing
