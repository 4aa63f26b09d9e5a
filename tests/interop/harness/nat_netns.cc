#include "harness/nat_netns.h"

#include <unistd.h>

#include <atomic>

#include <absl/strings/str_cat.h>

#include "harness/nft.h"
#include "harness/process.h"

namespace ipfleet::interop {
namespace {
const auto kT = std::chrono::seconds(5);

absl::Status Ip(const std::string& ns, std::vector<std::string> args) {
  args.insert(args.begin(), {"ip", "-n", ns});
  return RunOk(args, kT).status();
}
}  // namespace

absl::StatusOr<std::unique_ptr<NatTriple>> NatTriple::Create() {
  static std::atomic<int> counter{0};
  NetnsPair::RemoveLeftovers();  // the names below follow NetnsPair's pattern
  std::unique_ptr<NatTriple> t(new NatTriple());
  const std::string base = absl::StrCat("ipfi", getpid(), "xn", counter++);  // + 1 char <= 15 for ifnames
  t->inside_ = {base + "i", base + "i", "192.0.2.1", "198.51.100.1"};
  t->outside_ = {base + "o", base + "o", "203.0.113.2", "198.51.100.2"};
  t->router_ = base + "r";
  const std::string r_in = base + "p", r_out = base + "q";  // the router's two veth ends
  const std::string* names[3] = {&t->inside_.ns, &t->router_, &t->outside_.ns};
  for (int i = 0; i < 3; ++i) {
    IPFLEET_RETURN_IF_ERROR(RunOk({"ip", "netns", "add", *names[i]}, kT).status());
    t->created_[i] = true;
  }
  IPFLEET_RETURN_IF_ERROR(RunOk({"ip", "link", "add", t->inside_.veth, "netns", t->inside_.ns, "type", "veth", "peer",
                                 "name", r_in, "netns", t->router_},
                                kT)
                              .status());
  IPFLEET_RETURN_IF_ERROR(RunOk({"ip", "link", "add", t->outside_.veth, "netns", t->outside_.ns, "type", "veth",
                                 "peer", "name", r_out, "netns", t->router_},
                                kT)
                              .status());
  for (const NetnsSide* s : {&t->inside_, &t->outside_}) {
    IPFLEET_RETURN_IF_ERROR(Ip(s->ns, {"addr", "add", s->addr + "/24", "dev", s->veth}));
    IPFLEET_RETURN_IF_ERROR(Ip(s->ns, {"link", "set", s->veth, "up"}));
    IPFLEET_RETURN_IF_ERROR(Ip(s->ns, {"link", "set", "lo", "up"}));
    IPFLEET_RETURN_IF_ERROR(Ip(s->ns, {"addr", "add", s->subnet + "/32", "dev", "lo"}));
  }
  IPFLEET_RETURN_IF_ERROR(Ip(t->inside_.ns, {"route", "add", "default", "via", "192.0.2.254"}));
  IPFLEET_RETURN_IF_ERROR(Ip(t->router_, {"addr", "add", "192.0.2.254/24", "dev", r_in}));
  IPFLEET_RETURN_IF_ERROR(Ip(t->router_, {"addr", "add", t->public_addr() + "/24", "dev", r_out}));
  for (const std::string& dev : {r_in, r_out, std::string("lo")})
    IPFLEET_RETURN_IF_ERROR(Ip(t->router_, {"link", "set", dev, "up"}));
  IPFLEET_RETURN_IF_ERROR(
      RunOk(NetnsPair::Exec(t->router_, {"sysctl", "-q", "-w", "net.ipv4.ip_forward=1"}), kT).status());
  // Source NAT of everything leaving on the public side, counted so a test can prove it was used.
  const std::vector<std::vector<std::string>> nft = {
      {"add", "table", "ip", "ipfleet_nat"},
      {"add", "counter", "ip", "ipfleet_nat", "masq"},
      {"add", "chain", "ip", "ipfleet_nat", "post", "{ type nat hook postrouting priority srcnat ; }"},
      {"add", "rule", "ip", "ipfleet_nat", "post", "oifname", r_out, "counter", "name", "masq", "masquerade"}};
  for (auto args : nft) {
    args.insert(args.begin(), "nft");
    IPFLEET_RETURN_IF_ERROR(RunOk(NetnsPair::Exec(t->router_, args), kT).status());
  }
  return t;
}

absl::StatusOr<uint64_t> NatTriple::MasqueradedPackets() const {
  return NftCounter(router_, "ip", "ipfleet_nat", "masq");
}

NatTriple::~NatTriple() {
  const std::string* names[3] = {&inside_.ns, &router_, &outside_.ns};
  for (int i = 0; i < 3; ++i)
    if (created_[i]) (void)Run({"ip", "netns", "del", *names[i]}, kT);
}

}  // namespace ipfleet::interop
