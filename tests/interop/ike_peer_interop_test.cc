// Interop of our IKEv2 engine (ipfleet-ike-peer, namespace a, 192.0.2.1) with strongSwan's charon
// (namespace b, 192.0.2.2, kernel-libipsec). Both roles, both proposal sets, certificates from our CA and
// PSK, DELETE from either side, liveness both ways, proposal errors, and the tshark wire check. Every test
// asserts on charon's own view (swanctl --list-sas) and on ours (the peer tool's status file).
#include <signal.h>

#include <gtest/gtest.h>

#include <absl/strings/match.h>
#include <absl/strings/str_split.h>

#include "engine_fixture.h"
#include "harness/wire_check.h"

namespace ipfleet::interop {
namespace {

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
  auto cap = Capture::Start(ours_side_.ns, ours_side_.veth, theirs_.addr,
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
