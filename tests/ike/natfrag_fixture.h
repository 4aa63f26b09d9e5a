// Shared pieces of the NAT-T, fragmentation, cookie and retransmission tests: certificates, peer
// configs, an engine on the simulated network with its fake kernel, and a small message sniffer.
#pragma once

#include <gtest/gtest.h>

#include <map>

#include "ipfleet/ike/codec.h"
#include "ipfleet/ike/engine.h"
#include "ipfleet/ike/sim_network.h"
#include "ipfleet/kernel/fake_xfrm.h"
#include "test_pki.h"

namespace ipfleet::ike::natfrag_test {

inline const kernel::IpAddress kA = kernel::IpAddress::MustParse("192.0.2.1");
inline const kernel::IpAddress kB = kernel::IpAddress::MustParse("192.0.2.2");

struct Pki {
  testing::Pem ca = testing::MakeCa("natfrag root CA");
  testing::Pem a = testing::IssueCert(ca, "host-a", {"IP:192.0.2.1"}, 10);
  testing::Pem b = testing::IssueCert(ca, "host-b", {"IP:192.0.2.2"}, 11);
};
inline const Pki& P() {
  static Pki* p = new Pki();
  return *p;
}

inline PeerConfig Peer(const std::string& name, kernel::IpAddress local, kernel::IpAddress remote) {
  PeerConfig p;
  p.name = name;
  p.local_addr = local;
  p.remote_addr = remote;
  p.local_id = local.ToString();
  p.remote_id = remote.ToString();
  p.auth = AuthKind::kPubkey;
  const auto& pem = local == kA ? P().a : P().b;
  p.cert_pem = pem.cert;
  p.key_pem = pem.key;
  p.ca_pems = {P().ca.cert};
  ChildConfig c;
  c.name = "c1";
  c.local_ts = {*TsConfig::Parse(local == kA ? "198.51.100.1/32" : "198.51.100.2/32")};
  c.remote_ts = {*TsConfig::Parse(local == kA ? "198.51.100.2/32" : "198.51.100.1/32")};
  p.children = {c};
  return p;
}

class Side {
 public:
  Side(FakeClock& clock, SimNetwork& net, kernel::IpAddress addr) : engine(Engine::Create(clock, net, xfrm)) {
    net.Attach(addr, engine.get());
    engine->SetEventCallback([this](const Event& e) { events.push_back(e); });
  }
  size_t Established() const {
    size_t n = 0;
    for (const auto& s : engine->ListSas()) n += s.state == IkeState::kEstablished;
    return n;
  }
  size_t InstalledChildren() const {
    size_t n = 0;
    for (const auto& s : engine->ListSas())
      for (const auto& c : s.children) n += c.state == ChildState::kInstalled;
    return n;
  }
  size_t HalfOpenResponder() const {
    size_t n = 0;
    for (const auto& s : engine->ListSas()) n += s.state == IkeState::kConnecting && !s.initiator;
    return n;
  }
  int Count(EventType t) const {
    int n = 0;
    for (const auto& e : events) n += e.type == t;
    return n;
  }
  kernel::FakeXfrm xfrm;
  std::unique_ptr<Engine> engine;
  std::vector<Event> events;
};

// What the wire saw (after any NAT rewrite).
struct Sniffed {
  Endpoint from, to;
  Bytes data;
  bool keepalive() const { return data.size() == 1 && data[0] == 0xff; }
  std::optional<Header> header() const {
    auto h = DecodeHeader(data);
    return h.ok() ? std::optional<Header>(*h) : std::nullopt;
  }
};

// A request of IKE_SA_INIT as a stranger would send it (for floods): valid SA/KE/Nonce.
inline Bytes ForgedInit(uint64_t spi_i, const Bytes& cookie = {}) {
  Message m;
  m.header.spi_i = spi_i;
  m.header.exchange = ExchangeType::kIkeSaInit;
  m.header.flags = kFlagInitiator;
  if (!cookie.empty()) m.payloads.push_back(MakeNotify(NotifyType::kCookie, cookie));
  auto prop = ParseProposal("aes128gcm16-prfsha256-x25519", ProtocolId::kIke);
  m.payloads.push_back({PayloadType::kSa, false, SaPayload{{*prop}}});
  Bytes ke(32);
  for (size_t i = 0; i < ke.size(); ++i) ke[i] = static_cast<uint8_t>(spi_i * 31 + i * 7 + 9);
  m.payloads.push_back({PayloadType::kKe, false, KePayload{dh::kCurve25519, ke}});
  Bytes nonce(32, static_cast<uint8_t>(spi_i));
  m.payloads.push_back({PayloadType::kNonce, false, NoncePayload{nonce}});
  return EncodeMessage(m);
}

}  // namespace ipfleet::ike::natfrag_test
