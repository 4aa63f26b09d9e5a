// Self-test of the interop harness: charon against charon in two namespaces. Proves that the topology,
// charon's configuration (kernel-libipsec, kdf, private /run), swanctl loading, the --list-sas parser and the
// tshark wire check all work before they are used to judge our engine — and that each judge can fail.
#include <gtest/gtest.h>

#include "harness/charon.h"
#include "harness/netns.h"
#include "harness/pki.h"
#include "harness/swanctl.h"
#include "harness/test_util.h"
#include "harness/wire_check.h"
#include "harness/workdir.h"

namespace ipfleet::interop {
namespace {

using namespace std::chrono_literals;


constexpr const char* kPsk = "interop-selftest-psk-5c1e2b7f";

struct Suite {
  const char* name;
  const char* ike;
  const char* esp;
  const char* encr_alg;
  const char* integ_alg;  // "" for AEAD
  const char* dh_group;
};
const Suite kGcm = {"gcm_x25519", "aes128gcm16-prfsha256-x25519", "aes128gcm16", "AES_GCM_16", "", "CURVE_25519"};
const Suite kCbc = {"cbc_modp2048", "aes128-sha256-modp2048", "aes128-sha256", "AES_CBC", "HMAC_SHA2_256_128",
                    "MODP_2048"};

class CharonPair : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!HaveRoot()) GTEST_SKIP() << "interop tests need root (network namespaces)";
    std::string why;
    if (!CharonAvailable(&why)) GTEST_SKIP() << why;
    ASSERT_TRUE(work_.ok());
    auto net = NetnsPair::Create();
    ASSERT_OK(net.status());
    net_ = *std::move(net);
    auto a = Charon::Start({.netns = net_->a().ns, .dir = work_.path() / "a"});
    ASSERT_OK(a.status());
    a_ = *std::move(a);
    auto b = Charon::Start({.netns = net_->b().ns, .dir = work_.path() / "b"});
    ASSERT_OK(b.status());
    b_ = *std::move(b);
  }
  void TearDown() override {
    if (HasFailure()) {
      work_.Keep();
      std::cerr << "interop workdir kept: " << work_.path() << "\n";
    }
    a_.reset();
    b_.reset();
    net_.reset();
  }

  SwanctlConn Conn(const NetnsSide& me, const NetnsSide& peer, const Suite& s, bool psk) {
    SwanctlConn c;
    c.local_addr = me.addr;
    c.remote_addr = peer.addr;
    c.ike_proposals = s.ike;
    c.esp_proposals = s.esp;
    c.psk = psk;
    c.local_id = me.ns == net_->a().ns ? "host1.example" : "host2.example";
    c.remote_id = me.ns == net_->a().ns ? "host2.example" : "host1.example";
    c.local_cert = me.ns == net_->a().ns ? "host1.crt" : "host2.crt";
    c.local_ts = me.subnet + "/32";
    c.remote_ts = peer.subnet + "/32";
    return c;
  }

  // Loads both sides; with certificates from our CA (or the openssl fallback when it is not built).
  void LoadBoth(const Suite& s, bool psk, SwanctlConn* a_override = nullptr) {
    SwanctlSecrets secrets;
    CharonCreds ca, cb;
    if (psk) {
      secrets = {{"host1.example", "host2.example"}, kPsk};
    } else {
      auto pki = MakePki(work_.path() / "pki",
                         {{"host1", net_->a().addr, "host1.example"}, {"host2", net_->b().addr, "host2.example"}},
                         ConfiguredController());
      ASSERT_OK(pki.status());
      std::cerr << "certificates issued by " << pki->issuer << "\n";
      ca = {{pki->hosts[0].cert}, {pki->ca_cert}, {pki->hosts[0].key}, {}};
      cb = {{pki->hosts[1].cert}, {pki->ca_cert}, {pki->hosts[1].key}, {}};
    }
    SwanctlConn conn_a = a_override ? *a_override : Conn(net_->a(), net_->b(), s, psk);
    ASSERT_OK(a_->Load(RenderSwanctlConf({conn_a}, secrets), ca));
    ASSERT_OK(b_->Load(RenderSwanctlConf({Conn(net_->b(), net_->a(), s, psk)}, secrets), cb));
  }

  WorkDir work_{"selftest"};
  std::unique_ptr<NetnsPair> net_;
  std::unique_ptr<Charon> a_, b_;
};

void ExpectSa(const IkeSaView& sa, const Suite& s, bool initiator, const NetnsSide& me, const NetnsSide& peer) {
  EXPECT_EQ(sa.state, "ESTABLISHED");
  EXPECT_EQ(sa.initiator, initiator ? "yes" : "");
  EXPECT_EQ(sa.encr_alg, s.encr_alg);
  EXPECT_EQ(sa.encr_keysize, "128");
  EXPECT_EQ(sa.integ_alg, s.integ_alg);
  EXPECT_EQ(sa.prf_alg, "PRF_HMAC_SHA2_256");
  EXPECT_EQ(sa.dh_group, s.dh_group);
  EXPECT_EQ(sa.local_host, me.addr);
  EXPECT_EQ(sa.remote_host, peer.addr);
  ASSERT_EQ(sa.children.size(), 1u);
  const ChildSaView& c = sa.children[0];
  EXPECT_EQ(c.state, "INSTALLED");
  EXPECT_EQ(c.mode, "TUNNEL");
  EXPECT_EQ(c.protocol, "ESP");
  EXPECT_EQ(c.encr_alg, s.encr_alg);
  EXPECT_EQ(c.local_ts, std::vector<std::string>{me.subnet + "/32"});
  EXPECT_EQ(c.remote_ts, std::vector<std::string>{peer.subnet + "/32"});
}

struct Case {
  const Suite* suite;
  bool psk;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.suite->name << (c.psk ? "_psk" : "_cert"); }

class CharonPairEstablish : public CharonPair, public ::testing::WithParamInterface<Case> {};

// IKE_SA and CHILD_SA up on both sides as each charon reports it; then a DELETE sent by the responder
// removes them on both sides.
TEST_P(CharonPairEstablish, EstablishAndDeleteFromResponder) {
  const Case& p = GetParam();
  LoadBoth(*p.suite, p.psk);
  if (HasFatalFailure()) return;
  ASSERT_OK(a_->Initiate("c"));
  std::string view;
  auto sa_a = a_->WaitSas(OneEstablished, 5s, &view);
  ASSERT_OK(sa_a.status()) << a_->LogLines({"[IKE]", "[CFG]"});
  auto sa_b = b_->WaitSas(OneEstablished, 5s, &view);
  ASSERT_OK(sa_b.status()) << b_->LogLines({"[IKE]", "[CFG]"});
  ExpectSa((*sa_a)[0], *p.suite, true, net_->a(), net_->b());
  ExpectSa((*sa_b)[0], *p.suite, false, net_->b(), net_->a());
  // Both ends agree on the SPIs: the same IKE_SA, and each CHILD_SA's inbound SPI is the peer's outbound.
  EXPECT_EQ((*sa_a)[0].initiator_spi, (*sa_b)[0].initiator_spi);
  EXPECT_EQ((*sa_a)[0].responder_spi, (*sa_b)[0].responder_spi);
  EXPECT_EQ((*sa_a)[0].children[0].spi_in, (*sa_b)[0].children[0].spi_out);
  EXPECT_EQ((*sa_a)[0].children[0].spi_out, (*sa_b)[0].children[0].spi_in);
  if (p.psk) {
    EXPECT_EQ((*sa_a)[0].remote_id, "host2.example");
  } else {
    EXPECT_NE(a_->Log().find("authentication of 'host2.example' with ECDSA"), std::string::npos)
        << a_->LogLines({"authentication of"});
  }

  ASSERT_OK(b_->TerminateIke("t"));
  ASSERT_OK(b_->WaitSas(NoSas, 5s).status());
  ASSERT_OK(a_->WaitSas(NoSas, 5s).status()) << a_->LogLines({"[IKE]"});
}

INSTANTIATE_TEST_SUITE_P(Suites, CharonPairEstablish,
                         ::testing::Values(Case{&kGcm, true}, Case{&kGcm, false}, Case{&kCbc, true},
                                           Case{&kCbc, false}),
                         [](const auto& info) {
                           return std::string(info.param.suite->name) + (info.param.psk ? "_psk" : "_cert");
                         });

// The judge can fail: mismatched proposals leave no SA on either side and charon says why.
TEST_F(CharonPair, ProposalMismatchEstablishesNothing) {
  SwanctlConn bad = Conn(net_->a(), net_->b(), kGcm, true);
  bad.ike_proposals = "aes256-sha384-ecp384";
  LoadBoth(kGcm, true, &bad);
  if (HasFatalFailure()) return;
  EXPECT_FALSE(a_->Initiate("c", 5s).ok());
  auto sas = b_->ListSas();
  ASSERT_OK(sas.status());
  EXPECT_TRUE(sas->empty()) << Describe(*sas);
  EXPECT_NE(b_->Log().find("received proposals unacceptable"), std::string::npos) << b_->LogLines({"[IKE]", "[CFG]"});
  EXPECT_NE(a_->Log().find("NO_PROPOSAL_CHOSEN"), std::string::npos) << a_->LogLines({"[IKE]", "[ENC]"});
}

// Liveness: with DPD on, charon notices a dead peer (SIGKILLed) within bounded retransmissions.
TEST_F(CharonPair, DeadPeerDetected) {
  SwanctlConn conn = Conn(net_->a(), net_->b(), kGcm, true);
  conn.dpd_delay_s = 1;
  LoadBoth(kGcm, true, &conn);
  if (HasFatalFailure()) return;
  ASSERT_OK(a_->Initiate("c"));
  ASSERT_OK(b_->WaitSas(OneEstablished, 5s).status());
  b_->Kill();  // SIGKILL: a vanished peer that sends no DELETE
  ASSERT_OK(a_->WaitSas(NoSas, 15s).status());
  EXPECT_NE(a_->Log().find("giving up after"), std::string::npos) << a_->LogLines({"[IKE]", "[NET]"});
}

// The wire check passes charon's own exchange (IKE_SA_INIT, IKE_AUTH on 4500, INFORMATIONAL) ...
TEST_F(CharonPair, WireCheckCleanOnCharonTraffic) {
  if (!TsharkAvailable()) GTEST_SKIP() << "tshark missing";
  LoadBoth(kGcm, false);
  if (HasFatalFailure()) return;
  auto cap = Capture::Start(net_->a().ns, net_->a().veth, net_->b().addr, work_.path() / "charon.pcapng");
  ASSERT_OK(cap.status());
  ASSERT_OK(a_->Initiate("c"));
  ASSERT_OK(a_->TerminateIke("t"));
  ASSERT_OK(b_->WaitSas(NoSas, 5s).status());
  ASSERT_OK((*cap)->Stop());
  auto rep = AnalyzeIke((*cap)->pcap());
  ASSERT_OK(rep.status());
  EXPECT_TRUE(rep->Clean()) << rep->ToString();
  EXPECT_GE(rep->ike_packets, 6) << rep->ToString();  // INIT, AUTH, DELETE, each request+response
  std::string all;
  for (const auto& l : rep->summary) all += l + "\n";
  EXPECT_NE(all.find("IKE_SA_INIT MID=00 Initiator Request"), std::string::npos) << all;
  EXPECT_NE(all.find("IKE_AUTH MID=01 Responder Response"), std::string::npos) << all;
  EXPECT_NE(all.find("INFORMATIONAL MID=02"), std::string::npos) << all;
}

// ... and flags a malformed IKE message (a truncated SA payload sent to charon's port 500).
TEST_F(CharonPair, WireCheckFlagsMalformedPacket) {
  if (!TsharkAvailable()) GTEST_SKIP() << "tshark missing";
  auto cap = Capture::Start(net_->a().ns, net_->a().veth, net_->b().addr, work_.path() / "bad.pcapng");
  ASSERT_OK(cap.status());
  // IKE header claiming an SA payload of 0x30 bytes where only 4 follow.
  const char* bad =
      "printf '\\x11\\x22\\x33\\x44\\x55\\x66\\x77\\x88\\0\\0\\0\\0\\0\\0\\0\\0\\x21\\x20\\x22\\x08\\0\\0\\0\\0"
      "\\0\\0\\0\\x20\\x22\\0\\0\\x30' > /dev/udp/192.0.2.2/500";
  ASSERT_OK(RunOk(NetnsPair::Exec(net_->a().ns, {"bash", "-c", bad})).status());
  ASSERT_OK((*cap)->Stop());
  auto rep = AnalyzeIke((*cap)->pcap());
  ASSERT_OK(rep.status());
  EXPECT_FALSE(rep->Clean()) << rep->ToString();
  EXPECT_GE(rep->malformed, 1) << rep->ToString();
}

TEST(SwanctlParse, PrettyListSas) {
  const char* text = R"(list-sa event {
  t {
    uniqueid = 1
    state = ESTABLISHED
    local-id = O=ipfleet, CN=host1
    initiator = yes
    child-sas {
      c-1 {
        name = c
        state = INSTALLED
        local-ts = [
          198.51.100.1/32
          198.51.100.9/32
        ]
      }
    }
  }
}
list-sas reply {
}
)";
  auto sas = ParseListSas(text);
  ASSERT_OK(sas.status());
  ASSERT_EQ(sas->size(), 1u);
  EXPECT_EQ((*sas)[0].local_id, "O=ipfleet, CN=host1");
  EXPECT_EQ((*sas)[0].initiator, "yes");
  ASSERT_EQ((*sas)[0].children.size(), 1u);
  EXPECT_EQ((*sas)[0].children[0].state, "INSTALLED");
  EXPECT_EQ((*sas)[0].children[0].local_ts.size(), 2u);
  EXPECT_TRUE(OneEstablished(*sas));
  EXPECT_FALSE(ParseListSas("garbage line\n").ok());
}

}  // namespace
}  // namespace ipfleet::interop
