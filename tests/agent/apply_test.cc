// Applying bundles through the agent core with the fake kernel and a fake IKE engine (label unit):
// refusals change nothing, bypass before protection, static keys programmed directly,
// make-before-break diffs, last good bundle re-applied after a restart.
#include <absl/strings/match.h>
#include <gtest/gtest.h>

#include <algorithm>

#include "fake_ike.h"
#include "ipfleet/agent/sync/agent.h"
#include "ipfleet/agent/sync/verifier.h"
#include "test_support.h"

namespace ipfleet::agent {
namespace {

using testing::FakeClock;
using testing::FakeIke;
using testing::RecordingXfrm;
using testing::StandardBundle;
using testing::TestPki;

class ApplyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pki_ = TestPki::Make();
    dir_ = testing::TempDir("apply");
    xfrm_ = std::make_unique<RecordingXfrm>();
    ike_ = std::make_unique<FakeIke>(*xfrm_);
    agent_ = NewAgent();
    ASSERT_TRUE(agent_->Start().ok());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::unique_ptr<Agent> NewAgent() {
    AgentOptions o;
    o.host = "host-a";
    o.data_dir = dir_;
    return std::make_unique<Agent>(o, *xfrm_, *ike_, MakeCaVerifier(pki_->authority->CertificatePem()), clock_);
  }
  // Kernel contents as comparable text (SAs and policies).
  std::vector<std::string> KernelView() {
    std::vector<std::string> v;
    for (const auto& s : testing::Sas(*xfrm_)) v.push_back("sa " + s.params.id().ToString());
    for (const auto& p : testing::Policies(*xfrm_)) v.push_back("pol " + p.params.id().ToString());
    std::sort(v.begin(), v.end());
    return v;
  }

  std::unique_ptr<TestPki> pki_;
  std::filesystem::path dir_;
  FakeClock clock_;
  std::unique_ptr<RecordingXfrm> xfrm_;
  std::unique_ptr<FakeIke> ike_;
  std::unique_ptr<Agent> agent_;
};

TEST_F(ApplyTest, BypassPoliciesGoInBeforeAnyProtectingPolicy) {
  auto ack = agent_->HandleBundle(pki_->Sign(StandardBundle(1)));
  ASSERT_TRUE(ack.applied()) << ack.error();
  EXPECT_EQ(ack.version(), 1u);
  ASSERT_EQ(ack.tunnels_size(), 2);
  for (const auto& t : ack.tunnels()) EXPECT_TRUE(t.ok()) << t.tunnel() << ": " << t.error();
  auto& log = xfrm_->log;
  auto first_protect = std::find_if(log.begin(), log.end(), [](auto& l) { return l.find("protect") != std::string::npos; });
  auto last_bypass = std::find_if(log.rbegin(), log.rend(), [](auto& l) { return l.find("bypass") != std::string::npos; });
  ASSERT_NE(first_protect, log.end());
  ASSERT_NE(last_bypass, log.rend());
  EXPECT_LT(std::distance(log.begin(), last_bypass.base()), std::distance(log.begin(), first_protect) + 1)
      << "a bypass policy was installed after a protecting one";
  // Bypass priorities sort before protecting ones (lower wins).
  for (const auto& p : testing::Policies(*xfrm_)) {
    if (p.params.templates.empty()) EXPECT_LT(p.params.priority, 10000u);
    else EXPECT_GE(p.params.priority, 10000u);
  }
  // ICMPv6 ND types 133..137 in both directions, controller TCP 7443 in and out.
  int nd = 0, ctl = 0;
  for (const auto& p : testing::Policies(*xfrm_)) {
    if (p.params.selector.proto == 58) ++nd;
    if (p.params.selector.proto == 6 && (p.params.selector.dst_port == 7443 || p.params.selector.src_port == 7443)) ++ctl;
  }
  EXPECT_EQ(nd, 10);
  EXPECT_EQ(ctl, 2);
}

TEST_F(ApplyTest, StaticKeyTunnelProgrammedDirectlyWithoutIke) {
  ASSERT_TRUE(agent_->HandleBundle(pki_->Sign(StandardBundle(1))).applied());
  EXPECT_FALSE(ike_->Has("a--c")) << "a static tunnel must not reach the IKE engine";
  EXPECT_TRUE(ike_->Has("a--b"));
  auto out = xfrm_->QuerySa(testing::Sid(kernel::IpAddress::MustParse("192.0.2.12"), 0x5000));
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_TRUE(out->params.aead.has_value());
  EXPECT_EQ(out->params.aead->name, "rfc4106(gcm(aes))");
  EXPECT_EQ(out->params.aead->key, std::vector<uint8_t>(20, 'k'));
  EXPECT_EQ(out->params.src.ToString(), "192.0.2.10");
  EXPECT_TRUE(kernel::IsOwnedReqid(out->params.reqid));
  auto in = xfrm_->QuerySa(testing::Sid(kernel::IpAddress::MustParse("192.0.2.10"), 0x6000));
  ASSERT_TRUE(in.ok()) << in.status();
  EXPECT_EQ(in->params.aead->key, std::vector<uint8_t>(20, 'l'));
  // SAs before policies for the static tunnel (no window where its policy has no SA).
  auto& log = xfrm_->log;
  auto sa = std::find(log.begin(), log.end(), "sa+ 00005000");
  ASSERT_NE(sa, log.end());
  // The static tunnel's out/in/fwd policies all follow its SAs.
  int protect_after = std::count_if(sa, log.end(), [](auto& l) { return l.find("protect") != std::string::npos; });
  EXPECT_EQ(protect_after, 3);
  auto h = agent_->BuildHealth(false);
  ASSERT_EQ(h.tunnels_size(), 2);
  EXPECT_TRUE(h.tunnels(1).up());
  EXPECT_EQ(h.tunnels(1).child_sas(0).spi_out(), "00005000");
}

TEST_F(ApplyTest, RefusedBundlesChangeNothingAndSayWhy) {
  ASSERT_TRUE(agent_->HandleBundle(pki_->Sign(StandardBundle(2))).applied());
  const auto before = KernelView();
  const auto ike_before = ike_->log.size();

  auto tampered = pki_->Sign(StandardBundle(3));
  std::string bytes = tampered.bundle();
  bytes[10] ^= 0x20;
  tampered.set_bundle(bytes);
  auto older = pki_->Sign(StandardBundle(1));
  auto other = pki_->Sign(StandardBundle(4, "host-z"));
  auto cut = StandardBundle(5);
  cut.mutable_bypass()->DeleteSubrange(0, 1);
  testing::AddTunnel(cut, "a--all", "host-d", "192.0.2.10", "192.0.2.13", "0.0.0.0/0", "0.0.0.0/0");

  const std::pair<v1::SignedBundle, std::string> cases[] = {
      {tampered, "bad signature"}, {older, "rollback"}, {other, "wrong host"}, {pki_->Sign(cut), "controller path cut"}};
  for (const auto& [sb, reason] : cases) {
    auto ack = agent_->HandleBundle(sb);
    EXPECT_FALSE(ack.applied());
    EXPECT_TRUE(absl::StartsWith(ack.error(), reason)) << ack.error();
    EXPECT_EQ(KernelView(), before) << reason;
    EXPECT_EQ(ike_->log.size(), ike_before) << reason;
    EXPECT_EQ(agent_->applied_version(), 2u);
  }
}

TEST_F(ApplyTest, MakeBeforeBreakDiff) {
  ASSERT_TRUE(agent_->HandleBundle(pki_->Sign(StandardBundle(1))).applied());
  xfrm_->log.clear();
  ike_->log.clear();
  // v2: a--b unchanged, a--c re-keyed (new SPIs), a--d added, and the ike-natt bypass removed.
  auto b = StandardBundle(2);
  testing::MakeStatic(b.mutable_tunnels(1), 0x5001, 0x6001, 'q');
  testing::AddTunnel(b, "a--d", "host-d", "192.0.2.10", "192.0.2.13", "198.51.100.10/32", "198.51.100.13/32")
      ->set_reqid(0x1F000030);
  b.mutable_bypass()->DeleteSubrange(2, 1);
  auto ack = agent_->HandleBundle(pki_->Sign(b));
  ASSERT_TRUE(ack.applied()) << ack.error();

  EXPECT_EQ(std::count(ike_->log.begin(), ike_->log.end(), "add:a--b"), 0) << "unchanged tunnel touched";
  EXPECT_EQ(std::count(ike_->log.begin(), ike_->log.end(), "add:a--d"), 1);
  auto& log = xfrm_->log;
  auto pos = [&](const std::string& s) { return std::find(log.begin(), log.end(), s) - log.begin(); };
  // New static SAs are in before the old ones are deleted.
  EXPECT_LT(pos("sa+ 00005001"), pos("sa- 00005000"));
  EXPECT_LT(pos("sa+ 00006001"), pos("sa- 00006000"));
  EXPECT_LT(pos("sa- 00005000"), static_cast<long>(log.size()));
  EXPECT_FALSE(xfrm_->QuerySa(testing::Sid(kernel::IpAddress::MustParse("192.0.2.12"), 0x5000)).ok());
  EXPECT_TRUE(xfrm_->QuerySa(testing::Sid(kernel::IpAddress::MustParse("192.0.2.12"), 0x5001)).ok());
  // The dropped bypass rule goes last, after every add.
  auto last_del = std::find_if(log.rbegin(), log.rend(), [](auto& l) { return l.rfind("policy-", 0) == 0; });
  ASSERT_NE(last_del, log.rend());
  auto last_add = std::find_if(log.rbegin(), log.rend(), [](auto& l) { return l.rfind("policy+", 0) == 0 || l.rfind("sa+", 0) == 0; });
  EXPECT_LT(last_del - log.rbegin(), last_add - log.rbegin()) << "a removal came before an addition";

  // v3: a--d removed; its connection goes away.
  auto c = b;
  c.set_version(3);
  c.mutable_tunnels()->DeleteSubrange(2, 1);
  ike_->log.clear();
  ASSERT_TRUE(agent_->HandleBundle(pki_->Sign(c)).applied());
  EXPECT_EQ(ike_->log, (std::vector<std::string>{"trust", "remove:a--d", "delete_ike:a--d", "delete_child:a--d"}));
  EXPECT_FALSE(ike_->Has("a--d"));
}

TEST_F(ApplyTest, ChangedIkeTunnelIsReplacedNotRemovedAndReadded) {
  ASSERT_TRUE(agent_->HandleBundle(pki_->Sign(StandardBundle(1))).applied());
  const uint32_t old_in = ike_->Sa("a--b")->children.at(0).spi_in;
  ike_->log.clear();
  auto b = StandardBundle(2);
  b.mutable_tunnels(0)->mutable_proposal()->mutable_esp()->set_encryption(0, "aes256gcm16");
  ASSERT_TRUE(agent_->HandleBundle(pki_->Sign(b)).applied());
  EXPECT_EQ(ike_->log, (std::vector<std::string>{"trust", "replace:a--b"}));
  EXPECT_EQ(ike_->Config("a--b")->proposal.esp_encryption.at(0), "aes256gcm16");
  ASSERT_EQ(ike_->Sa("a--b")->children.size(), 1u);
  EXPECT_NE(ike_->Sa("a--b")->children.at(0).spi_in, old_in);
}

TEST_F(ApplyTest, LastGoodBundleReappliedAfterRestart) {
  ASSERT_TRUE(agent_->HandleBundle(pki_->Sign(StandardBundle(4))).applied());
  const auto applied = KernelView();
  // Restart: new kernel state (e.g. host reboot), new IKE engine, same data dir.
  agent_.reset();
  xfrm_ = std::make_unique<RecordingXfrm>();
  ike_ = std::make_unique<FakeIke>(*xfrm_);
  agent_ = NewAgent();
  ASSERT_TRUE(agent_->Start().ok());
  EXPECT_EQ(agent_->applied_version(), 4u);
  EXPECT_EQ(KernelView(), applied);
  EXPECT_TRUE(ike_->Has("a--b"));
  EXPECT_EQ(agent_->BuildHello("").bundle_version(), 4u);
  // And the restored version still blocks rollbacks.
  EXPECT_FALSE(agent_->HandleBundle(pki_->Sign(StandardBundle(4))).applied());
  EXPECT_TRUE(agent_->HandleBundle(pki_->Sign(StandardBundle(5))).applied());
}

// After a restart this host negotiates also where it is the responder: INITIAL_CONTACT tells the
// peer to drop the SAs this host lost (where it initiates, adding the connection started it).
TEST_F(ApplyTest, RestartNegotiatesWhereResponderToo) {
  v1::PolicyBundle b = StandardBundle(4);
  auto* responder = testing::AddTunnel(b, "a--r", "host-r", "192.0.2.10", "192.0.2.13", "198.51.100.10/32",
                                       "198.51.100.13/32");
  responder->set_initiator(false);
  responder->set_reqid(0x1F000013);
  ASSERT_TRUE(agent_->HandleBundle(pki_->Sign(b)).applied());
  EXPECT_EQ(std::count(ike_->log.begin(), ike_->log.end(), "initiate:a--r"), 0) << "a first apply waits";
  agent_.reset();
  xfrm_ = std::make_unique<RecordingXfrm>();
  ike_ = std::make_unique<FakeIke>(*xfrm_);
  agent_ = NewAgent();
  ASSERT_TRUE(agent_->Start().ok());
  EXPECT_EQ(std::count(ike_->log.begin(), ike_->log.end(), "initiate:a--r"), 1);
  EXPECT_EQ(std::count(ike_->log.begin(), ike_->log.end(), "initiate:a--b"), 0);
}

TEST_F(ApplyTest, RestartRemovesOwnedLeftoversButNotForeignState) {
  ASSERT_TRUE(agent_->HandleBundle(pki_->Sign(StandardBundle(4))).applied());
  // A foreign SA (someone else's reqid) and an owned leftover of the previous run.
  kernel::SaParams foreign;
  foreign.src = kernel::IpAddress::MustParse("192.0.2.10");
  foreign.dst = kernel::IpAddress::MustParse("192.0.2.99");
  foreign.spi = 0x777;
  foreign.reqid = 5;
  foreign.aead = kernel::AeadAlgo{"rfc4106(gcm(aes))", std::vector<uint8_t>(20, 1), 128};
  xfrm_->InsertForeignSa(foreign);
  agent_.reset();
  ike_ = std::make_unique<FakeIke>(*xfrm_);  // the old IKE_SA's kernel SAs are now leftovers
  agent_ = NewAgent();
  ASSERT_TRUE(agent_->Start().ok());
  EXPECT_TRUE(xfrm_->QuerySa(foreign.id()).ok()) << "foreign SA removed";
  EXPECT_TRUE(xfrm_->QuerySa(testing::Sid(kernel::IpAddress::MustParse("192.0.2.12"), 0x5000)).ok());
  // Exactly the static pair + the fresh IKE pair remain owned.
  int owned = 0;
  for (const auto& s : testing::Sas(*xfrm_)) owned += kernel::IsOwned(s.params);
  EXPECT_EQ(owned, 4);
}

}  // namespace
}  // namespace ipfleet::agent
