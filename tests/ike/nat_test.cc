// NAT traversal between two engines over the simulated network, with a test NAT in front of A
// that rewrites A's address and ports (RFC 7296 2.23, RFC 3948): detection on both sides, the
// initiator's switch to 4500, UDP-encapsulated ESP in the kernel, keepalives from the NATed side
// only, and the responder following a changed NAT mapping only on authenticated messages.
#include <gtest/gtest.h>

#include "natfrag_fixture.h"

namespace ipfleet::ike::natfrag_test {
namespace {

const kernel::IpAddress kNatPublic = kernel::IpAddress::MustParse("203.0.113.1");

// A port-rewriting NAT: A's datagrams leave from kNatPublic with a port allocated per inner
// port; inbound datagrams to an unknown public port are dropped (no mapping, as a real NAT).
class TestNat {
 public:
  bool operator()(Endpoint& from, Endpoint& to) {
    if (from.addr == kA && to.addr != kA) {
      auto it = out_.find(from.port);
      if (it == out_.end()) {
        it = out_.emplace(from.port, next_port_++).first;
        in_[it->second] = from.port;
      }
      from = Endpoint{kNatPublic, it->second};
      return true;
    }
    if (to.addr == kNatPublic) {
      auto it = in_.find(to.port);
      if (it == in_.end()) return false;
      to = Endpoint{kA, it->second};
    }
    return true;
  }
  // The NAT reboots / times the mappings out: the next datagrams get new public ports.
  void Remap() {
    out_.clear();
    in_.clear();
  }
  uint16_t PublicPortOf(uint16_t inner) const {
    auto it = out_.find(inner);
    return it == out_.end() ? 0 : it->second;
  }

 private:
  std::map<uint16_t, uint16_t> out_, in_;
  uint16_t next_port_ = 31000;
};

class NatTest : public ::testing::Test {
 protected:
  void SetUp() override {
    net.SetTap([this](const Endpoint& f, const Endpoint& t, const Bytes& d) { wire.push_back({f, t, d}); });
  }
  void Load(bool behind_nat, Duration dpd_a = Duration{0}) {
    if (behind_nat) net.SetNat([this](Endpoint& f, Endpoint& t) { return nat(f, t); });
    IkeConfig ca, cb;
    ca.peers = {Peer("t", kA, kB)};
    ca.peers[0].dpd_interval = dpd_a;
    cb.peers = {Peer("t", kB, kA)};
    cb.peers[0].remote_addr = kernel::IpAddress{};  // %any: the peer shows up as the NAT's address
    for (auto* c : {&ca, &cb}) {
      c->retransmit_timeout = Duration{500};
      c->nat_keepalive = Duration{20000};
    }
    ASSERT_TRUE(a.engine->Load(ca).ok());
    ASSERT_TRUE(b.engine->Load(cb).ok());
  }
  bool BothUp() {
    return net.RunUntil([&] { return a.InstalledChildren() == 1 && b.InstalledChildren() == 1; }, Duration{30000});
  }
  std::optional<Sniffed> FirstOf(ExchangeType t, bool response) {
    for (const auto& s : wire)
      if (auto h = s.header(); h && h->exchange == t && h->is_response() == response) return s;
    return std::nullopt;
  }
  int KeepalivesFrom(const kernel::IpAddress& addr) {
    int n = 0;
    for (const auto& s : wire) n += s.keepalive() && s.from.addr == addr;
    return n;
  }

  FakeClock clock;
  SimNetwork net{clock, 7};
  TestNat nat;
  std::vector<Sniffed> wire;
  Side a{clock, net, kA};
  Side b{clock, net, kB};
};

TEST_F(NatTest, InitiatorBehindNatMovesTo4500EncapsulatesEspAndSendsKeepalives) {
  Load(true);
  ASSERT_TRUE(a.engine->Initiate("t").ok());
  ASSERT_TRUE(BothUp());

  auto init = FirstOf(ExchangeType::kIkeSaInit, false);
  auto auth = FirstOf(ExchangeType::kIkeAuth, false);
  ASSERT_TRUE(init && auth);
  EXPECT_EQ(init->to.port, 500);
  EXPECT_EQ(init->from, (Endpoint{kNatPublic, nat.PublicPortOf(500)}));
  // RFC 7296 2.23: IKE_AUTH already goes 4500 -> 4500 (here: through the NAT's mapping for 4500).
  EXPECT_EQ(auth->to, (Endpoint{kB, 4500}));
  EXPECT_EQ(auth->from, (Endpoint{kNatPublic, nat.PublicPortOf(4500)}));

  auto sa_a = a.engine->ListSas().at(0);
  auto sa_b = b.engine->ListSas().at(0);
  EXPECT_EQ(sa_a.local, (Endpoint{kA, 4500}));
  EXPECT_EQ(sa_a.remote, (Endpoint{kB, 4500}));
  EXPECT_EQ(sa_b.remote, (Endpoint{kNatPublic, nat.PublicPortOf(4500)}));

  // ESP in UDP: every SA on both sides carries the encapsulation ports of its direction.
  auto sas_a = *a.xfrm.DumpSas();
  auto sas_b = *b.xfrm.DumpSas();
  ASSERT_EQ(sas_a.size(), 2u);
  ASSERT_EQ(sas_b.size(), 2u);
  for (const auto& s : sas_a) {
    ASSERT_TRUE(s.params.encap.has_value()) << s.params.id().ToString();
    EXPECT_EQ(s.params.encap->src_port, 4500);
    EXPECT_EQ(s.params.encap->dst_port, 4500);
  }
  uint16_t pub = nat.PublicPortOf(4500);
  for (const auto& s : sas_b) {
    ASSERT_TRUE(s.params.encap.has_value()) << s.params.id().ToString();
    bool outbound = s.params.dst == kNatPublic;
    EXPECT_EQ(s.params.encap->src_port, outbound ? 4500 : pub);
    EXPECT_EQ(s.params.encap->dst_port, outbound ? pub : 4500);
  }

  // RFC 3948 2.3: only the side behind the NAT keeps the mapping alive (every 20 s of silence).
  wire.clear();
  net.RunFor(Duration{70000});
  EXPECT_GE(KeepalivesFrom(kNatPublic), 3);
  EXPECT_EQ(KeepalivesFrom(kB), 0);
  EXPECT_EQ(a.Established(), 1u);
  EXPECT_EQ(b.Established(), 1u);
}

TEST_F(NatTest, WithoutNatNothingMovesAndNoKeepalives) {
  Load(false);
  ASSERT_TRUE(a.engine->Initiate("t").ok());
  ASSERT_TRUE(BothUp());
  auto auth = FirstOf(ExchangeType::kIkeAuth, false);
  ASSERT_TRUE(auth);
  EXPECT_EQ(auth->to, (Endpoint{kB, 500}));
  auto sas = a.xfrm.DumpSas();
  ASSERT_TRUE(sas.ok());
  for (const auto& s : *sas) EXPECT_FALSE(s.params.encap.has_value());
  wire.clear();
  net.RunFor(Duration{70000});
  EXPECT_EQ(KeepalivesFrom(kA) + KeepalivesFrom(kB), 0);
}

TEST_F(NatTest, ResponderFollowsNewMappingOnlyOnAuthenticatedMessages) {
  Load(true, Duration{10000});
  ASSERT_TRUE(a.engine->Initiate("t").ok());
  ASSERT_TRUE(BothUp());
  auto sa_b = b.engine->ListSas().at(0);
  Endpoint before = sa_b.remote;

  // A forged request with the right SPIs from another port: not authenticated, not followed.
  Message forged;
  forged.header.spi_i = sa_b.spi_i;
  forged.header.spi_r = sa_b.spi_r;
  forged.header.exchange = ExchangeType::kInformational;
  forged.header.flags = kFlagInitiator;
  forged.header.message_id = 7;
  forged.payloads.push_back({PayloadType::kSk, false, SkPayload{PayloadType::kNone, Bytes(48, 0x5a)}});
  b.engine->OnDatagram(Endpoint{kB, 4500}, Endpoint{kNatPublic, 9999}, EncodeMessage(forged));
  EXPECT_EQ(b.engine->ListSas().at(0).remote, before);

  // The NAT loses its mappings; A's next liveness check leaves from a new public port.
  nat.Remap();
  ASSERT_TRUE(net.RunUntil([&] { return nat.PublicPortOf(4500) != 0; }, Duration{30000}));
  Endpoint after{kNatPublic, nat.PublicPortOf(4500)};
  ASSERT_NE(after, before);
  ASSERT_TRUE(net.RunUntil([&] { return b.engine->ListSas().at(0).remote == after; }, Duration{5000}));

  // B reaches A at the new mapping: its DELETE of the CHILD_SA arrives.
  uint64_t child = b.engine->ListSas().at(0).children.at(0).id;
  ASSERT_TRUE(b.engine->DeleteChild(child).ok());
  EXPECT_TRUE(net.RunUntil([&] { return a.InstalledChildren() == 0 && b.InstalledChildren() == 0; }, Duration{10000}));
  EXPECT_EQ(a.Count(EventType::kLivenessFailed) + b.Count(EventType::kLivenessFailed), 0);
}

// The kernel side of a re-map: B's ESP SAs (fake kernel) must encapsulate to and accept from A's new public
// port, not only its IKE_SA (RFC 3948; otherwise ESP keeps going to the dead mapping).
TEST_F(NatTest, EspEncapsulationFollowsReMappedPort) {
  Load(true, Duration{10000});
  ASSERT_TRUE(a.engine->Initiate("t").ok());
  ASSERT_TRUE(BothUp());
  // B's view of A's port per direction: outbound SAs go to it, inbound SAs come from it.
  auto ports = [&] {
    std::vector<std::pair<bool, uint16_t>> out;  // (inbound, A's port)
    auto sas = b.xfrm.DumpSas();  // held: a range-for over *temporary would dangle
    for (const auto& st : *sas) {
      if (!st.params.encap) continue;
      bool inbound = st.params.dst == kB;
      out.push_back({inbound, inbound ? st.params.encap->src_port : st.params.encap->dst_port});
    }
    return out;
  };
  const uint16_t before = b.engine->ListSas().at(0).remote.port;
  ASSERT_EQ(ports().size(), 2u);
  for (const auto& [inbound, port] : ports()) EXPECT_EQ(port, before) << (inbound ? "in" : "out");

  nat.Remap();
  ASSERT_TRUE(net.RunUntil([&] { return nat.PublicPortOf(4500) != 0; }, Duration{30000}));
  const uint16_t after = nat.PublicPortOf(4500);
  ASSERT_NE(after, before);
  ASSERT_TRUE(net.RunUntil([&] { return b.engine->ListSas().at(0).remote.port == after; }, Duration{5000}));
  ASSERT_EQ(ports().size(), 2u);
  for (const auto& [inbound, port] : ports()) EXPECT_EQ(port, after) << (inbound ? "in" : "out");
  // The SAs were updated in place: same SPIs, keys intact (the fake kernel keeps what UpdateSa gave it).
  auto b_sas = b.xfrm.DumpSas();
  for (const auto& st : *b_sas) {
    ASSERT_TRUE(st.params.aead.has_value());
    EXPECT_EQ(st.params.aead->key.size(), 20u);  // AES-GCM-128 key + 4-byte salt
    EXPECT_NE(st.params.aead->key, Bytes(20, 0));
  }
  // A (behind the NAT) keeps its own ports.
  auto a_sas = a.xfrm.DumpSas();
  for (const auto& st : *a_sas) {
    if (!st.params.encap) continue;
    EXPECT_EQ(*st.params.encap, (kernel::NatTEncap{4500, 4500}));
  }
}

}  // namespace
}  // namespace ipfleet::ike::natfrag_test
