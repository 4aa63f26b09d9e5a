// INITIAL_CONTACT (RFC 7296 2.4): sent only when we hold no other IKE_SA with the peer, and on
// receipt only older SAs with the same authenticated identities are dropped. Before the fix every
// new IKE_SA carried it and the responder tore down the SAs that had completed a moment earlier.
#include <gtest/gtest.h>

#include <set>

#include "sim_fixture.h"

namespace ipfleet::ike {
namespace {

using testing::Host;
using testing::HostAddr;
using testing::PskTunnel;

class InitialContactTest : public ::testing::Test {
 protected:
  void Load(Duration dpd_a = Duration{0}) {
    IkeConfig ca, cb;
    ca.peers = {PskTunnel(0, 1)};
    ca.peers[0].dpd_interval = dpd_a;
    cb.peers = {PskTunnel(1, 0)};
    ca.retransmit_timeout = cb.retransmit_timeout = Duration{500};
    ASSERT_TRUE(a.engine->Load(ca).ok());
    ASSERT_TRUE(b.engine->Load(cb).ok());
    cfg_b = cb;
  }
  FakeClock clock;
  SimNetwork net{clock, 11};
  Host a{clock, net, HostAddr(0)};
  Host b{clock, net, HostAddr(1)};
  IkeConfig cfg_b;
};

TEST_F(InitialContactTest, TwentyConcurrentIkeSasToOnePeerAllStayUp) {
  Load();
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(a.engine->Initiate("t0-1").ok());
  ASSERT_TRUE(net.RunUntil([&] { return a.Established() == 20 && b.Established() == 20; }, Duration{20000}))
      << "a=" << a.Established() << " b=" << b.Established();
  net.RunFor(Duration{5000});  // nothing tears them down later either
  EXPECT_EQ(a.Established(), 20u);
  EXPECT_EQ(b.Established(), 20u);
  EXPECT_EQ(a.Installed(), 20u);
  EXPECT_EQ(b.Installed(), 20u);
  EXPECT_EQ(a.xfrm->sa_count(), 40u);
  EXPECT_EQ(b.xfrm->sa_count(), 40u);
  EXPECT_EQ(b.Count(EventType::kIkeDeleted) + a.Count(EventType::kIkeDeleted), 0);
}

TEST_F(InitialContactTest, SecondSaWhileFirstEstablishedKeepsBoth) {
  Load();
  ASSERT_TRUE(a.engine->Initiate("t0-1").ok());
  ASSERT_TRUE(net.RunUntil([&] { return a.Established() == 1 && b.Established() == 1; }, Duration{10000}));
  ASSERT_TRUE(a.engine->Initiate("t0-1").ok());
  ASSERT_TRUE(net.RunUntil([&] { return a.Established() == 2 && b.Established() == 2; }, Duration{10000}));
  net.RunFor(Duration{2000});
  EXPECT_EQ(b.Established(), 2u);
}

TEST_F(InitialContactTest, RestartedPeerDropsStaleSas) {
  Load();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(a.engine->Initiate("t0-1").ok());
  ASSERT_TRUE(net.RunUntil([&] { return a.Established() == 3 && b.Established() == 3; }, Duration{10000}));
  std::set<uint64_t> stale;
  for (const auto& s : a.engine->ListSas()) stale.insert(s.spi_i);
  // b reboots: its SAs are gone without a word; it connects again with INITIAL_CONTACT.
  b.Restart();
  ASSERT_TRUE(b.engine->Load(cfg_b).ok());
  ASSERT_TRUE(b.engine->Initiate("t0-1").ok());
  ASSERT_TRUE(net.RunUntil([&] { return b.Established() == 1 && a.engine->ListSas().size() == 1; }, Duration{10000}))
      << "a holds " << a.engine->ListSas().size();
  auto la = a.engine->ListSas();
  ASSERT_EQ(la.size(), 1u);
  EXPECT_EQ(la[0].state, IkeState::kEstablished);
  EXPECT_FALSE(la[0].initiator);
  EXPECT_FALSE(stale.count(la[0].spi_i));
  EXPECT_EQ(a.xfrm->sa_count(), 2u);  // only the new CHILD_SA pair
  EXPECT_EQ(b.xfrm->sa_count(), 2u);
}

TEST_F(InitialContactTest, RestartedPeerStartingManySasAtOnceKeepsAllNewOnes) {
  // Ten SAs started together: each sees the others, so none may claim INITIAL_CONTACT (RFC 7296
  // 2.4). All ten come up on both sides; the stale SA is left to the liveness check to remove.
  Load(Duration{3000});
  ASSERT_TRUE(a.engine->Initiate("t0-1").ok());
  ASSERT_TRUE(net.RunUntil([&] { return a.Established() == 1 && b.Established() == 1; }, Duration{10000}));
  b.Restart();
  ASSERT_TRUE(b.engine->Load(cfg_b).ok());
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(b.engine->Initiate("t0-1").ok());
  ASSERT_TRUE(net.RunUntil([&] { return b.Established() == 10 && a.Established() >= 10; }, Duration{20000}))
      << "a=" << a.Established() << " b=" << b.Established();
  ASSERT_TRUE(net.RunUntil([&] { return a.Established() == 10; }, Duration{120000}));
  for (const auto& s : a.engine->ListSas()) EXPECT_FALSE(s.initiator) << "the stale SA survived";
  EXPECT_EQ(b.Established(), 10u);
  EXPECT_EQ(a.Count(EventType::kLivenessFailed), 1);
}

}  // namespace
}  // namespace ipfleet::ike
