// A full mesh of 20 engines all started at once (start_action start, every host initiating every
// tunnel): both ends of each tunnel initiate, and the duplicate IKE_SAs must settle to exactly one
// IKE_SA and one CHILD_SA pair per tunnel, all within 5 s of simulated time, with the kernel
// holding exactly that pair and the tunnel's policies on both hosts.
#include <gtest/gtest.h>

#include "sim_fixture.h"

namespace ipfleet::ike {
namespace {

using testing::Host;
using testing::HostAddr;
using testing::PskTunnel;

TEST(MeshTest, TwentyHostsStartedAtOnceEndWithOnePairPerTunnel) {
  constexpr int kN = 20;
  FakeClock clock;
  SimNetwork net{clock, 3};
  std::vector<std::unique_ptr<Host>> hosts;
  for (int i = 0; i < kN; ++i) hosts.push_back(std::make_unique<Host>(clock, net, HostAddr(i)));
  for (int i = 0; i < kN; ++i) {
    IkeConfig cfg;
    for (int j = 0; j < kN; ++j)
      if (j != i) {
        PeerConfig p = PskTunnel(i, j);
        p.children[0].start_action = StartAction::kStart;
        cfg.peers.push_back(p);
      }
    ASSERT_TRUE(hosts[i]->engine->Load(cfg).ok());
  }
  TimePoint start = clock.Now();
  auto settled = [&] {
    for (auto& h : hosts) {
      auto l = h->engine->ListSas();
      if (l.size() != kN - 1) return false;
      for (const auto& s : l)
        if (s.state != IkeState::kEstablished || s.children.size() != 1 ||
            s.children[0].state != ChildState::kInstalled)
          return false;
    }
    return true;
  };
  ASSERT_TRUE(net.RunUntil(settled, Duration{5000})) << "not settled within 5 s simulated";
  auto took = clock.Now() - start;
  net.RunFor(Duration{5000});  // and it stays that way
  ASSERT_TRUE(settled());
  uint64_t sent = net.sent();
  for (int i = 0; i < kN; ++i) {
    auto li = hosts[i]->engine->ListSas();
    EXPECT_EQ(hosts[i]->xfrm->sa_count(), 2u * (kN - 1));
    EXPECT_EQ(hosts[i]->xfrm->policy_count(), 3u * (kN - 1));
    for (const auto& s : li) {
      // The peer holds the same IKE_SA (SPIs) and the crossed CHILD_SA SPIs.
      int j = -1;
      for (int k = 0; k < kN; ++k)
        if (s.remote.addr == HostAddr(k)) j = k;
      ASSERT_GE(j, 0);
      bool found = false;
      for (const auto& o : hosts[j]->engine->ListSas())
        if (o.spi_i == s.spi_i && o.spi_r == s.spi_r) {
          found = true;
          EXPECT_EQ(o.children[0].spi_in, s.children[0].spi_out);
          EXPECT_EQ(o.children[0].spi_out, s.children[0].spi_in);
          EXPECT_NE(o.initiator, s.initiator);
        }
      EXPECT_TRUE(found) << "host " << i << " tunnel " << s.tunnel << " has an IKE_SA the peer does not";
    }
  }
  std::cout << "mesh_settled_ms=" << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
            << " datagrams=" << sent << "\n";
}

}  // namespace
}  // namespace ipfleet::ike
