// Bundle refusal rules, translation, backoff and the on-disk state (label unit).
#include <sys/stat.h>

#include <absl/strings/match.h>
#include <gtest/gtest.h>

#include "ipfleet/agent/sync/backoff.h"
#include "ipfleet/agent/sync/bundle_check.h"
#include "ipfleet/agent/sync/state_store.h"
#include "ipfleet/agent/sync/translate.h"
#include "ipfleet/agent/sync/verifier.h"
#include "test_support.h"

namespace ipfleet::agent {
namespace {

using testing::StandardBundle;
using testing::TestPki;

class BundleCheckTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pki_ = TestPki::Make();
    verify_ = MakeCaVerifier(pki_->authority->CertificatePem());
  }
  CheckContext Ctx(uint64_t last = 0) { return CheckContext{"host-a", last, {}, false}; }
  std::unique_ptr<TestPki> pki_;
  BundleVerifyFn verify_;
};

TEST_F(BundleCheckTest, AcceptsSignedBundleAndTranslates) {
  auto st = CheckBundle(pki_->Sign(StandardBundle(3)), verify_, Ctx(2));
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(st->version, 3u);
  ASSERT_EQ(st->tunnels.size(), 2u);
  EXPECT_EQ(st->tunnels[0].name, "a--b");
  EXPECT_EQ(st->tunnels[0].remote_address.ToString(), "192.0.2.11");
  EXPECT_EQ(st->tunnels[0].remote_subnets[0].prefix.ToString(), "198.51.100.11/32");
  EXPECT_EQ(st->tunnels[1].auth, AuthKind::kStatic);
  ASSERT_TRUE(st->tunnels[1].static_keys);
  EXPECT_EQ(st->tunnels[1].static_keys->outbound.spi, 0x5000u);
  EXPECT_EQ(st->bypass.size(), 4u);
}

TEST_F(BundleCheckTest, RefusesTamperedBytes) {
  auto sb = pki_->Sign(StandardBundle(3));
  std::string bytes = sb.bundle();
  bytes[bytes.size() / 2] ^= 0x01;
  sb.set_bundle(bytes);
  auto st = CheckBundle(sb, verify_, Ctx());
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(absl::StartsWith(st.status().message(), "bad signature")) << st.status();
}

TEST_F(BundleCheckTest, RefusesSignatureFromAnotherCa) {
  auto other = TestPki::Make();
  auto st = CheckBundle(other->Sign(StandardBundle(3)), verify_, Ctx());
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(absl::StartsWith(st.status().message(), "bad signature")) << st.status();
}

TEST_F(BundleCheckTest, RefusesUnsignedBundle) {
  v1::SignedBundle sb;
  sb.set_bundle(StandardBundle(3).SerializeAsString());
  auto st = CheckBundle(sb, verify_, Ctx());
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(absl::StartsWith(st.status().message(), "bad signature"));
}

TEST_F(BundleCheckTest, RefusesBundleForAnotherHost) {
  auto st = CheckBundle(pki_->Sign(StandardBundle(3, "host-b")), verify_, Ctx());
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(absl::StartsWith(st.status().message(), "wrong host")) << st.status();
}

TEST_F(BundleCheckTest, RefusesSameOrOlderVersion) {
  for (uint64_t v : {5u, 4u}) {
    auto st = CheckBundle(pki_->Sign(StandardBundle(v)), verify_, Ctx(5));
    ASSERT_FALSE(st.ok());
    EXPECT_TRUE(absl::StartsWith(st.status().message(), "rollback")) << st.status();
  }
  CheckContext restart = Ctx(5);
  restart.allow_same_version = true;  // re-applying the last good bundle after a restart
  EXPECT_TRUE(CheckBundle(pki_->Sign(StandardBundle(5)), verify_, restart).ok());
}

TEST_F(BundleCheckTest, RefusesTunnelCapturingControllerWithoutBypass) {
  auto b = StandardBundle(3);
  b.mutable_bypass()->DeleteSubrange(0, 1);  // drop the controller bypass
  auto* t = testing::AddTunnel(b, "a--ctl", "host-d", "192.0.2.10", "192.0.2.13", "192.0.2.10/32", "192.0.2.0/24");
  (void)t;
  auto st = CheckBundle(pki_->Sign(b), verify_, Ctx());
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(absl::StartsWith(st.status().message(), "controller path cut")) << st.status();
  EXPECT_NE(st.status().message().find("a--ctl"), absl::string_view::npos);
}

TEST_F(BundleCheckTest, AcceptsCapturingTunnelWhenControllerBypassed) {
  auto b = StandardBundle(3);
  testing::AddTunnel(b, "a--ctl", "host-d", "192.0.2.10", "192.0.2.13", "192.0.2.10/32", "192.0.2.0/24");
  EXPECT_TRUE(CheckBundle(pki_->Sign(b), verify_, Ctx()).ok());
}

TEST_F(BundleCheckTest, RefusesBlockRuleOnControllerAndChecksConfiguredEndpoint) {
  auto b = StandardBundle(3);
  testing::AddBypass(b, "deny-mgmt", "203.0.113.0/24", 0, 0, 0, 50, v1::BYPASS_ACTION_BLOCK);
  CheckContext ctx = Ctx();
  // The agent reaches the controller through another address than the bundle names.
  ctx.controller_endpoints.push_back({*ParseIp("203.0.113.7"), 7443});
  auto st = CheckBundle(pki_->Sign(b), verify_, ctx);
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(absl::StartsWith(st.status().message(), "controller path cut")) << st.status();
}

TEST_F(BundleCheckTest, RefusesInvalidContent) {
  auto b = StandardBundle(3);
  b.mutable_tunnels(0)->mutable_remote()->set_address("not-an-ip");
  auto st = CheckBundle(pki_->Sign(b), verify_, Ctx());
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(absl::StartsWith(st.status().message(), "invalid bundle")) << st.status();
  EXPECT_NE(st.status().message().find("a--b"), absl::string_view::npos);
}

TEST(PrefixTest, ContainsAndCovers) {
  auto p = *ParsePrefix("198.51.100.77/24");
  EXPECT_EQ(p.ToString(), "198.51.100.0/24");
  EXPECT_TRUE(p.Contains(*ParseIp("198.51.100.1")));
  EXPECT_FALSE(p.Contains(*ParseIp("198.51.101.1")));
  EXPECT_TRUE(p.Covers(*ParsePrefix("198.51.100.128/25")));
  EXPECT_FALSE(p.Covers(*ParsePrefix("198.51.0.0/16")));
  EXPECT_TRUE(ParsePrefix("2001:db8::/32")->Contains(*ParseIp("2001:db8:1::5")));
  EXPECT_FALSE(ParsePrefix("10.0.0.0/33").ok());
  std::string h;
  uint16_t port;
  ASSERT_TRUE(SplitHostPort("[2001:db8::1]:7443", &h, &port).ok());
  EXPECT_EQ(h, "2001:db8::1");
  EXPECT_EQ(port, 7443);
}

TEST(BackoffTest, GrowsWithJitterUpToMaxAndResets) {
  Backoff a({std::chrono::milliseconds(100), std::chrono::milliseconds(1600), 2.0}, 1);
  Backoff b({std::chrono::milliseconds(100), std::chrono::milliseconds(1600), 2.0}, 2);
  std::vector<int64_t> da, db;
  for (int i = 0; i < 8; ++i) {
    da.push_back(a.Next().count());
    db.push_back(b.Next().count());
  }
  for (int i = 0; i < 8; ++i) {
    int64_t ceiling = std::min<int64_t>(1600, 100LL << i);
    EXPECT_GE(da[i], ceiling / 2);
    EXPECT_LE(da[i], ceiling);
  }
  EXPECT_NE(da, db) << "two agents must not reconnect in lock-step";
  a.Reset();
  EXPECT_LE(a.Next().count(), 100);
}

TEST(StateStoreTest, PersistsBundleAndJournalAtomicallyWithModes) {
  auto dir = testing::TempDir("store");
  StateStore s(dir);
  ASSERT_TRUE(s.Init().ok());
  auto none = s.LoadLastGoodBundle();
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  ASSERT_TRUE(s.SaveLastGoodBundle(std::string("bytes\0with nul", 14)).ok());
  StateStore::Journal j;
  j.started = 7;
  j.executed = 6;
  j.results[6] = std::string("\x08\x06\x10\x01", 4);
  ASSERT_TRUE(s.SaveJournal(j).ok());

  StateStore again(dir);
  auto b = again.LoadLastGoodBundle();
  ASSERT_TRUE(b.ok() && b->has_value());
  EXPECT_EQ(**b, std::string("bytes\0with nul", 14));
  auto j2 = again.LoadJournal();
  ASSERT_TRUE(j2.ok());
  EXPECT_EQ(j2->started, 7u);
  EXPECT_EQ(j2->executed, 6u);
  EXPECT_EQ(j2->results[6], j.results[6]);
  struct stat st {};
  ASSERT_EQ(stat((dir / "state" / "last-good.bundle").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat((dir / "state").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ipfleet::agent
