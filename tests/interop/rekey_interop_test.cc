// Rekeying interop of our engine (ipfleet-ike-peer) with charon (issue 7): CHILD_SA and IKE_SA rekeys
// initiated by either side, and simultaneous rekeys of the same SA (RFC 7296 2.8.1). Every test ends with
// exactly one SA pair that both views agree on, with SPIs other than the ones before the rekey.
#include <signal.h>

#include <gtest/gtest.h>

#include <absl/strings/match.h>

#include "engine_fixture.h"
#include "harness/nft.h"

namespace ipfleet::interop {
namespace {

// The one ESTABLISHED IKE_SA of a view and its INSTALLED CHILD_SA; with `strict`, retired or
// rekeyed children (kept for a grace period) must be gone too.
template <typename Sa, typename Child>
const Child* OnlyChild(const std::vector<Sa>& v, bool strict) {
  if (v.size() != 1 || v[0].state != "ESTABLISHED") return nullptr;
  const Child* found = nullptr;
  for (const auto& c : v[0].children) {
    if (c.state != "INSTALLED") {
      if (strict) return nullptr;
      continue;
    }
    if (found) return nullptr;
    found = &c;
  }
  return found;
}

// Charon and us agree on one IKE_SA (same SPIs) with one CHILD_SA (crossed ESP SPIs).
bool Agree(const std::vector<OurIkeSa>& ours, const std::vector<IkeSaView>& theirs, bool strict) {
  const auto* o = OnlyChild<OurIkeSa, OurChildSa>(ours, strict);
  const auto* t = OnlyChild<IkeSaView, ChildSaView>(theirs, strict);
  return o && t && ours[0].spi_i == theirs[0].initiator_spi && ours[0].spi_r == theirs[0].responder_spi &&
         o->spi_in == t->spi_out && o->spi_out == t->spi_in;
}

class RekeyInterop : public EngineInterop {
 protected:
  void SetUp() override {
    // Old inbound SAs are kept briefly after a rekey on both sides; short here so tests can wait for them
    // to go and assert that exactly one pair is left.
    charon_extra_ = "delete_rekeyed_delay = 1";
    our_settings_ = {{"rekey_grace", 0.5}};
    EngineInterop::SetUp();
  }

  // Establishes one PSK tunnel (ours initiating) and remembers its SPIs.
  void Up() {
    std::vector<OurIkeSa> ours;
    std::vector<IkeSaView> theirs;
    Establish(suite_, true, true, &ours, &theirs);
    if (HasFatalFailure()) return;
    before_ = theirs[0];
  }

  // Bounded poll until both views agree on one SA pair for which `changed` holds against the SA before
  // (strict: and nothing else is left, see OnlyChild).
  void WaitAgreed(const std::function<bool(const IkeSaView& now)>& changed, std::chrono::milliseconds timeout,
                  bool strict = true) {
    std::vector<OurIkeSa> ours;
    std::vector<IkeSaView> theirs;
    bool ok = WaitFor(
        [&] {
          auto o = ours_->Sas();
          auto t = charon_->ListSas();
          if (!o.ok() || !t.ok()) return false;
          ours = *o;
          theirs = *t;
          return Agree(ours, theirs, strict) && changed(theirs[0]);
        },
        timeout, std::chrono::milliseconds(50));
    ASSERT_TRUE(ok) << "ours: " << Describe(ours) << "\ncharon: " << Describe(theirs)
                    << "\nbefore: " << Describe(std::vector<IkeSaView>{before_});
    after_ = theirs[0];
    after_.children = {*OnlyChild<IkeSaView, ChildSaView>(theirs, strict)};
  }
  bool ChildChanged(const IkeSaView& now) const {
    return now.children[0].spi_in != before_.children[0].spi_in &&
           now.children[0].spi_out != before_.children[0].spi_out;
  }
  bool IkeChanged(const IkeSaView& now) const {
    return now.initiator_spi != before_.initiator_spi && now.responder_spi != before_.responder_spi;
  }

  // After settling, no second SA shows up on either side for a while (a redundant SA left by a collision
  // would; deletes of the losers happen right after the exchanges). Bounded poll that must stay false.
  void ExpectStaysOnePair(std::chrono::milliseconds window) {
    bool extra = WaitFor(
        [&] {
          auto o = ours_->Sas();
          auto t = charon_->ListSas();
          return o.ok() && t.ok() && !Agree(*o, *t, true);
        },
        window, std::chrono::milliseconds(100));
    EXPECT_FALSE(extra) << "ours: " << ours_->StatusText() << "\ncharon: " << Describe(*charon_->ListSas());
  }

  // Makes both rekey requests cross, whatever the timing of the two daemons, with nft rules in our namespace
  // (IKE on 4500: exchange type at UDP payload byte 4+18, flags at 4+19, R = 0x20). Phases, each ended by
  // nft counters (bounded waits):
  //   1. every IKE datagram is dropped until both ends have sent their CREATE_CHILD_SA request;
  //   2. requests pass, responses and INFORMATIONALs are dropped, until each end has received the other's
  //      (retransmitted) request while its own is outstanding: both see the collision;
  //   3. with `late_response` false: CREATE_CHILD_SA responses pass too, INFORMATIONALs (the DELETEs) stay
  //      held until both responses went through, as when two requests cross on a real path;
  //      with `late_response` true: phase 3 is skipped, so one end's response comes only after the other
  //      end already finished and deleted the old SA (a lost response);
  //   4. everything passes.
  void HoldIke() {
    ASSERT_OK(NftLoad(ours_side_.ns, HoldTable("hold1", kCcsa + kReq, "udp length > 28"),
                      (work_.path() / "hold1.nft").string()));
  }
  void CrossRequests(bool late_response = false) {
    WaitBothCounted("hold1");
    if (HasFatalFailure()) return;
    ASSERT_OK(NftLoad(ours_side_.ns, "delete table inet hold1\n" + HoldTable("hold2", kCcsa + kReq, kResp + " || " + kInfo),
                      (work_.path() / "hold2.nft").string()));
    WaitBothCounted("hold2");
    if (HasFatalFailure()) return;
    if (!late_response) {
      ASSERT_OK(NftLoad(ours_side_.ns, "delete table inet hold2\n" + HoldTable("hold3", kCcsa + kResp, kInfo),
                        (work_.path() / "hold3.nft").string()));
      WaitBothCounted("hold3");
      if (HasFatalFailure()) return;
    }
    ASSERT_OK(NftDeleteTable(ours_side_.ns, "inet", late_response ? "hold2" : "hold3"));
  }
  static inline const std::string kCcsa = "@th,240,8 == 36 ";  // CREATE_CHILD_SA (RFC 7296 3.1)
  static inline const std::string kReq = "@th,248,8 & 0x20 == 0";
  static inline const std::string kResp = "@th,248,8 & 0x20 == 0x20";
  static inline const std::string kInfo = "@th,240,8 == 37";  // INFORMATIONAL
  // A table counting datagrams matching `count` each way and dropping those matching `drop` (nft has no
  // "||" within a rule: `drop` may list alternatives separated by " || ", one rule each).
  static std::string HoldTable(const std::string& name, const std::string& count, const std::string& drop) {
    std::string out = "table inet " + name + " {\n  counter out_n {}\n  counter in_n {}\n";
    for (const auto& [chain, hook, port, ctr] : {std::tuple{"out", "output", "sport", "out_n"},
                                                  std::tuple{"in", "input", "dport", "in_n"}}) {
      out += std::string("  chain ") + chain + " { type filter hook " + hook + " priority 0;\n";
      out += std::string("    udp ") + port + " 4500 " + count + " counter name " + ctr + "\n";
      size_t start = 0;
      for (;;) {
        size_t bar = drop.find(" || ", start);
        out += std::string("    udp ") + port + " 4500 " + drop.substr(start, bar - start) + " drop\n";
        if (bar == std::string::npos) break;
        start = bar + 4;
      }
      out += "  }\n";
    }
    return out + "}\n";
  }
  void WaitBothCounted(const std::string& table) {
    auto seen = [&](const char* c) {
      auto n = NftCounter(ours_side_.ns, "inet", table, c);
      return n.ok() && *n >= 1;
    };
    ASSERT_TRUE(WaitFor([&] { return seen("out_n") && seen("in_n"); }, 6s))
        << table << ": not both ways seen" << ours_->LogTail(20);
  }

  // Both ends rekey the same SA (the CHILD_SA, or the IKE_SA) with the requests crossing (CrossRequests), then
  // exactly one pair must be left on both sides, with new SPIs, and stay so.
  void RekeyBothAtOnce(bool ike, bool late_response) {
    Up();
    if (HasFatalFailure()) return;
    HoldIke();
    if (HasFatalFailure()) return;
    ASSERT_OK(ours_->Signal(ike ? SIGRTMIN + 1 : SIGRTMIN));
    ASSERT_OK(charon_->Swanctl({"--rekey", ike ? "--ike" : "--child", ike ? "t" : "c"}));
    CrossRequests(late_response);
    if (HasFatalFailure()) return;
    WaitAgreed([&](const IkeSaView& n) { return ike ? IkeChanged(n) : ChildChanged(n); }, 15s);
    if (HasFatalFailure()) return;
    ExpectStaysOnePair(1500ms);
  }

  Suite suite_ = kGcm;
  IkeSaView before_, after_;
};

// Ours rekeys the CHILD_SA when its rekey_time (YAML) passes, with PFS (pfs: x25519): charon answers, the new
// CHILD_SA has the DH group, the old one is gone on both sides.
TEST_F(RekeyInterop, ChildRekeyByOursLifetimeWithPfs) {
  our_child_extra_ = {{"rekey_time", 3}, {"life_time", 60}, {"pfs", "x25519"}};
  suite_.esp = "aes128gcm16-x25519";  // charon: the same group for PFS in CREATE_CHILD_SA
  Up();
  if (HasFatalFailure()) return;
  // Not strict: the next rekey (every 3 s) may already have begun.
  WaitAgreed([&](const IkeSaView& n) { return ChildChanged(n); }, 10s, /*strict=*/false);
  if (HasFatalFailure()) return;
  EXPECT_EQ(after_.children[0].dh_group, "CURVE_25519");
  EXPECT_EQ(after_.initiator_spi, before_.initiator_spi) << "the IKE_SA must stay";
  EXPECT_TRUE(absl::StrContains(ours_->Log(), "child_sa_rekeyed")) << ours_->LogTail();
}

// charon rekeys the CHILD_SA (swanctl --rekey): we answer as the rekey responder.
TEST_F(RekeyInterop, ChildRekeyByCharon) {
  Up();
  if (HasFatalFailure()) return;
  ASSERT_OK(charon_->Swanctl({"--rekey", "--child", "c"}));
  WaitAgreed([&](const IkeSaView& n) { return ChildChanged(n); }, 10s);
  if (HasFatalFailure()) return;
  EXPECT_TRUE(absl::StrContains(ours_->Log(), "role=responder")) << ours_->LogTail();
}

// Ours rekeys the IKE_SA when ike_rekey_time (YAML) passes; the CHILD_SA moves to the new IKE_SA unchanged.
TEST_F(RekeyInterop, IkeRekeyByOursLifetime) {
  our_tunnel_extra_ = {{"ike_rekey_time", 3}};
  Up();
  if (HasFatalFailure()) return;
  WaitAgreed([&](const IkeSaView& n) { return IkeChanged(n); }, 10s, /*strict=*/false);
  if (HasFatalFailure()) return;
  EXPECT_EQ(after_.children[0].spi_in, before_.children[0].spi_in) << "the CHILD_SA must move over as it is";
  EXPECT_TRUE(absl::StrContains(ours_->Log(), "ike_sa_rekeyed")) << ours_->LogTail();
}

// charon rekeys the IKE_SA (swanctl --rekey --ike): ours derives the new keys from the old SK_d as responder.
TEST_F(RekeyInterop, IkeRekeyByCharon) {
  Up();
  if (HasFatalFailure()) return;
  ASSERT_OK(charon_->Swanctl({"--rekey", "--ike", "t"}));
  WaitAgreed([&](const IkeSaView& n) { return IkeChanged(n); }, 10s);
  if (HasFatalFailure()) return;
  EXPECT_EQ(after_.children[0].spi_in, before_.children[0].spi_in);
  // A later exchange works on the new IKE_SA (its keys are right on both sides): charon deletes the child.
  ASSERT_OK(charon_->TerminateChild("c"));
  EXPECT_OK(ours_->WaitSas(
      [](const std::vector<OurIkeSa>& v) { return v.size() == 1 && v[0].children.empty(); }, 5s));
}

// Both ends rekey the CHILD_SA at once; 2.8.1: the exchange with the lowest nonce is redundant. Exactly one
// CHILD_SA pair is left, and both sides saw the collision.
TEST_F(RekeyInterop, SimultaneousChildRekey) {
  RekeyBothAtOnce(/*ike=*/false, /*late_response=*/false);
  if (HasFatalFailure()) return;
  std::string log = ours_->Log();
  EXPECT_TRUE(absl::StrContains(log, "collision=won") || absl::StrContains(log, "collision=lost")) << ours_->LogTail();
  EXPECT_TRUE(absl::StrContains(charon_->Log(), "CHILD_SA rekey collision")) << charon_->LogLines({"rekey"});
}

// As above, but our response comes late: charon wins, deletes the old CHILD_SA, and only then does our
// response arrive. Our exchange is still the redundant one (2.8.1) and must be deleted by us, although the
// old child it would be compared through is gone by then.
TEST_F(RekeyInterop, SimultaneousChildRekeyLateResponse) { RekeyBothAtOnce(false, /*late_response=*/true); }

// Both ends rekey the IKE_SA at once: one IKE_SA is left, carrying the CHILD_SA.
TEST_F(RekeyInterop, SimultaneousIkeRekey) {
  RekeyBothAtOnce(/*ike=*/true, false);
  if (HasFatalFailure()) return;
  std::string log = ours_->Log();
  EXPECT_TRUE(absl::StrContains(log, "collision=won") || absl::StrContains(log, "collision=lost")) << ours_->LogTail();
  EXPECT_TRUE(absl::StrContains(charon_->Log(), "IKE_SA rekey collision")) << charon_->LogLines({"rekey"});
}

}  // namespace
}  // namespace ipfleet::interop
