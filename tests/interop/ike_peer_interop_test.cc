// Interop of our IKEv2 engine (ipfleet-ike-peer, namespace a, 192.0.2.1) with strongSwan's charon
// (namespace b, 192.0.2.2, kernel-libipsec). Both roles, both proposal sets, certificates from our CA and
// PSK, DELETE from either side, liveness both ways, proposal errors, and the tshark wire check. Every test
// asserts on charon's own view (swanctl --list-sas) and on ours (the peer tool's status file).
#include <signal.h>

#include <gtest/gtest.h>

#include <absl/strings/match.h>
#include <absl/strings/str_split.h>

#include "harness/charon.h"
#include "harness/ike_peer.h"
#include "harness/netns.h"
#include "harness/pki.h"
#include "harness/swanctl.h"
#include "harness/test_util.h"
#include "harness/wire_check.h"
#include "harness/workdir.h"

namespace ipfleet::interop {
namespace {

using namespace std::chrono_literals;

constexpr const char* kPsk = "interop-engine-psk-9f3a71c2d4";
constexpr const char* kOurId = "host1.example";
constexpr const char* kCharonId = "host2.example";

struct Suite {
  const char* name;
  const char* ike;
  const char* esp;
  const char* encr_alg;   // charon's names
  const char* integ_alg;  // "" for AEAD
  const char* dh_group;
};
const Suite kGcm = {"gcm_x25519", "aes128gcm16-prfsha256-x25519", "aes128gcm16", "AES_GCM_16", "", "CURVE_25519"};
const Suite kCbc = {"cbc_modp2048", "aes128-sha256-modp2048", "aes128-sha256", "AES_CBC", "HMAC_SHA2_256_128",
                    "MODP_2048"};

size_t Count(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (size_t p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) ++n;
  return n;
}

class EngineInterop : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!HaveRoot()) GTEST_SKIP() << "interop tests need root (network namespaces)";
    std::string why;
    if (!CharonAvailable(&why)) GTEST_SKIP() << why;
    peer_bin_ = ConfiguredIkePeer();
    if (peer_bin_.empty()) GTEST_SKIP() << "ipfleet-ike-peer not built (agent/ike/tools)";
    ASSERT_TRUE(work_.ok());
    auto net = NetnsPair::Create();
    ASSERT_OK(net);
    net_ = *std::move(net);
    auto charon = Charon::Start({.netns = net_->b().ns, .dir = work_.path() / "charon"});
    ASSERT_OK(charon);
    charon_ = *std::move(charon);
  }

  void TearDown() override {
    if (HasFailure()) {
      work_.Keep();
      std::cerr << "interop workdir kept: " << work_.path() << "\n";
      if (ours_) std::cerr << "our log tail:" << ours_->LogTail(40) << "\n";
      if (charon_) std::cerr << "charon log:" << charon_->LogLines({"[IKE]", "[ENC]", "[CFG]", "[NET]"}, 60) << "\n";
    }
    ours_.reset();
    charon_.reset();
    net_.reset();
  }

  void MakeCerts() {
    if (pki_) return;
    auto pki = MakePki(work_.path() / "pki",
                       {{"host1", net_->a().addr, kOurId}, {"host2", net_->b().addr, kCharonId}},
                       ConfiguredController());
    ASSERT_OK(pki);
    pki_ = std::make_unique<Pki>(*std::move(pki));
    if (pki_->issuer != "ipfleet-controller") {
      std::cerr << "WARNING: certificates from the openssl CLI fallback, ipfleet-controller not built\n";
    }
  }

  SwanctlConn CharonConn(const Suite& s, bool psk) {
    SwanctlConn c;
    c.local_addr = net_->b().addr;
    c.remote_addr = net_->a().addr;
    c.ike_proposals = s.ike;
    c.esp_proposals = s.esp;
    c.psk = psk;
    c.local_id = kCharonId;
    c.remote_id = kOurId;
    c.local_cert = "host2.crt";
    c.local_ts = net_->b().subnet + "/32";
    c.remote_ts = net_->a().subnet + "/32";
    return c;
  }

  IkePeerTunnel OurTunnel(const Suite& s, bool psk) {
    IkePeerTunnel t;
    t.local = net_->a().addr;
    t.remote = net_->b().addr;
    t.local_id = kOurId;
    t.remote_id = kCharonId;
    t.psk = psk;
    t.psk_secret = kPsk;
    if (!psk) {
      t.cert = pki_->hosts[0].cert;
      t.key = pki_->hosts[0].key;
      t.ca = pki_->ca_cert;
    }
    t.ike_proposal = s.ike;
    t.esp_proposal = s.esp;
    t.local_ts = net_->a().subnet + "/32";
    t.remote_ts = net_->b().subnet + "/32";
    return t;
  }

  void LoadCharon(const SwanctlConn& conn, const std::string& psk = kPsk) {
    SwanctlSecrets secrets;
    CharonCreds creds;
    if (conn.psk) {
      secrets = {{kOurId, kCharonId}, psk};
    } else {
      creds = {{pki_->hosts[1].cert}, {pki_->ca_cert}, {pki_->hosts[1].key}, {}};
    }
    ASSERT_OK(charon_->Load(RenderSwanctlConf({conn}, secrets), creds));
  }

  void StartOurs(const IkePeerTunnel& t, bool initiate, int retransmit_ms = 1000, int tries = 3) {
    IkePeerOptions o;
    o.binary = peer_bin_;
    o.netns = net_->a().ns;
    o.dir = work_.path() / "ours";
    o.listen = net_->a().addr;
    o.tunnels = {t};
    o.initiate = initiate;
    o.retransmit_timeout_ms = retransmit_ms;
    o.retransmit_tries = tries;
    auto p = IkePeer::Start(o);
    ASSERT_OK(p);
    ours_ = *std::move(p);
  }

  // Sets up and establishes one tunnel; leaves both views in *ours / *theirs.
  void Establish(const Suite& s, bool psk, bool ours_initiate, std::vector<OurIkeSa>* ours,
                 std::vector<IkeSaView>* theirs, int charon_dpd_s = 0, int our_dpd_s = 0) {
    if (!psk) MakeCerts();
    if (HasFatalFailure()) return;
    SwanctlConn conn = CharonConn(s, psk);
    conn.dpd_delay_s = charon_dpd_s;
    LoadCharon(conn);
    if (HasFatalFailure()) return;
    IkePeerTunnel t = OurTunnel(s, psk);
    t.dpd_interval_s = our_dpd_s;
    StartOurs(t, ours_initiate);
    if (HasFatalFailure()) return;
    if (!ours_initiate) {
      ASSERT_OK(charon_->Initiate("c", 10s)) << ours_->LogTail();
    }
    auto o = ours_->WaitSas(OursOneEstablished, 10s);
    ASSERT_OK(o) << ours_->LogTail();
    auto c = charon_->WaitSas(OneEstablished, 5s);
    ASSERT_OK(c);
    *ours = *std::move(o);
    *theirs = *std::move(c);
  }

  // Both ends describe the same IKE_SA and CHILD_SA pair.
  void ExpectAgree(const OurIkeSa& ours, const IkeSaView& theirs, const Suite& s, bool ours_initiated) {
    EXPECT_EQ(theirs.state, "ESTABLISHED");
    EXPECT_EQ(theirs.initiator, ours_initiated ? "" : "yes");
    EXPECT_EQ(ours.initiator, ours_initiated);
    EXPECT_EQ(theirs.encr_alg, s.encr_alg);
    EXPECT_EQ(theirs.encr_keysize, "128");
    EXPECT_EQ(theirs.integ_alg, s.integ_alg);
    EXPECT_EQ(theirs.prf_alg, "PRF_HMAC_SHA2_256");
    EXPECT_EQ(theirs.dh_group, s.dh_group);
    EXPECT_EQ(theirs.local_host, net_->b().addr);
    EXPECT_EQ(theirs.remote_host, net_->a().addr);
    EXPECT_EQ(theirs.remote_id, kOurId);
    EXPECT_EQ(ours.remote_id.find(kCharonId) != std::string::npos, true) << ours.remote_id;
    EXPECT_EQ(ours.spi_i, theirs.initiator_spi);
    EXPECT_EQ(ours.spi_r, theirs.responder_spi);
    ASSERT_EQ(theirs.children.size(), 1u);
    ASSERT_EQ(ours.children.size(), 1u);
    const ChildSaView& tc = theirs.children[0];
    const OurChildSa& oc = ours.children[0];
    EXPECT_EQ(tc.state, "INSTALLED");
    EXPECT_EQ(tc.mode, "TUNNEL");
    EXPECT_EQ(tc.protocol, "ESP");
    EXPECT_EQ(tc.encr_alg, s.encr_alg);
    EXPECT_EQ(tc.integ_alg, s.integ_alg);
    EXPECT_EQ(oc.spi_in, tc.spi_out);
    EXPECT_EQ(oc.spi_out, tc.spi_in);
    EXPECT_EQ(tc.local_ts, std::vector<std::string>{net_->b().subnet + "/32"});
    EXPECT_EQ(tc.remote_ts, std::vector<std::string>{net_->a().subnet + "/32"});
    EXPECT_EQ(oc.local_ts, std::vector<std::string>{net_->a().subnet + "/32"});
    EXPECT_EQ(oc.remote_ts, std::vector<std::string>{net_->b().subnet + "/32"});
  }

  WorkDir work_{"engine"};
  std::string peer_bin_;
  std::unique_ptr<NetnsPair> net_;
  std::unique_ptr<Charon> charon_;
  std::unique_ptr<IkePeer> ours_;
  std::unique_ptr<Pki> pki_;
};

struct Case {
  bool ours_initiate;
  const Suite* suite;
  bool psk;
};
void PrintTo(const Case& c, std::ostream* os) {
  *os << (c.ours_initiate ? "ours_init_" : "charon_init_") << c.suite->name << (c.psk ? "_psk" : "_cert");
}

class EngineInteropEstablish : public EngineInterop, public ::testing::WithParamInterface<Case> {};

// Establish in the given role; then the initiator deletes the IKE_SA (ours by SIGUSR1, charon by
// swanctl --terminate) and both views become empty.
TEST_P(EngineInteropEstablish, EstablishThenInitiatorDeletes) {
  const Case& p = GetParam();
  std::vector<OurIkeSa> ours;
  std::vector<IkeSaView> theirs;
  Establish(*p.suite, p.psk, p.ours_initiate, &ours, &theirs);
  if (HasFatalFailure()) return;
  ExpectAgree(ours[0], theirs[0], *p.suite, p.ours_initiate);
  if (!p.psk) {
    EXPECT_TRUE(absl::StrContains(charon_->Log(), "authentication of 'host1.example' with ECDSA"))
        << charon_->LogLines({"authentication of"});
  }
  if (p.ours_initiate) {
    ASSERT_OK(ours_->Signal(SIGUSR1));
  } else {
    ASSERT_OK(charon_->TerminateIke("t"));
  }
  EXPECT_OK(charon_->WaitSas(NoSas, 5s));
  EXPECT_OK(ours_->WaitSas(OursNone, 5s));
}

INSTANTIATE_TEST_SUITE_P(
    Roles, EngineInteropEstablish,
    ::testing::Values(Case{true, &kGcm, false}, Case{true, &kGcm, true}, Case{true, &kCbc, false},
                      Case{true, &kCbc, true}, Case{false, &kGcm, false}, Case{false, &kGcm, true},
                      Case{false, &kCbc, false}, Case{false, &kCbc, true}),
    [](const auto& info) {
      std::ostringstream os;
      PrintTo(info.param, &os);
      return os.str();
    });

// DELETE of the IKE_SA by the responder side, in both roles.
TEST_F(EngineInterop, ResponderDeletesIke_CharonResponder) {
  std::vector<OurIkeSa> ours;
  std::vector<IkeSaView> theirs;
  Establish(kGcm, false, /*ours_initiate=*/true, &ours, &theirs);
  if (HasFatalFailure()) return;
  ASSERT_OK(charon_->TerminateIke("t"));
  EXPECT_OK(ours_->WaitSas(OursNone, 5s));
  EXPECT_OK(charon_->WaitSas(NoSas, 5s));
}

TEST_F(EngineInterop, ResponderDeletesIke_OursResponder) {
  std::vector<OurIkeSa> ours;
  std::vector<IkeSaView> theirs;
  Establish(kGcm, true, /*ours_initiate=*/false, &ours, &theirs);
  if (HasFatalFailure()) return;
  ASSERT_OK(ours_->Signal(SIGUSR1));
  EXPECT_OK(charon_->WaitSas(NoSas, 5s)) << charon_->LogLines({"[IKE]", "[ENC]"});
  EXPECT_OK(ours_->WaitSas(OursNone, 5s));
}

// DELETE of the CHILD_SA only, from either side: the IKE_SA stays on both.
TEST_F(EngineInterop, DeleteChildFromOurs) {
  std::vector<OurIkeSa> ours;
  std::vector<IkeSaView> theirs;
  Establish(kGcm, true, true, &ours, &theirs);
  if (HasFatalFailure()) return;
  ASSERT_OK(ours_->Signal(SIGUSR2));
  auto pred = [](const std::vector<IkeSaView>& v) {
    return v.size() == 1 && v[0].state == "ESTABLISHED" && v[0].children.empty();
  };
  EXPECT_OK(charon_->WaitSas(pred, 5s)) << charon_->LogLines({"[IKE]", "[ENC]"});
  EXPECT_OK(ours_->WaitSas(
      [](const std::vector<OurIkeSa>& v) { return v.size() == 1 && v[0].state == "ESTABLISHED" && v[0].children.empty(); },
      5s));
}

TEST_F(EngineInterop, DeleteChildFromCharon) {
  std::vector<OurIkeSa> ours;
  std::vector<IkeSaView> theirs;
  Establish(kCbc, true, true, &ours, &theirs);
  if (HasFatalFailure()) return;
  ASSERT_OK(charon_->TerminateChild("c"));
  EXPECT_OK(ours_->WaitSas(
      [](const std::vector<OurIkeSa>& v) { return v.size() == 1 && v[0].state == "ESTABLISHED" && v[0].children.empty(); },
      5s));
  EXPECT_OK(charon_->WaitSas(
      [](const std::vector<IkeSaView>& v) { return v.size() == 1 && v[0].state == "ESTABLISHED" && v[0].children.empty(); },
      5s));
}

// Liveness, charon asking: charon sends DPD (empty INFORMATIONAL) every second; we must answer each and
// charon keeps the SA.
TEST_F(EngineInterop, CharonLivenessChecksAnswered) {
  std::vector<OurIkeSa> ours;
  std::vector<IkeSaView> theirs;
  Establish(kGcm, true, true, &ours, &theirs, /*charon_dpd_s=*/1);
  if (HasFatalFailure()) return;
  // Three answered DPD exchanges: charon logs each response it parses.
  ASSERT_TRUE(WaitFor([&] { return Count(charon_->Log(), "parsed INFORMATIONAL response") >= 3; }, 10s))
      << charon_->LogLines({"INFORMATIONAL", "DPD", "retransmit", "giving up"});
  EXPECT_FALSE(absl::StrContains(charon_->Log(), "giving up")) << charon_->LogLines({"[IKE]", "[NET]"});
  EXPECT_OK(charon_->WaitSas(OneEstablished, 1s));
  EXPECT_OK(ours_->WaitSas(OursOneEstablished, 1s));
}

// Liveness, ours asking: our empty INFORMATIONAL requests are parsed and answered by charon.
TEST_F(EngineInterop, OurLivenessChecksAnswered) {
  std::vector<OurIkeSa> ours;
  std::vector<IkeSaView> theirs;
  Establish(kGcm, true, true, &ours, &theirs, 0, /*our_dpd_s=*/1);
  if (HasFatalFailure()) return;
  ASSERT_TRUE(WaitFor([&] { return Count(charon_->Log(), "parsed INFORMATIONAL request") >= 2; }, 10s))
      << charon_->LogLines({"INFORMATIONAL", "[ENC]"}) << ours_->LogTail();
  EXPECT_TRUE(absl::StrContains(charon_->Log(), "generating INFORMATIONAL response"));
  EXPECT_OK(ours_->WaitSas(OursOneEstablished, 1s));
  EXPECT_OK(charon_->WaitSas(OneEstablished, 1s));
}

// Liveness failure: charon vanishes (SIGKILL, no DELETE); our checks go unanswered and we clear the SA
// after bounded retransmissions.
TEST_F(EngineInterop, OurLivenessDetectsVanishedCharon) {
  std::vector<OurIkeSa> ours;
  std::vector<IkeSaView> theirs;
  SwanctlConn conn = CharonConn(kGcm, true);
  LoadCharon(conn);
  if (HasFatalFailure()) return;
  IkePeerTunnel t = OurTunnel(kGcm, true);
  t.dpd_interval_s = 1;
  StartOurs(t, true, /*retransmit_ms=*/300, /*tries=*/2);
  if (HasFatalFailure()) return;
  ASSERT_OK(ours_->WaitSas(OursOneEstablished, 10s)) << ours_->LogTail();
  charon_->Kill();
  EXPECT_OK(ours_->WaitSas(OursNone, 15s)) << ours_->LogTail();
  EXPECT_TRUE(absl::StrContains(ours_->Log(), "liveness_failed")) << ours_->LogTail();
}

// Proposal errors. Ours offers only what charon does not accept: charon answers NO_PROPOSAL_CHOSEN.
TEST_F(EngineInterop, CharonRejectsOurProposal) {
  LoadCharon(CharonConn(kGcm, true));
  if (HasFatalFailure()) return;
  IkePeerTunnel t = OurTunnel(kGcm, true);
  t.ike_proposal = "aes256-sha384-ecp384";
  StartOurs(t, true);
  if (HasFatalFailure()) return;
  ASSERT_TRUE(WaitFor([&] { return absl::StrContains(charon_->Log(), "received proposals unacceptable"); }, 10s))
      << charon_->LogLines({"[CFG]", "[IKE]"});
  EXPECT_TRUE(WaitFor([&] { return absl::StrContains(ours_->Log(), "NO_PROPOSAL_CHOSEN") ||
                                   absl::StrContains(ours_->Log(), "no_proposal"); }, 5s))
      << ours_->LogTail();
  auto sas = charon_->ListSas();
  ASSERT_OK(sas);
  EXPECT_TRUE(sas->empty()) << Describe(*sas);
  EXPECT_OK(ours_->WaitSas([](const auto& v) {
    for (const auto& s : v) if (s.state == "ESTABLISHED") return false;
    return true;
  }, 1s));
}

// Charon offers only what we do not accept: we answer NO_PROPOSAL_CHOSEN and log which transform types
// found no match.
TEST_F(EngineInterop, WeRejectCharonProposal) {
  SwanctlConn conn = CharonConn(kGcm, true);
  conn.ike_proposals = "aes256-sha384-ecp384";
  LoadCharon(conn);
  if (HasFatalFailure()) return;
  StartOurs(OurTunnel(kGcm, true), false);
  if (HasFatalFailure()) return;
  EXPECT_FALSE(charon_->Initiate("c", 5s).ok());
  EXPECT_TRUE(absl::StrContains(charon_->Log(), "NO_PROPOSAL_CHOSEN")) << charon_->LogLines({"[IKE]", "[ENC]"});
  EXPECT_TRUE(WaitFor([&] { return absl::StrContains(ours_->Log(), "proposal_mismatch"); }, 3s)) << ours_->LogTail();
  EXPECT_TRUE(absl::StrContains(ours_->Log(), "ENCR")) << ours_->LogTail();
  EXPECT_OK(ours_->WaitSas(OursNone, 1s));
}

// INVALID_KE_PAYLOAD: charon guesses X25519 first but we only accept ECP-256, so we ask for group 19 and
// charon retries with it.
TEST_F(EngineInterop, InvalidKeRetryCharonInitiating) {
  SwanctlConn conn = CharonConn(kGcm, true);
  conn.ike_proposals = "aes128gcm16-prfsha256-x25519-ecp256";
  LoadCharon(conn);
  if (HasFatalFailure()) return;
  IkePeerTunnel t = OurTunnel(kGcm, true);
  t.ike_proposal = "aes128gcm16-prfsha256-ecp256";
  StartOurs(t, false);
  if (HasFatalFailure()) return;
  ASSERT_OK(charon_->Initiate("c", 10s)) << ours_->LogTail();
  auto sas = charon_->WaitSas(OneEstablished, 5s);
  ASSERT_OK(sas);
  EXPECT_EQ((*sas)[0].dh_group, "ECP_256");
  EXPECT_TRUE(absl::StrContains(charon_->Log(), "parsed IKE_SA_INIT response 0 [ N(INVAL_KE) ]"))
      << charon_->LogLines({"[IKE]", "[ENC]"});
  EXPECT_TRUE(absl::StrContains(charon_->Log(), "it requested ECP_256")) << charon_->LogLines({"[IKE]"});
  EXPECT_OK(ours_->WaitSas(OursOneEstablished, 5s));
}

// ... and the other way: we guess X25519, charon insists on ECP-256, we retry with the group it names.
TEST_F(EngineInterop, InvalidKeRetryOursInitiating) {
  SwanctlConn conn = CharonConn(kGcm, true);
  conn.ike_proposals = "aes128gcm16-prfsha256-ecp256";
  LoadCharon(conn);
  if (HasFatalFailure()) return;
  IkePeerTunnel t = OurTunnel(kGcm, true);
  t.ike_proposal = "aes128gcm16-prfsha256-x25519-ecp256";
  StartOurs(t, true);
  if (HasFatalFailure()) return;
  auto sas = charon_->WaitSas(OneEstablished, 10s);
  ASSERT_OK(sas) << ours_->LogTail();
  EXPECT_EQ((*sas)[0].dh_group, "ECP_256");
  EXPECT_TRUE(absl::StrContains(charon_->Log(), "generating IKE_SA_INIT response 0 [ N(INVAL_KE) ]"))
      << charon_->LogLines({"[ENC]"});
  EXPECT_OK(ours_->WaitSas(OursOneEstablished, 5s));
}

// A wrong PSK is refused: AUTHENTICATION_FAILED, no SA anywhere.
TEST_F(EngineInterop, WrongPskRefused) {
  LoadCharon(CharonConn(kGcm, true), "a-different-secret-entirely");
  if (HasFatalFailure()) return;
  StartOurs(OurTunnel(kGcm, true), true);
  if (HasFatalFailure()) return;
  ASSERT_TRUE(WaitFor([&] { return absl::StrContains(charon_->Log(), "AUTHENTICATION_FAILED") ||
                                   absl::StrContains(charon_->Log(), "MAC mismatch"); }, 10s))
      << charon_->LogLines({"[IKE]", "[ENC]"});
  auto sas = charon_->ListSas();
  ASSERT_OK(sas);
  for (const auto& s : *sas) EXPECT_NE(s.state, "ESTABLISHED") << Describe(*sas);
  EXPECT_OK(ours_->WaitSas([](const auto& v) {
    for (const auto& s : v) if (s.state == "ESTABLISHED") return false;
    return true;
  }, 3s));
}

// Wire check: Wireshark's IKEv2 dissector finds nothing malformed and no expert errors in our exchange.
class EngineWire : public EngineInterop, public ::testing::WithParamInterface<bool> {};

TEST_P(EngineWire, NoMalformedPacketsNoExpertErrors) {
  if (!TsharkAvailable()) GTEST_SKIP() << "tshark missing";
  const bool ours_initiate = GetParam();
  auto cap = Capture::Start(net_->a().ns, net_->a().veth, net_->b().addr,
                            work_.path() / (ours_initiate ? "ours-init.pcapng" : "charon-init.pcapng"));
  ASSERT_OK(cap);
  std::vector<OurIkeSa> ours;
  std::vector<IkeSaView> theirs;
  // Certificates + GCM when we initiate (CERT, CERTREQ, RFC 7427 AUTH); PSK + CBC when charon does.
  Establish(ours_initiate ? kGcm : kCbc, !ours_initiate, ours_initiate, &ours, &theirs, 0, /*our_dpd_s=*/1);
  if (HasFatalFailure()) return;
  // One liveness exchange of ours, then a DELETE from us.
  WaitFor([&] { return Count(charon_->Log(), "parsed INFORMATIONAL request") >= 1; }, 5s);
  ASSERT_OK(ours_->Signal(SIGUSR1));
  EXPECT_OK(charon_->WaitSas(NoSas, 5s));
  ASSERT_OK((*cap)->Stop());
  auto rep = AnalyzeIke((*cap)->pcap());
  ASSERT_OK(rep);
  EXPECT_TRUE(rep->Clean()) << rep->ToString();
  std::string all;
  for (const auto& l : rep->summary) all += l + "\n";
  EXPECT_GE(rep->ike_packets, 6) << all;
  EXPECT_TRUE(absl::StrContains(all, "IKE_SA_INIT MID=00 Initiator Request")) << all;
  EXPECT_TRUE(absl::StrContains(all, "IKE_SA_INIT MID=00 Responder Response")) << all;
  EXPECT_TRUE(absl::StrContains(all, "IKE_AUTH MID=01 Responder Response")) << all;
  EXPECT_TRUE(absl::StrContains(all, "INFORMATIONAL")) << all;
}

INSTANTIATE_TEST_SUITE_P(Roles, EngineWire, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "ours_init" : "charon_init"; });

}  // namespace
}  // namespace ipfleet::interop
