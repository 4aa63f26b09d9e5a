// The dashboard seen from another host: a client in its own network namespace, across a veth
// pair, reaches a dashboard bound (explicitly) to a non-loopback address. Without credentials, or
// with a wrong token, it is refused; with a login token it gets in. Needs root (label netns).
#include <gtest/gtest.h>
#include <unistd.h>

#include "dashboard_fixture.h"
#include "netns_fixture.h"

namespace ipfleet::testing {
namespace {

using kernel::testing::Sh;

// An HTTPS GET from inside `ns` with Debian's python3; prints the HTTP status.
constexpr char kGet[] = R"PY(
import ssl, sys, urllib.error, urllib.request
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
headers = {"Authorization": "Bearer " + sys.argv[2]} if len(sys.argv) > 2 else {}
try:
    print(urllib.request.urlopen(urllib.request.Request(sys.argv[1], headers=headers), context=ctx, timeout=10).status)
except urllib.error.HTTPError as e:
    print(e.code)
)PY";

class DashboardNetnsTest : public DashboardFixture {
 protected:
  void TearDown() override {
    DashboardFixture::TearDown();
    if (!veth_.empty()) Sh("ip link del " + veth_ + " 2>/dev/null");
  }
  std::string veth_;
};

TEST_F(DashboardNetnsTest, RemoteClientNeedsCredentials) {
  if (!kernel::testing::IsRoot() || !kernel::testing::HaveIp()) GTEST_SKIP() << "needs root and iproute2";
  kernel::testing::ScopedNetns ns;
  ASSERT_TRUE(ns.ok());
  veth_ = "ipfd" + std::to_string(::getpid() % 100000) + "a";
  std::string peer = "ipfd" + std::to_string(::getpid() % 100000) + "b";
  int st = 0;
  Sh("ip link add " + veth_ + " type veth peer name " + peer + " netns " + ns.name(), &st);
  ASSERT_EQ(st, 0);
  Sh("ip addr add 203.0.113.1/30 dev " + veth_ + " && ip link set " + veth_ + " up", &st);
  ASSERT_EQ(st, 0);
  ns.Ip("addr add 203.0.113.2/30 dev " + peer, &st);
  ASSERT_EQ(st, 0);
  ns.Ip("link set " + peer + " up", &st);
  ASSERT_EQ(st, 0);

  StartController([](controller::ServeOptions& o) { o.dashboard = "203.0.113.1:0"; });
  std::string url = "https://203.0.113.1:" + std::to_string(controller_->dashboard_port()) + "/api/status";
  auto get = [&](const std::string& token) {
    std::string out = Sh("ip netns exec " + ns.name() + " /usr/bin/python3 -c '" + kGet + "' " + url + " " + token);
    return out.substr(0, out.find_last_not_of("\n") + 1);
  };
  EXPECT_EQ(get(""), "401") << "anonymous access is for loopback clients only";
  EXPECT_EQ(get("ipfd1.forged.token"), "401");
  EXPECT_EQ(get(NewDashboardToken()), "200");
}

}  // namespace
}  // namespace ipfleet::testing
