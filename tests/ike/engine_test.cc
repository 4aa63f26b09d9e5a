// Two engines in one process over the simulated network: establishment with every proposal set,
// certificate/PSK auth and its refusals, CREATE_CHILD_SA, DELETE, liveness, retransmissions.
// Kernel state is checked in each side's FakeXfrm: the outbound SA of one side must carry the
// same SPI and keys as the inbound SA of the other (an independent check of KEYMAT agreement).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "ipfleet/ike/auth.h"
#include "ipfleet/ike/codec.h"
#include "ipfleet/ike/engine.h"
#include "ipfleet/ike/sim_network.h"
#include "ipfleet/kernel/fake_xfrm.h"
#include "test_pki.h"

namespace ipfleet::ike {
namespace {

using testing::IssueCert;
using testing::KeyType;
using testing::MakeCa;
using testing::MakeCrl;
using testing::Pem;

const kernel::IpAddress kA = kernel::IpAddress::MustParse("192.0.2.1");
const kernel::IpAddress kB = kernel::IpAddress::MustParse("192.0.2.2");

struct Pki {
  Pem ca = MakeCa("ipfleet test CA");
  Pem other_ca = MakeCa("rogue CA");
  Pem a = IssueCert(ca, "host-a", {"IP:192.0.2.1", "DNS:host-a.example"}, 10);
  Pem b = IssueCert(ca, "host-b", {"IP:192.0.2.2", "DNS:host-b.example"}, 11);
  Pem b_rsa = IssueCert(ca, "host-b", {"IP:192.0.2.2"}, 12, KeyType::kRsa2048);
  Pem b_rogue = IssueCert(other_ca, "host-b", {"IP:192.0.2.2"}, 13);
  Pem b_revoked = IssueCert(ca, "host-b", {"IP:192.0.2.2"}, 14);
  Pem b_wrong_san = IssueCert(ca, "host-b", {"IP:192.0.2.99", "DNS:other.example"}, 15);
  Pem a_p384 = IssueCert(ca, "host-a", {"IP:192.0.2.1"}, 16, KeyType::kEcP384);
  std::string crl = MakeCrl(ca, {14});
};
const Pki& P() {
  static Pki* p = new Pki();
  return *p;
}

PeerConfig Peer(const std::string& name, kernel::IpAddress local, kernel::IpAddress remote, const Pem& cert) {
  PeerConfig p;
  p.name = name;
  p.local_addr = local;
  p.remote_addr = remote;
  p.local_id = local.ToString();
  p.remote_id = remote.ToString();
  p.auth = AuthKind::kPubkey;
  p.cert_pem = cert.cert;
  p.key_pem = cert.key;
  p.ca_pems = {P().ca.cert};
  p.crl_pems = {P().crl};
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
  bool Has(EventType t) const {
    for (const auto& e : events)
      if (e.type == t) return true;
    return false;
  }
  const Event* Find(EventType t) const {
    for (const auto& e : events)
      if (e.type == t) return &e;
    return nullptr;
  }
  int Count(EventType t) const {
    int n = 0;
    for (const auto& e : events) n += e.type == t;
    return n;
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
  kernel::FakeXfrm xfrm;
  std::unique_ptr<Engine> engine;
  std::vector<Event> events;
};

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const char* dir = std::getenv("IPFLEET_IKE_CORPUS_DIR")) {
      // Seeds for fuzz_ike_decode: every datagram of these runs.
      net.SetTap([dir](const Endpoint&, const Endpoint&, const Bytes& d) {
        static int n = 0;
        std::ofstream(std::filesystem::path(dir) / ("msg-" + std::to_string(n++)), std::ios::binary)
            .write(reinterpret_cast<const char*>(d.data()), d.size());
      });
    }
  }
  void Load(const PeerConfig& pa, const PeerConfig& pb, Duration rt = Duration{500}) {
    IkeConfig ca, cb;
    ca.peers = {pa};
    cb.peers = {pb};
    ca.retransmit_timeout = cb.retransmit_timeout = rt;
    ASSERT_TRUE(a.engine->Load(ca).ok()) << a.engine->Load(ca);
    ASSERT_TRUE(b.engine->Load(cb).ok()) << b.engine->Load(cb);
  }
  bool BothUp(size_t children = 1) {
    return net.RunUntil(
        [&] {
          return a.Established() == 1 && b.Established() == 1 && a.InstalledChildren() == children &&
                 b.InstalledChildren() == children;
        },
        Duration{60000});
  }
  // The kernel view: every outbound SA of one side is the other side's inbound SA, same keys.
  void ExpectKernelAgreement(size_t pairs) {
    auto sa_a = *a.xfrm.DumpSas();
    auto sa_b = *b.xfrm.DumpSas();
    ASSERT_EQ(sa_a.size(), 2 * pairs);
    ASSERT_EQ(sa_b.size(), 2 * pairs);
    for (const auto& x : sa_a) {
      bool found = false;
      for (const auto& y : sa_b)
        if (x.params.spi == y.params.spi && x.params.src == y.params.src) {
          found = true;
          EXPECT_EQ(x.params.src, y.params.src);
          EXPECT_EQ(x.params.dst, y.params.dst);
          EXPECT_EQ(x.params.aead, y.params.aead);
          EXPECT_EQ(x.params.crypt, y.params.crypt);
          EXPECT_EQ(x.params.auth, y.params.auth);
          EXPECT_EQ(x.params.mode, y.params.mode);
        }
      EXPECT_TRUE(found) << "SPI " << x.params.spi << " missing on the other side";
      EXPECT_TRUE(x.params.aead || (x.params.crypt && x.params.auth));
      EXPECT_TRUE(kernel::IsOwnedReqid(x.params.reqid));
    }
    EXPECT_GE(a.xfrm.policy_count(), 2 * pairs);
  }

  FakeClock clock;
  SimNetwork net{clock, 7};
  Side a{clock, net, kA};
  Side b{clock, net, kB};
};

struct Suite {
  const char* ike;
  const char* esp;
  const char* expect_ike;
};

class ProposalTest : public EngineTest, public ::testing::WithParamInterface<Suite> {};

TEST_P(ProposalTest, EstablishesAndInstallsMatchingKernelState) {
  PeerConfig pa = Peer("t", kA, kB, P().a), pb = Peer("t", kB, kA, P().b);
  pa.ike_proposals = pb.ike_proposals = {GetParam().ike};
  pa.children[0].esp_proposals = pb.children[0].esp_proposals = {GetParam().esp};
  Load(pa, pb);
  ASSERT_TRUE(a.engine->Initiate("t").ok());
  ASSERT_TRUE(BothUp());
  auto la = a.engine->ListSas(), lb = b.engine->ListSas();
  EXPECT_EQ(la[0].suite, GetParam().expect_ike);
  EXPECT_EQ(lb[0].suite, GetParam().expect_ike);
  EXPECT_EQ(la[0].spi_i, lb[0].spi_i);
  EXPECT_EQ(la[0].spi_r, lb[0].spi_r);
  EXPECT_TRUE(la[0].initiator);
  EXPECT_FALSE(lb[0].initiator);
  EXPECT_EQ(la[0].remote_id, "192.0.2.2");
  EXPECT_EQ(lb[0].remote_id, "192.0.2.1");
  ASSERT_EQ(la[0].children.size(), 1u);
  EXPECT_EQ(la[0].children[0].spi_in, lb[0].children[0].spi_out);
  EXPECT_EQ(la[0].children[0].spi_out, lb[0].children[0].spi_in);
  EXPECT_EQ(la[0].children[0].local_ts, std::vector<std::string>{"198.51.100.1/32"});
  ExpectKernelAgreement(1);
}

INSTANTIATE_TEST_SUITE_P(
    Suites, ProposalTest,
    ::testing::Values(Suite{"aes128gcm16-prfsha256-x25519", "aes128gcm16", "AES_GCM_16_128/PRF_HMAC_SHA2_256/CURVE_25519"},
                      Suite{"aes256gcm16-prfsha384-ecp384", "aes256gcm16", "AES_GCM_16_256/PRF_HMAC_SHA2_384/ECP_384"},
                      Suite{"aes128-sha256-modp2048", "aes128-sha256",
                            "AES_CBC_128/PRF_HMAC_SHA2_256/HMAC_SHA2_256_128/MODP_2048"},
                      Suite{"aes256-sha384-ecp256", "aes256-sha384", "AES_CBC_256/PRF_HMAC_SHA2_384/HMAC_SHA2_384_192/ECP_256"},
                      Suite{"aes256-sha512-x25519", "aes256-sha512",
                            "AES_CBC_256/PRF_HMAC_SHA2_512/HMAC_SHA2_512_256/CURVE_25519"},
                      Suite{"aes128gcm16-prfsha512-ecp256", "aes256gcm16-esn",
                            "AES_GCM_16_128/PRF_HMAC_SHA2_512/ECP_256"}));

TEST_F(EngineTest, PskAuth) {
  PeerConfig pa = Peer("t", kA, kB, P().a), pb = Peer("t", kB, kA, P().b);
  pa.auth = pb.auth = AuthKind::kPsk;
  pa.psk = pb.psk = "correct horse battery staple";
  Load(pa, pb);
  ASSERT_TRUE(a.engine->Initiate("t").ok());
  ASSERT_TRUE(BothUp());
  ExpectKernelAgreement(1);
}

TEST_F(EngineTest, WrongPskRefused) {
  PeerConfig pa = Peer("t", kA, kB, P().a), pb = Peer("t", kB, kA, P().b);
  pa.auth = pb.auth = AuthKind::kPsk;
  pa.psk = "one secret";
  pb.psk = "another secret";
  Load(pa, pb);
  ASSERT_TRUE(a.engine->Initiate("t").ok());
  ASSERT_TRUE(net.RunUntil([&] { return a.Has(EventType::kIkeFailed) && b.Has(EventType::kIkeFailed); }, Duration{10000}));
  EXPECT_EQ(a.Established() + b.Established(), 0u);
  EXPECT_EQ(a.xfrm.sa_count() + b.xfrm.sa_count(), 0u);
  EXPECT_NE(a.Find(EventType::kIkeFailed)->detail.find("AUTHENTICATION_FAILED"), std::string::npos);
}

TEST_F(EngineTest, RsaPssAndP384Certificates) {
  PeerConfig pa = Peer("t", kA, kB, P().a_p384), pb = Peer("t", kB, kA, P().b_rsa);
  Load(pa, pb);
  ASSERT_TRUE(a.engine->Initiate("t").ok());
  ASSERT_TRUE(BothUp());
}

TEST_F(EngineTest, DistinguishedNameAndFqdnIdentities) {
  PeerConfig pa = Peer("t", kA, kB, P().a), pb = Peer("t", kB, kA, P().b);
  pa.local_id = "CN=host-a,O=ipfleet";
  pb.remote_id = "CN=host-a,O=ipfleet";
  pb.local_id = "host-b.example";
  pa.remote_id = "host-b.example";
  Load(pa, pb);
  ASSERT_TRUE(a.engine->Initiate("t").ok());
  ASSERT_TRUE(BothUp());
  EXPECT_EQ(b.engine->ListSas()[0].remote_id, "CN=host-a,O=ipfleet");
  EXPECT_EQ(a.engine->ListSas()[0].remote_id, "host-b.example");
}

struct BadCert {
  const char* name;
  Pem Pki::*cert;
};
class BadCertTest : public EngineTest, public ::testing::WithParamInterface<BadCert> {};

TEST_P(BadCertTest, ResponderCertificateRefusedByInitiator) {
  PeerConfig pa = Peer("t", kA, kB, P().a), pb = Peer("t", kB, kA, P().*GetParam().cert);
  Load(pa, pb);
  ASSERT_TRUE(a.engine->Initiate("t").ok());
  ASSERT_TRUE(net.RunUntil([&] { return a.Has(EventType::kIkeFailed); }, Duration{10000}));
  net.RunFor(Duration{2000});
  EXPECT_EQ(a.Established(), 0u);
  EXPECT_EQ(b.Established(), 0u);  // our DELETE told the responder
  EXPECT_EQ(a.xfrm.sa_count(), 0u);
  EXPECT_EQ(b.xfrm.sa_count(), 0u);
}

TEST_P(BadCertTest, InitiatorCertificateRefusedByResponder) {
  PeerConfig pa = Peer("t", kA, kB, P().*GetParam().cert), pb = Peer("t", kB, kA, P().b);
  pa.local_id = "192.0.2.2";  // the bad certs are issued for host-b's identity
  pb.remote_id = "192.0.2.2";
  Load(pa, pb);
  ASSERT_TRUE(a.engine->Initiate("t").ok());
  ASSERT_TRUE(net.RunUntil([&] { return a.Has(EventType::kIkeFailed) && b.Has(EventType::kIkeFailed); }, Duration{10000}));
  EXPECT_EQ(a.Established() + b.Established(), 0u);
  EXPECT_EQ(a.xfrm.sa_count() + b.xfrm.sa_count(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Certs, BadCertTest,
                         ::testing::Values(BadCert{"UntrustedCa", &Pki::b_rogue}, BadCert{"Revoked", &Pki::b_revoked},
                                           BadCert{"IdNotInSan", &Pki::b_wrong_san}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST_F(EngineTest, InvalidKePayloadRetriesWithRequestedGroup) {
  PeerConfig pa = Peer("t", kA, kB, P().a), pb = Peer("t", kB, kA, P().b);
  pa.ike_proposals = {"aes128gcm16-prfsha256-x25519-ecp256"};  // KE sent for x25519 first
  pb.ike_proposals = {"aes128gcm16-prfsha256-ecp256"};
  Load(pa, pb);
  ASSERT_TRUE(a.engine->Initiate("t").ok());
  ASSERT_TRUE(BothUp());
  EXPECT_EQ(a.engine->ListSas()[0].suite, "AES_GCM_16_128/PRF_HMAC_SHA2_256/ECP_256");
}

TEST_F(EngineTest, NoProposalChosenNamesTheMismatchedTransformTypes) {
  PeerConfig pa = Peer("t", kA, kB, P().a), pb = Peer("t", kB, kA, P().b);
  pa.ike_proposals = {"aes128-sha256-x25519"};
  pb.ike_proposals = {"aes256gcm16-prfsha256-x25519"};
  Load(pa, pb);
  ASSERT_TRUE(a.engine->Initiate("t").ok());
  ASSERT_TRUE(net.RunUntil([&] { return a.Has(EventType::kIkeFailed); }, Duration{10000}));
  EXPECT_NE(a.Find(EventType::kIkeFailed)->detail.find("NO_PROPOSAL_CHOSEN"), std::string::npos);
  const Event* m = b.Find(EventType::kProposalMismatch);
  ASSERT_NE(m, nullptr);
  EXPECT_NE(m->detail.find("no_match=ENCR,INTEG"), std::string::npos) << m->detail;
  EXPECT_EQ(m->detail.find("PRF"), m->detail.find("PRF_HMAC"));  // PRF itself matched
  EXPECT_EQ(a.engine->ListSas().size() + b.engine->ListSas().size(), 0u);
}

TEST_F(EngineTest, EspMismatchKeepsIkeSaButRefusesChild) {
  PeerConfig pa = Peer("t", kA, kB, P().a), pb = Peer("t", kB, kA, P().b);
  pa.children[0].esp_proposals = {"aes128gcm16"};
  pb.children[0].esp_proposals = {"aes256-sha256"};
  Load(pa, pb);
  ASSERT_TRUE(a.engine->Initiate("t").ok());
  ASSERT_TRUE(net.RunUntil([&] { return a.Has(EventType::kChildFailed); }, Duration{10000}));
  EXPECT_EQ(a.Established(), 1u);
  EXPECT_EQ(b.Established(), 1u);
  EXPECT_EQ(a.xfrm.sa_count() + b.xfrm.sa_count(), 0u);
  ASSERT_NE(b.Find(EventType::kProposalMismatch), nullptr);
  EXPECT_NE(b.Find(EventType::kProposalMismatch)->detail.find("no_match=ENCR,INTEG"), std::string::npos);
}

TEST_F(EngineTest, TrafficSelectorsNarrowedAndUnacceptable) {
  PeerConfig pa = Peer("t", kA, kB, P().a), pb = Peer("t", kB, kA, P().b);
  pa.children[0].local_ts = {*TsConfig::Parse("10.1.0.0/16")};
  pa.children[0].remote_ts = {*TsConfig::Parse("10.2.0.0/16")};
  pb.children[0].remote_ts = {*TsConfig::Parse("10.1.5.0/24")};
  pb.children[0].local_ts = {*TsConfig::Parse("10.2.0.0/16")};
  ChildConfig disjoint;
  disjoint.name = "c2";
  disjoint.local_ts = {*TsConfig::Parse("10.9.0.0/16")};
  disjoint.remote_ts = {*TsConfig::Parse("10.8.0.0/16")};
  pa.children.push_back(disjoint);
  Load(pa, pb);
  ASSERT_TRUE(a.engine->Initiate("t").ok());
  ASSERT_TRUE(net.RunUntil([&] { return a.InstalledChildren() == 1 && a.Has(EventType::kChildFailed); }, Duration{10000}));
  auto la = a.engine->ListSas();
  ASSERT_EQ(la[0].children.size(), 1u);
  EXPECT_EQ(la[0].children[0].local_ts, std::vector<std::string>{"10.1.5.0/24"});
  EXPECT_EQ(la[0].children[0].remote_ts, std::vector<std::string>{"10.2.0.0/16"});
  EXPECT_NE(a.Find(EventType::kChildFailed)->detail.find("TS_UNACCEPTABLE"), std::string::npos);
  // The narrowed selectors reach the kernel policies.
  bool narrowed = false;
  auto policies = *a.xfrm.DumpPolicies();
  for (const auto& p : policies)
    if (p.params.dir == kernel::Direction::kOut && p.params.selector.src.ToString() == "10.1.5.0/24") narrowed = true;
  EXPECT_TRUE(narrowed);
}

TEST_F(EngineTest, TransportModeAndAdditionalChildViaCreateChildSa) {
  PeerConfig pa = Peer("t", kA, kB, P().a), pb = Peer("t", kB, kA, P().b);
  pa.children[0].mode = pb.children[0].mode = kernel::Mode::kTransport;
  pa.children[0].local_ts = pb.children[0].remote_ts = {};
  pa.children[0].remote_ts = pb.children[0].local_ts = {};
  ChildConfig second;
  second.name = "c2";
  second.local_ts = {*TsConfig::Parse("10.1.0.0/16")};
  second.remote_ts = {*TsConfig::Parse("10.2.0.0/16")};
  second.esp_proposals = {"aes256-sha512"};
  pa.children.push_back(second);
  std::swap(second.local_ts, second.remote_ts);
  pb.children.push_back(second);
  Load(pa, pb);
  ASSERT_TRUE(a.engine->Initiate("t").ok());
  ASSERT_TRUE(BothUp(2));
  auto la = a.engine->ListSas();
  ASSERT_EQ(la[0].children.size(), 2u);
  EXPECT_EQ(la[0].children[0].mode, kernel::Mode::kTransport);
  EXPECT_EQ(la[0].children[0].local_ts, std::vector<std::string>{"192.0.2.1/32"});
  EXPECT_EQ(la[0].children[1].mode, kernel::Mode::kTunnel);
  EXPECT_EQ(la[0].children[1].suite, "AES_CBC_256/HMAC_SHA2_512_256/NO_ESN");
  ExpectKernelAgreement(2);
}

TEST_F(EngineTest, DeleteChildThenIkeFromEitherSide) {
  PeerConfig pa = Peer("t", kA, kB, P().a), pb = Peer("t", kB, kA, P().b);
  Load(pa, pb);
  ASSERT_TRUE(a.engine->Initiate("t").ok());
  ASSERT_TRUE(BothUp());
  uint64_t child = b.engine->ListSas()[0].children[0].id;
  ASSERT_TRUE(b.engine->DeleteChild(child).ok());  // the responder deletes the CHILD_SA
  ASSERT_TRUE(net.RunUntil([&] { return a.InstalledChildren() == 0 && b.engine->ListSas()[0].children.empty(); },
                           Duration{5000}));
  EXPECT_EQ(a.xfrm.sa_count() + b.xfrm.sa_count(), 0u);
  EXPECT_EQ(a.xfrm.policy_count() + b.xfrm.policy_count(), 0u);
  EXPECT_EQ(a.Established(), 1u);
  ASSERT_TRUE(b.engine->DeleteIke(b.engine->ListSas()[0].id).ok());
  ASSERT_TRUE(net.RunUntil([&] { return a.engine->ListSas().empty() && b.engine->ListSas().empty(); }, Duration{5000}));
  EXPECT_TRUE(a.Has(EventType::kIkeDeleted));
}

TEST_F(EngineTest, InitiatorDeletesIkeSaAndKernelStateGoes) {
  PeerConfig pa = Peer("t", kA, kB, P().a), pb = Peer("t", kB, kA, P().b);
  Load(pa, pb);
  auto id = a.engine->Initiate("t");
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(BothUp());
  ASSERT_EQ(a.xfrm.sa_count(), 2u);
  ASSERT_TRUE(a.engine->Flush("t").ok());
  ASSERT_TRUE(net.RunUntil([&] { return a.engine->ListSas().empty() && b.engine->ListSas().empty(); }, Duration{5000}));
  EXPECT_EQ(a.xfrm.sa_count() + b.xfrm.sa_count(), 0u);
  EXPECT_EQ(a.xfrm.policy_count() + b.xfrm.policy_count(), 0u);
  EXPECT_TRUE(b.Has(EventType::kIkeDeleted));
}

TEST_F(EngineTest, LivenessFailureDetectedAfterBoundedRetransmissions) {
  PeerConfig pa = Peer("t", kA, kB, P().a), pb = Peer("t", kB, kA, P().b);
  pa.dpd_interval = Duration{5000};
  Load(pa, pb, Duration{500});
  ASSERT_TRUE(a.engine->Initiate("t").ok());
  ASSERT_TRUE(BothUp());
  // Liveness checks pass while the peer answers.
  net.RunFor(Duration{20000});
  EXPECT_FALSE(a.Has(EventType::kLivenessFailed));
  EXPECT_GE(b.engine->stats().datagrams_in, 4u);
  // The peer vanishes (its host crashed): every datagram to it is lost.
  net.SetFilter([](const Endpoint&, const Endpoint& to, const Bytes&) { return to.addr == kB; });
  TimePoint t0 = clock.Now();
  ASSERT_TRUE(net.RunUntil([&] { return a.Has(EventType::kLivenessFailed); }, Duration{120000}));
  auto took = clock.Now() - t0;
  // Up to 5 s until the check is due, then 0.5+1+2+4+8+16 s: first send and 5 retransmissions.
  EXPECT_GE(took, std::chrono::milliseconds(31500));
  EXPECT_LE(took, std::chrono::milliseconds(36500));
  EXPECT_EQ(a.xfrm.sa_count(), 0u);
  EXPECT_TRUE(a.engine->ListSas().empty());
}

TEST_F(EngineTest, DpdRestartReestablishes) {
  PeerConfig pa = Peer("t", kA, kB, P().a), pb = Peer("t", kB, kA, P().b);
  pa.dpd_interval = Duration{2000};
  pa.dpd_action = DpdAction::kRestart;
  Load(pa, pb, Duration{200});
  ASSERT_TRUE(a.engine->Initiate("t").ok());
  ASSERT_TRUE(BothUp());
  net.SetFilter([](const Endpoint&, const Endpoint& to, const Bytes&) { return to.addr == kB; });
  ASSERT_TRUE(net.RunUntil([&] { return a.Has(EventType::kLivenessFailed); }, Duration{60000}));
  net.SetFilter(nullptr);
  ASSERT_TRUE(net.RunUntil([&] { return a.Count(EventType::kIkeEstablished) == 2; }, Duration{60000}));
  // The responder got INITIAL_CONTACT and dropped the old SA: one IKE_SA each side.
  ASSERT_TRUE(net.RunUntil([&] { return b.engine->ListSas().size() == 1; }, Duration{5000}));
  EXPECT_EQ(b.xfrm.sa_count(), 2u);
}

TEST_F(EngineTest, RetransmittedRequestAnsweredFromCache) {
  PeerConfig pa = Peer("t", kA, kB, P().a), pb = Peer("t", kB, kA, P().b);
  Load(pa, pb);
  // Lose the responder's first IKE_AUTH response (the second datagram it sends).
  int from_b = 0;
  net.SetFilter([&](const Endpoint& from, const Endpoint&, const Bytes&) { return from.addr == kB && ++from_b == 2; });
  ASSERT_TRUE(a.engine->Initiate("t").ok());
  ASSERT_TRUE(BothUp());
  EXPECT_GE(a.engine->stats().retransmits, 1u);
  EXPECT_GE(b.engine->stats().retransmits_answered, 1u);
  EXPECT_EQ(b.Count(EventType::kChildInstalled), 1);  // processed once
  ExpectKernelAgreement(1);
}

TEST_F(EngineTest, EstablishesOverLossyDuplicatingReorderingNetwork) {
  PeerConfig pa = Peer("t", kA, kB, P().a), pb = Peer("t", kB, kA, P().b);
  ChildConfig second;
  second.name = "c2";
  second.local_ts = {*TsConfig::Parse("10.1.0.0/16")};
  second.remote_ts = {*TsConfig::Parse("10.2.0.0/16")};
  pa.children.push_back(second);
  std::swap(second.local_ts, second.remote_ts);
  pb.children.push_back(second);
  Load(pa, pb, Duration{300});
  net.SetImpairment({0.25, 0.3, 0.3, Duration{5}, Duration{400}});
  ASSERT_TRUE(a.engine->Initiate("t").ok());
  ASSERT_TRUE(BothUp(2));
  ExpectKernelAgreement(2);
  EXPECT_EQ(b.Count(EventType::kChildInstalled), 2);
}

TEST_F(EngineTest, AcquireStartsNegotiationForTrapPolicy) {
  PeerConfig pa = Peer("t", kA, kB, P().a), pb = Peer("t", kB, kA, P().b);
  pa.children[0].start_action = StartAction::kTrap;
  Load(pa, pb);
  EXPECT_EQ(a.xfrm.policy_count(), 3u);  // trap policies in place, no SA
  EXPECT_EQ(a.xfrm.sa_count(), 0u);
  ASSERT_TRUE(a.xfrm.Subscribe([&](const kernel::XfrmEvent& e) { a.engine->OnKernelEvent(e); }).ok());
  auto pol = *a.xfrm.DumpPolicies();
  kernel::AcquireEvent acq;
  acq.selector = kernel::Selector{kernel::IpPrefix::MustParse("198.51.100.1/32"), kernel::IpPrefix::MustParse("198.51.100.2/32")};
  acq.templ = pol[0].params.templates[0];
  a.xfrm.InjectEvent(acq);
  ASSERT_TRUE(a.xfrm.Dispatch().ok());
  ASSERT_TRUE(BothUp());
  // After a delete the trap policies stay, so the next packet triggers again.
  ASSERT_TRUE(a.engine->Flush("").ok());
  ASSERT_TRUE(net.RunUntil([&] { return a.engine->ListSas().empty(); }, Duration{5000}));
  EXPECT_EQ(a.xfrm.policy_count(), 3u);
  EXPECT_EQ(a.xfrm.sa_count(), 0u);
}

// flush-sa / CHILD_SA repair: the deleted child is renegotiated on the same IKE_SA with one
// CREATE_CHILD_SA (the DELETE and the CREATE_CHILD_SA exchanges: 4 datagrams, no IKE_SA_INIT).
TEST_F(EngineTest, InitiateChildrenRenegotiatesOnTheSameIkeSa) {
  PeerConfig pa = Peer("t", kA, kB, P().a), pb = Peer("t", kB, kA, P().b);
  Load(pa, pb);
  ASSERT_TRUE(a.engine->Initiate("t").ok());
  ASSERT_TRUE(BothUp());
  const auto before = a.engine->ListSas().at(0);
  size_t datagrams = 0, ike_sa_init = 0;
  net.SetTap([&](const Endpoint&, const Endpoint&, const Bytes& d) {
    ++datagrams;
    if (auto m = DecodeMessage(d); m.ok() && m->header.exchange == ExchangeType::kIkeSaInit) ++ike_sa_init;
  });
  ASSERT_TRUE(a.engine->DeleteChild(before.children.at(0).id).ok());
  ASSERT_TRUE(a.engine->InitiateChildren("t").ok());
  ASSERT_TRUE(a.engine->InitiateChildren("t").ok());  // idempotent: the child is already queued
  ASSERT_TRUE(net.RunUntil(
      [&] {
        auto sas = a.engine->ListSas();
        return sas.size() == 1 && sas[0].children.size() == 1 && sas[0].children[0].state == ChildState::kInstalled &&
               sas[0].children[0].spi_in != before.children[0].spi_in && b.InstalledChildren() == 1;
      },
      Duration{10000}));
  const auto after = a.engine->ListSas().at(0);
  EXPECT_EQ(after.spi_i, before.spi_i);
  EXPECT_EQ(after.spi_r, before.spi_r);
  EXPECT_EQ(ike_sa_init, 0u);
  EXPECT_EQ(datagrams, 4u);
  ExpectKernelAgreement(1);
  // Without an IKE_SA it starts one.
  ASSERT_TRUE(a.engine->Flush("t").ok());
  ASSERT_TRUE(net.RunUntil([&] { return a.engine->ListSas().empty() && b.engine->ListSas().empty(); }, Duration{5000}));
  ASSERT_TRUE(a.engine->InitiateChildren("t").ok());
  ASSERT_TRUE(BothUp());
  EXPECT_GT(ike_sa_init, 0u);
  EXPECT_TRUE(absl::IsNotFound(a.engine->InitiateChildren("nope")));
}

// Fail-closed: a trapped tunnel's policies outlive its CHILD_SAs (no clear-text gap while one is
// renegotiated) and go with the tunnel when a new config no longer has it.
TEST_F(EngineTest, TrapPoliciesOutliveChildrenAndGoWithTheTunnel) {
  PeerConfig pa = Peer("t", kA, kB, P().a), pb = Peer("t", kB, kA, P().b);
  pa.children[0].start_action = StartAction::kTrap;
  Load(pa, pb);
  ASSERT_TRUE(a.engine->Initiate("t").ok());
  ASSERT_TRUE(BothUp());
  EXPECT_EQ(a.xfrm.policy_count(), 3u);
  ASSERT_TRUE(a.engine->DeleteChild(a.engine->ListSas().at(0).children.at(0).id).ok());
  ASSERT_TRUE(net.RunUntil([&] { return a.InstalledChildren() == 0 && a.xfrm.sa_count() == 0; }, Duration{5000}));
  EXPECT_EQ(a.xfrm.policy_count(), 3u) << "the trap policies went with the CHILD_SA";
  EXPECT_EQ(b.xfrm.policy_count(), 0u) << "an untrapped tunnel keeps no policies without a CHILD_SA";
  // A config without the tunnel removes its traps once no CHILD_SA uses them.
  ASSERT_TRUE(a.engine->InitiateChildren("t").ok());
  ASSERT_TRUE(BothUp());
  ASSERT_TRUE(a.engine->Flush("t").ok());
  IkeConfig empty;
  ASSERT_TRUE(a.engine->Load(empty).ok());
  EXPECT_EQ(a.xfrm.policy_count(), 3u) << "policies of a CHILD_SA still being deleted were removed early";
  ASSERT_TRUE(net.RunUntil([&] { return a.engine->ListSas().empty(); }, Duration{5000}));
  EXPECT_EQ(a.xfrm.policy_count(), 0u);
  EXPECT_EQ(a.xfrm.sa_count(), 0u);
}

TEST_F(EngineTest, StartActionStartInitiatesAtLoad) {
  PeerConfig pa = Peer("t", kA, kB, P().a), pb = Peer("t", kB, kA, P().b);
  pa.children[0].start_action = StartAction::kStart;
  Load(pa, pb);
  ASSERT_TRUE(BothUp());
}

// A reload, or a peer that brought the tunnel up first, must not start a second IKE_SA.
TEST_F(EngineTest, ReloadDoesNotStartASecondIkeSa) {
  PeerConfig pa = Peer("t", kA, kB, P().a), pb = Peer("t", kB, kA, P().b);
  pb.children[0].start_action = StartAction::kStart;
  Load(pa, pb);
  ASSERT_TRUE(BothUp());  // b started it
  pa.children[0].start_action = StartAction::kStart;
  IkeConfig ca, cb;
  ca.peers = {pa};
  cb.peers = {pb};
  ASSERT_TRUE(a.engine->Load(ca).ok());  // a is now start-at-load too, and a responder of b's IKE_SA
  ASSERT_TRUE(b.engine->Load(cb).ok());  // b reloads unchanged
  net.RunFor(Duration{5000});
  EXPECT_EQ(a.engine->ListSas().size(), 1u);
  EXPECT_EQ(b.engine->ListSas().size(), 1u);
  EXPECT_TRUE(BothUp());
}

TEST_F(EngineTest, UnknownSpiRequestGetsInvalidIkeSpi) {
  PeerConfig pa = Peer("t", kA, kB, P().a), pb = Peer("t", kB, kA, P().b);
  Load(pa, pb);
  Bytes reply;
  net.SetTap([&](const Endpoint& from, const Endpoint&, const Bytes& d) {
    if (from.addr == kB) reply = d;
  });
  Message m;
  m.header.spi_i = 0x1111;
  m.header.spi_r = 0x2222;
  m.header.exchange = ExchangeType::kInformational;
  m.header.flags = kFlagInitiator;
  m.header.message_id = 5;
  m.payloads.push_back({PayloadType::kSk, false, SkPayload{PayloadType::kNone, Bytes(40, 0)}});
  Bytes req = EncodeMessage(m);
  b.engine->OnDatagram(Endpoint{kB, 500}, Endpoint{kA, 500}, req);
  auto r = DecodeMessage(reply);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->header.is_response());
  EXPECT_EQ(r->header.message_id, 5u);
  EXPECT_EQ(r->header.spi_i, 0x1111u);
  ASSERT_NE(r->FindNotify(NotifyType::kInvalidIkeSpi), nullptr);
  // A response with an unknown SPI is never answered.
  reply.clear();
  m.header.flags = kFlagResponse;
  b.engine->OnDatagram(Endpoint{kB, 500}, Endpoint{kA, 500}, EncodeMessage(m));
  EXPECT_TRUE(reply.empty());
}

TEST_F(EngineTest, TamperedMessagesAreIgnored) {
  PeerConfig pa = Peer("t", kA, kB, P().a), pb = Peer("t", kB, kA, P().b);
  Load(pa, pb);
  // A forged INFORMATIONAL DELETE with the right SPIs but garbage ciphertext must be dropped
  // (ICV check) and must not delete anything.
  ASSERT_TRUE(a.engine->Initiate("t").ok());
  ASSERT_TRUE(BothUp());
  auto la = a.engine->ListSas();
  Message m;
  m.header.spi_i = la[0].spi_i;
  m.header.spi_r = la[0].spi_r;
  m.header.exchange = ExchangeType::kInformational;
  m.header.flags = kFlagInitiator;
  m.header.message_id = 2;  // the next request B expects
  m.payloads.push_back({PayloadType::kSk, false, SkPayload{PayloadType::kDelete, Bytes(60, 0x55)}});
  b.engine->OnDatagram(Endpoint{kB, 500}, Endpoint{kA, 500}, EncodeMessage(m));
  EXPECT_EQ(b.Established(), 1u);
  EXPECT_GE(b.engine->stats().dropped, 1u);
}

// Tunnels with identical credential inputs share one parsed Credentials; any differing input, a CRL
// included, gets its own; a failed load is reported and not remembered.
TEST(CredentialsCacheTest, SharesIdenticalInputsOnly) {
  Pem ca = MakeCa("cache-ca");
  Pem host = IssueCert(ca, "host-a", {"DNS:host-a.example"}, 2);
  PeerConfig a;
  a.name = "t1";
  a.cert_pem = host.cert;
  a.key_pem = host.key;
  a.ca_pems = {ca.cert};
  PeerConfig b = a;
  b.name = "t2";
  PeerConfig with_crl = a;
  with_crl.crl_pems = {MakeCrl(ca, {7})};
  PeerConfig psk = a;
  psk.auth = AuthKind::kPsk;
  psk.psk = "0123456789abcdef0123456789abcdef";
  PeerConfig bad = a;
  bad.key_pem = IssueCert(ca, "other", {}, 3).key;  // does not match the certificate

  CredentialsCache cache;
  auto ca1 = cache.Get(a), cb = cache.Get(b), cc = cache.Get(with_crl), cp = cache.Get(psk);
  ASSERT_TRUE(ca1.ok() && cb.ok() && cc.ok() && cp.ok());
  EXPECT_EQ(ca1->get(), cb->get());
  EXPECT_NE(ca1->get(), cc->get());
  EXPECT_TRUE((*cc)->crl_check);
  EXPECT_NE(ca1->get(), cp->get());
  EXPECT_FALSE(cache.Get(bad).ok());
  EXPECT_FALSE(cache.Get(bad).ok());  // still refused: a failure is not cached as success
}

}  // namespace
}  // namespace ipfleet::ike
