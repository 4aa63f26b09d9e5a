#include "harness/netns.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <string_view>

#include <absl/strings/numbers.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_split.h>

#include "harness/process.h"

namespace ipfleet::interop {
namespace {

constexpr absl::string_view kPrefix("ipfi");

// Namespaces named ipfi<pid>x<n><a|b> whose pid no longer exists were left by a crashed run.
void RemoveStale() {
  auto list = Run({"ip", "netns", "list"}, std::chrono::seconds(5));
  if (!list.ok()) return;
  for (absl::string_view line : absl::StrSplit(list->out, '\n')) {
    absl::string_view name = line.substr(0, line.find(' '));
    if (name.substr(0, kPrefix.size()) != kPrefix) continue;
    absl::string_view rest = name.substr(kPrefix.size());
    int pid = 0;
    if (!absl::SimpleAtoi(rest.substr(0, rest.find('x')), &pid) || pid <= 0) continue;
    if (kill(pid, 0) == 0 || errno != ESRCH) continue;
    (void)Run({"ip", "netns", "del", std::string(name)}, std::chrono::seconds(5));
  }
}

}  // namespace

bool HaveRoot() { return geteuid() == 0; }

void NetnsPair::RemoveLeftovers() { RemoveStale(); }

std::vector<std::string> NetnsPair::Exec(const std::string& ns, std::vector<std::string> argv) {
  std::vector<std::string> out = {"ip", "netns", "exec", ns};
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

absl::StatusOr<std::unique_ptr<NetnsPair>> NetnsPair::Create() {
  static std::atomic<int> counter{0};
  RemoveStale();
  std::unique_ptr<NetnsPair> p(new NetnsPair());
  const std::string base = absl::StrCat(kPrefix, getpid(), "x", counter++);  // <= 15 chars for ifnames
  p->a_ = {base + "a", base + "a", "192.0.2.1", "198.51.100.1"};
  p->b_ = {base + "b", base + "b", "192.0.2.2", "198.51.100.2"};
  const auto t = std::chrono::seconds(5);
  IPFLEET_RETURN_IF_ERROR(RunOk({"ip", "netns", "add", p->a_.ns}, t).status());
  p->created_a_ = true;
  IPFLEET_RETURN_IF_ERROR(RunOk({"ip", "netns", "add", p->b_.ns}, t).status());
  p->created_b_ = true;
  IPFLEET_RETURN_IF_ERROR(RunOk({"ip", "link", "add", p->a_.veth, "netns", p->a_.ns, "type", "veth", "peer", "name",
                                 p->b_.veth, "netns", p->b_.ns},
                                t)
                              .status());
  for (const NetnsSide* s : {&p->a_, &p->b_}) {
    IPFLEET_RETURN_IF_ERROR(RunOk({"ip", "-n", s->ns, "addr", "add", s->addr + "/24", "dev", s->veth}, t).status());
    IPFLEET_RETURN_IF_ERROR(RunOk({"ip", "-n", s->ns, "link", "set", s->veth, "up"}, t).status());
    IPFLEET_RETURN_IF_ERROR(RunOk({"ip", "-n", s->ns, "link", "set", "lo", "up"}, t).status());
    IPFLEET_RETURN_IF_ERROR(RunOk({"ip", "-n", s->ns, "addr", "add", s->subnet + "/32", "dev", "lo"}, t).status());
  }
  return p;
}

NetnsPair::~NetnsPair() {
  // Deleting a namespace also destroys its end of the veth and with it the peer.
  if (created_a_) (void)Run({"ip", "netns", "del", a_.ns}, std::chrono::seconds(5));
  if (created_b_) (void)Run({"ip", "netns", "del", b_.ns}, std::chrono::seconds(5));
}

}  // namespace ipfleet::interop
