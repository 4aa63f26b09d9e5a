// A simultaneous CHILD_SA rekey (RFC 7296 2.8.1) where one end's CREATE_CHILD_SA response is lost: the other
// end finishes first and, when it wins, deletes the old CHILD_SA before the late response arrives (seen with
// charon, interop_rekey SimultaneousChildRekeyLateResponse). The late end must still recognise its successor
// as the redundant one and delete it, although the old child it used to compare through is gone.
#include <gtest/gtest.h>

#include <set>

#include "natfrag_fixture.h"

namespace ipfleet::ike::natfrag_test {
namespace {

class LateResponseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Drops the next CREATE_CHILD_SA response on its way to A (A's retransmission then gets it).
    net.SetFilter([this](const Endpoint&, const Endpoint& to, const Bytes& d) {
      auto h = DecodeHeader(d);
      if (!drop_response_to_a_ || to.addr != kA || !h.ok() || h->exchange != ExchangeType::kCreateChildSa ||
          !h->is_response())
        return false;
      drop_response_to_a_ = false;
      return true;
    });
    IkeConfig ca, cb;
    ca.peers = {Peer("t", kA, kB)};
    cb.peers = {Peer("t", kB, kA)};
    for (auto* c : {&ca, &cb}) {
      c->retransmit_timeout = Duration{500};
      c->rekey_grace = Duration{100};  // A's old child is gone well before its retransmission
    }
    ASSERT_TRUE(a.engine->Load(ca).ok());
    ASSERT_TRUE(b.engine->Load(cb).ok());
    ASSERT_TRUE(a.engine->Initiate("t").ok());
    ASSERT_TRUE(net.RunUntil([&] { return a.InstalledChildren() == 1 && b.InstalledChildren() == 1; },
                             Duration{10000}));
  }
  static ChildSaInfo OnlyChild(Side& s) {
    auto sas = s.engine->ListSas();
    EXPECT_EQ(sas.size(), 1u);
    EXPECT_EQ(sas.at(0).children.size(), 1u) << "children left (any state)";
    return sas.at(0).children.at(0);
  }

  FakeClock clock;
  SimNetwork net{clock, 11};
  Side a{clock, net, kA};
  Side b{clock, net, kB};
  bool drop_response_to_a_ = false;
};

TEST_F(LateResponseTest, LateLoserStillDeletesItsRedundantChild) {
  std::set<bool> a_lost_seen;
  for (int round = 0; round < 40 && !a_lost_seen.count(true); ++round) {
    const size_t events_before = a.events.size();
    drop_response_to_a_ = true;
    ASSERT_TRUE(a.engine->RekeyChild(a.engine->ListSas().at(0).children.at(0).id).ok());
    ASSERT_TRUE(b.engine->RekeyChild(b.engine->ListSas().at(0).children.at(0).id).ok());
    net.RunUntil([] { return false; }, Duration{3000});  // simulated time: retransmission, deletes, grace
    ASSERT_FALSE(drop_response_to_a_) << "round " << round << ": no response to A was dropped";
    ChildSaInfo ca = OnlyChild(a), cb = OnlyChild(b);
    if (HasFatalFailure()) return;
    ASSERT_EQ(ca.state, ChildState::kInstalled) << "round " << round;
    ASSERT_EQ(ca.spi_in, cb.spi_out) << "round " << round;
    ASSERT_EQ(ca.spi_out, cb.spi_in) << "round " << round;
    bool a_lost = false;
    for (size_t i = events_before; i < a.events.size(); ++i)
      a_lost |= a.events[i].type == EventType::kChildDeleted && a.events[i].detail == "deleted_by_us";
    a_lost_seen.insert(a_lost);
  }
  EXPECT_TRUE(a_lost_seen.count(true)) << "in 40 rounds the late end never lost: the case was not reached";
}

}  // namespace
}  // namespace ipfleet::ike::natfrag_test
