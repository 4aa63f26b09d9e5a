// IKE fragmentation (RFC 7383) over a simulated path with an MTU of 576 that drops anything
// larger: IKE_AUTH with a 3-certificate chain (host + 2 intermediates, each CA-signed) gets through
// only as SKF fragments; without fragmentation it cannot. A lost fragment is recovered by the
// ordinary retransmission; a NATed path (non-ESP marker on 4500) is sized correctly too.
#include <gtest/gtest.h>

#include "natfrag_fixture.h"

namespace ipfleet::ike::natfrag_test {
namespace {

struct ChainPki {
  testing::Pem root = testing::MakeCa("frag root CA");
  testing::Pem int1 = testing::IssueIntermediate(root, "frag intermediate 1", 2);
  testing::Pem int2 = testing::IssueIntermediate(int1, "frag intermediate 2", 3);
  testing::Pem a = testing::IssueCert(int2, "host-a", {"IP:192.0.2.1", "DNS:host-a.frag.example"}, 20);
  testing::Pem b = testing::IssueCert(int2, "host-b", {"IP:192.0.2.2", "DNS:host-b.frag.example"}, 21);
};
const ChainPki& C() {
  static ChainPki* p = new ChainPki();
  return *p;
}

PeerConfig ChainPeer(kernel::IpAddress local, kernel::IpAddress remote) {
  PeerConfig p = Peer("t", local, remote);
  const auto& pem = local == kA ? C().a : C().b;
  // End entity first, then the intermediates; only the root is configured as trust anchor.
  p.cert_pem = pem.cert + C().int2.cert + C().int1.cert;
  p.key_pem = pem.key;
  p.ca_pems = {C().root.cert};
  return p;
}

class FragTest : public ::testing::Test {
 protected:
  void SetUp() override {
    net.SetTap([this](const Endpoint& f, const Endpoint& t, const Bytes& d) { wire.push_back({f, t, d}); });
    net.SetMtu(576);
  }
  void Load(bool fragmentation) {
    IkeConfig ca, cb;
    ca.peers = {ChainPeer(kA, kB)};
    cb.peers = {ChainPeer(kB, kA)};
    for (auto* c : {&ca, &cb}) {
      c->retransmit_timeout = Duration{500};
      c->retransmit_tries = 4;
      c->fragmentation = fragmentation;
      c->fragment_size = 576;
    }
    ASSERT_TRUE(a.engine->Load(ca).ok()) << a.engine->Load(ca);
    ASSERT_TRUE(b.engine->Load(cb).ok());
  }
  bool BothUp(Duration limit = Duration{20000}) {
    return net.RunUntil([&] { return a.InstalledChildren() == 1 && b.InstalledChildren() == 1; }, limit);
  }
  size_t Fragments(bool response) const {
    size_t n = 0;
    for (const auto& s : wire)
      if (auto h = s.header(); h && h->next_payload == PayloadType::kSkf && h->is_response() == response) ++n;
    return n;
  }
  size_t Largest() const {
    size_t m = 0;
    for (const auto& s : wire) m = std::max(m, SimNetwork::IpSize(s.from, s.to, s.data.size()));
    return m;
  }

  FakeClock clock;
  SimNetwork net{clock, 11};
  std::vector<Sniffed> wire;
  Side a{clock, net, kA};
  Side b{clock, net, kB};
};

TEST_F(FragTest, Mtu576ThreeCertChainEstablishesWithSkfFragments) {
  Load(true);
  ASSERT_TRUE(a.engine->Initiate("t").ok());
  ASSERT_TRUE(BothUp());
  // Both IKE_AUTH messages needed fragments, none exceeded the MTU, nothing was dropped for size.
  EXPECT_GE(Fragments(false), 4u);
  EXPECT_GE(Fragments(true), 4u);
  EXPECT_EQ(net.mtu_dropped(), 0u);
  EXPECT_LE(Largest(), 576u);
  EXPECT_EQ(a.engine->stats().retransmits, 0u);
  // The chain was verified: each side names the other's ID.
  EXPECT_EQ(a.engine->ListSas().at(0).remote_id, "192.0.2.2");
  EXPECT_EQ(b.engine->ListSas().at(0).remote_id, "192.0.2.1");
  // Later exchanges still work (small: not fragmented): DELETE of the IKE_SA.
  ASSERT_TRUE(a.engine->DeleteIke(a.engine->ListSas().at(0).id).ok());
  EXPECT_TRUE(net.RunUntil([&] { return a.engine->ListSas().empty() && b.engine->ListSas().empty(); }, Duration{5000}));
}

TEST_F(FragTest, WithoutFragmentationTheSamePathFails) {
  Load(false);
  ASSERT_TRUE(a.engine->Initiate("t").ok());
  EXPECT_FALSE(BothUp(Duration{10000}));
  EXPECT_GT(net.mtu_dropped(), 0u);
  EXPECT_EQ(Fragments(false) + Fragments(true), 0u);
}

TEST_F(FragTest, LostFragmentRecoveredByRetransmission) {
  Load(true);
  // Drop the second fragment of the first IKE_AUTH request and of the first response.
  int dropped_req = 0, dropped_resp = 0;
  net.SetFilter([&](const Endpoint&, const Endpoint&, const Bytes& d) {
    auto h = DecodeHeader(d);
    if (!h.ok() || h->next_payload != PayloadType::kSkf || d.size() < kHeaderSize + 8) return false;
    uint16_t num = static_cast<uint16_t>(d[kHeaderSize + 4] << 8 | d[kHeaderSize + 5]);
    int& n = h->is_response() ? dropped_resp : dropped_req;
    if (num == 2 && n == 0) {
      ++n;
      return true;
    }
    return false;
  });
  ASSERT_TRUE(a.engine->Initiate("t").ok());
  ASSERT_TRUE(BothUp());
  EXPECT_EQ(dropped_req, 1);
  EXPECT_EQ(dropped_resp, 1);
  EXPECT_GE(a.engine->stats().retransmits, 2u);
  EXPECT_GE(b.engine->stats().retransmits_answered, 1u);
}

TEST_F(FragTest, BehindNatFragmentsLeaveRoomForTheNonEspMarker) {
  // The responder sees the initiator through a NAT (port rewrite), so IKE_AUTH runs on 4500 where
  // every IKE datagram carries 4 more bytes; 576 must still hold.
  const kernel::IpAddress pub = kernel::IpAddress::MustParse("203.0.113.9");
  net.SetNat([&](Endpoint& f, Endpoint& t) {
    if (f.addr == kA) f = Endpoint{pub, static_cast<uint16_t>(f.port + 20000)};
    else if (t.addr == pub) t = Endpoint{kA, static_cast<uint16_t>(t.port - 20000)};
    return true;
  });
  IkeConfig ca, cb;
  ca.peers = {ChainPeer(kA, kB)};
  cb.peers = {ChainPeer(kB, kA)};
  cb.peers[0].remote_addr = kernel::IpAddress{};
  for (auto* c : {&ca, &cb}) {
    c->retransmit_timeout = Duration{500};
    c->fragment_size = 576;
  }
  ASSERT_TRUE(a.engine->Load(ca).ok());
  ASSERT_TRUE(b.engine->Load(cb).ok());
  ASSERT_TRUE(a.engine->Initiate("t").ok());
  ASSERT_TRUE(BothUp());
  EXPECT_EQ(net.mtu_dropped(), 0u);
  EXPECT_EQ(a.engine->ListSas().at(0).local.port, 4500);
  EXPECT_GE(Fragments(false), 4u);
}

}  // namespace
}  // namespace ipfleet::ike::natfrag_test
