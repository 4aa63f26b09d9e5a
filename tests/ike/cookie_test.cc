// DoS resistance (RFC 7296 2.6): a flood of IKE_SA_INIT requests from spoofed addresses makes the
// responder answer with stateless COOKIEs once half-open SAs pass the threshold; the half-open
// count stays bounded, a legitimate initiator still gets through by returning its cookie, a
// cookie is bound to the address it was sent to, and the per-peer and global limits hold.
#include <gtest/gtest.h>

#include "natfrag_fixture.h"

namespace ipfleet::ike::natfrag_test {
namespace {

kernel::IpAddress Spoofed(uint32_t i) {
  kernel::IpAddress a = kernel::IpAddress::MustParse("10.0.0.0");
  a.bytes[1] = static_cast<uint8_t>(i >> 16);
  a.bytes[2] = static_cast<uint8_t>(i >> 8);
  a.bytes[3] = static_cast<uint8_t>(i);
  return a;
}

std::optional<Bytes> CookieIn(const Bytes& datagram) {
  auto m = DecodeMessage(datagram);
  if (!m.ok() || m->header.exchange != ExchangeType::kIkeSaInit || !m->header.is_response()) return std::nullopt;
  if (auto* n = m->FindNotify(NotifyType::kCookie)) return n->data;
  return std::nullopt;
}

class CookieTest : public ::testing::Test {
 protected:
  void SetUp() override {
    net.SetTap([this](const Endpoint& f, const Endpoint& t, const Bytes& d) { wire.push_back({f, t, d}); });
  }
  void Load(size_t threshold, size_t global, size_t per_peer) {
    IkeConfig ca, cb;
    ca.peers = {Peer("t", kA, kB)};
    cb.peers = {Peer("t", kB, kA)};
    cb.peers[0].remote_addr = kernel::IpAddress{};  // answers anyone (the flood reaches the DH step)
    for (auto* c : {&ca, &cb}) {
      c->retransmit_timeout = Duration{500};
      c->cookie_threshold = threshold;
      c->half_open_max = global;
      c->half_open_per_peer = per_peer;
    }
    ASSERT_TRUE(a.engine->Load(ca).ok());
    ASSERT_TRUE(b.engine->Load(cb).ok());
  }
  void Flood(uint32_t n, bool same_source = false) {
    for (uint32_t i = 0; i < n; ++i)
      b.engine->OnDatagram(Endpoint{kB, 500}, Endpoint{same_source ? Spoofed(1) : Spoofed(i + 1), 500},
                           ForgedInit(0x1000 + next_spi_++));
  }
  size_t CookiesTo(bool spoofed) const {
    size_t n = 0;
    for (const auto& s : wire) n += s.from.addr == kB && (s.to.addr != kA) == spoofed && CookieIn(s.data).has_value();
    return n;
  }

  FakeClock clock;
  SimNetwork net{clock, 3};
  std::vector<Sniffed> wire;
  Side a{clock, net, kA};
  Side b{clock, net, kB};
  uint64_t next_spi_ = 0;
};

TEST_F(CookieTest, FloodGetsCookiesHalfOpenStaysBoundedLegitInitiatorGetsThrough) {
  Load(/*threshold=*/10, /*global=*/1000, /*per_peer=*/5);
  Flood(2000);
  // Only the first `threshold` spoofed requests created state; the rest got a COOKIE each.
  EXPECT_EQ(b.HalfOpenResponder(), 10u);
  EXPECT_EQ(CookiesTo(true), 1990u);
  ASSERT_TRUE(a.engine->Initiate("t").ok());
  // The flood keeps coming while the legitimate exchange runs.
  bool up = net.RunUntil([&] {
    Flood(50);
    return a.InstalledChildren() == 1 && b.InstalledChildren() == 1;
  }, Duration{20000});
  ASSERT_TRUE(up);
  EXPECT_LE(b.HalfOpenResponder(), 10u);
  // The initiator was asked for a cookie and sent its IKE_SA_INIT again with it, first payload.
  EXPECT_GE(CookiesTo(false), 1u);
  int with_cookie = 0;
  for (const auto& s : wire)
    if (s.from.addr == kA)
      if (auto m = DecodeMessage(s.data); m.ok() && m->header.exchange == ExchangeType::kIkeSaInit && !m->payloads.empty())
        if (auto* n = std::get_if<NotifyPayload>(&m->payloads[0].body); n && n->type == uint16_t(NotifyType::kCookie))
          ++with_cookie;
  EXPECT_GE(with_cookie, 1);
  // Half-open SAs of the flood expire; the established one stays.
  net.RunFor(Duration{35000});
  EXPECT_EQ(b.HalfOpenResponder(), 0u);
  EXPECT_EQ(b.Established(), 1u);
}

TEST_F(CookieTest, CookieIsBoundToTheAddressItWasSentTo) {
  Load(/*threshold=*/0, 1000, 1000);  // cookies always
  Bytes req = ForgedInit(0xabc);
  b.engine->OnDatagram(Endpoint{kB, 500}, Endpoint{Spoofed(7), 500}, req);
  ASSERT_EQ(b.HalfOpenResponder(), 0u);
  ASSERT_FALSE(wire.empty());
  auto cookie = CookieIn(wire.back().data);
  ASSERT_TRUE(cookie);
  // Returned from another address: refused (a new cookie instead of state).
  wire.clear();
  b.engine->OnDatagram(Endpoint{kB, 500}, Endpoint{Spoofed(8), 500}, ForgedInit(0xabc, *cookie));
  EXPECT_EQ(b.HalfOpenResponder(), 0u);
  EXPECT_EQ(CookiesTo(true), 1u);
  // From the right address: accepted, one half-open SA.
  b.engine->OnDatagram(Endpoint{kB, 500}, Endpoint{Spoofed(7), 500}, ForgedInit(0xabc, *cookie));
  EXPECT_EQ(b.HalfOpenResponder(), 1u);
}

TEST_F(CookieTest, PerPeerAndGlobalHalfOpenLimits) {
  Load(/*threshold=*/100000, /*global=*/30, /*per_peer=*/4);
  Flood(50, /*same_source=*/true);
  EXPECT_EQ(b.HalfOpenResponder(), 4u);
  Flood(200);
  EXPECT_EQ(b.HalfOpenResponder(), 30u);
  EXPECT_EQ(CookiesTo(true), 0u);
}

}  // namespace
}  // namespace ipfleet::ike::natfrag_test
