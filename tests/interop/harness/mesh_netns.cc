#include "harness/mesh_netns.h"

#include <unistd.h>

#include <atomic>

#include <absl/strings/str_cat.h>

#include "harness/process.h"

namespace ipfleet::interop {
namespace {
const auto kT = std::chrono::seconds(5);
}  // namespace

absl::StatusOr<std::unique_ptr<NetnsMesh>> NetnsMesh::Create(int hosts) {
  if (hosts < 2 || hosts > 200) return absl::InvalidArgumentError("NetnsMesh: 2..200 hosts");
  static std::atomic<int> counter{0};
  NetnsPair::RemoveLeftovers();  // names follow NetnsPair's pattern, so its cleanup knows them
  std::unique_ptr<NetnsMesh> m(new NetnsMesh());
  const int k = counter++;
  const std::string base = absl::StrCat("ipfi", getpid(), "xm", k);
  m->hub_ = base + "hub";
  IPFLEET_RETURN_IF_ERROR(RunOk({"ip", "netns", "add", m->hub_}, kT).status());
  m->created_.push_back(m->hub_);
  IPFLEET_RETURN_IF_ERROR(RunOk({"ip", "-n", m->hub_, "link", "add", "br0", "type", "bridge"}, kT).status());
  IPFLEET_RETURN_IF_ERROR(RunOk({"ip", "-n", m->hub_, "link", "set", "br0", "up"}, kT).status());
  for (int i = 0; i < hosts; ++i) {
    // Interface names live in their own namespaces (host: "v", hub: "p<i>"), so they stay short.
    NetnsSide s{absl::StrCat(base, "h", i), "v", absl::StrCat("192.0.2.", i + 1),
                absl::StrCat("198.51.100.", i + 1)};
    const std::string port = absl::StrCat("p", i);
    IPFLEET_RETURN_IF_ERROR(RunOk({"ip", "netns", "add", s.ns}, kT).status());
    m->created_.push_back(s.ns);
    IPFLEET_RETURN_IF_ERROR(
        RunOk({"ip", "link", "add", s.veth, "netns", s.ns, "type", "veth", "peer", "name", port, "netns", m->hub_}, kT)
            .status());
    IPFLEET_RETURN_IF_ERROR(RunOk({"ip", "-n", m->hub_, "link", "set", port, "master", "br0", "up"}, kT).status());
    IPFLEET_RETURN_IF_ERROR(RunOk({"ip", "-n", s.ns, "addr", "add", s.addr + "/24", "dev", s.veth}, kT).status());
    IPFLEET_RETURN_IF_ERROR(RunOk({"ip", "-n", s.ns, "link", "set", s.veth, "up"}, kT).status());
    IPFLEET_RETURN_IF_ERROR(RunOk({"ip", "-n", s.ns, "link", "set", "lo", "up"}, kT).status());
    IPFLEET_RETURN_IF_ERROR(RunOk({"ip", "-n", s.ns, "addr", "add", s.subnet + "/32", "dev", "lo"}, kT).status());
    m->hosts_.push_back(std::move(s));
  }
  return m;
}

NetnsMesh::~NetnsMesh() {
  for (const auto& ns : created_) (void)Run({"ip", "netns", "del", ns}, kT);
}

}  // namespace ipfleet::interop
