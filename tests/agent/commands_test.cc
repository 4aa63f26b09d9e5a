// flush-sa / rekey / re-enroll through the agent core; each command id runs once, also across
// repeated delivery and agent restarts (label unit).
#include <gtest/gtest.h>

#include <algorithm>

#include "fake_ike.h"
#include "ipfleet/agent/sync/agent.h"
#include "ipfleet/agent/sync/verifier.h"
#include "ipfleet/common/files.h"
#include "test_support.h"

namespace ipfleet::agent {
namespace {

using testing::FakeClock;
using testing::FakeIke;
using testing::StandardBundle;
using testing::TestPki;

class CommandsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pki_ = TestPki::Make();
    dir_ = testing::TempDir("cmd");
    ike_ = std::make_unique<FakeIke>(xfrm_);
    Restart();
    ASSERT_TRUE(agent_->HandleBundle(pki_->Sign(StandardBundle(1))).applied());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void Restart() {
    agent_.reset();
    AgentOptions o;
    o.host = "host-a";
    o.data_dir = dir_;
    agent_ = std::make_unique<Agent>(o, xfrm_, *ike_, MakeCaVerifier(pki_->authority->CertificatePem()), clock_);
    ASSERT_TRUE(agent_->Start().ok());
  }
  v1::CommandResult Run(const v1::Command& c) {
    auto immediate = agent_->HandleCommand(c);
    if (immediate) return *immediate;
    for (int i = 0; i < 100; ++i) {
      clock_.Advance(100);
      auto r = agent_->Tick();
      if (!r.finished.empty()) return r.finished.front();
    }
    ADD_FAILURE() << "command " << c.id() << " never finished";
    return {};
  }
  static v1::Command Cmd(uint64_t id, v1::CommandKind kind, const std::string& tunnel = "") {
    v1::Command c;
    c.set_id(id);
    c.set_kind(kind);
    c.set_tunnel(tunnel);
    return c;
  }
  int Count(const std::string& entry) { return std::count(ike_->log.begin(), ike_->log.end(), entry); }

  std::unique_ptr<TestPki> pki_;
  std::filesystem::path dir_;
  FakeClock clock_;
  kernel::FakeXfrm xfrm_;
  std::unique_ptr<FakeIke> ike_;
  std::unique_ptr<Agent> agent_;
};

TEST_F(CommandsTest, FlushSaReplacesTheSasAndReportsBeforeAfter) {
  const uint32_t old_in = ike_->Sa("a--b")->children.at(0).spi_in;
  auto r = Run(Cmd(11, v1::COMMAND_KIND_FLUSH_SA));
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r.id(), 11u);
  // Replaced make-before-break (new pair, then the old deleted), not deleted first.
  EXPECT_EQ(Count("rekey:a--b"), 1);
  EXPECT_EQ(Count("delete_child:a--b"), 0);
  const uint32_t new_in = ike_->Sa("a--b")->children.at(0).spi_in;
  EXPECT_NE(new_in, old_in);
  // Before: the IKE tunnel's pair and the static pair; after: new IKE SPIs, same static ones.
  ASSERT_EQ(r.sas_before_size(), 2);
  ASSERT_EQ(r.sas_after_size(), 2);
  char hex[9];
  std::snprintf(hex, sizeof(hex), "%08x", old_in);
  EXPECT_EQ(r.sas_before(0).spi_in(), hex);
  std::snprintf(hex, sizeof(hex), "%08x", new_in);
  EXPECT_EQ(r.sas_after(0).spi_in(), hex);
  EXPECT_EQ(r.sas_after(1).spi_out(), "00005000");
  EXPECT_LE(r.recovery_ms(), 1000u);
  auto rep = agent_->BuildHealth(true);
  ASSERT_EQ(rep.forced_size(), 1);
  EXPECT_EQ(rep.forced(0).reason(), "flush-sa");
}

// The result's "after" lists the SAs carrying the traffic, not replaced ones in their grace period.
TEST_F(CommandsTest, FlushSaAfterListsOnlyTheNewPair) {
  ike_->keep_replaced = true;
  const uint32_t old_in = ike_->Sa("a--b")->children.at(0).spi_in;
  auto r = Run(Cmd(12, v1::COMMAND_KIND_FLUSH_SA, "a--b"));
  ASSERT_TRUE(r.ok()) << r.error();
  ASSERT_EQ(ike_->Sa("a--b")->children.size(), 2u);  // the old one is still listed, being deleted
  ASSERT_EQ(r.sas_after_size(), 1);
  char hex[9];
  std::snprintf(hex, sizeof(hex), "%08x", old_in);
  EXPECT_NE(r.sas_after(0).spi_in(), hex);
  EXPECT_EQ(r.sas_before(0).spi_in(), hex);
}

TEST_F(CommandsTest, RepeatedDeliveryNeverRunsTwiceAndResendsTheResult) {
  auto first = Run(Cmd(5, v1::COMMAND_KIND_FLUSH_SA, "a--b"));
  ASSERT_TRUE(first.ok()) << first.error();
  auto again = agent_->HandleCommand(Cmd(5, v1::COMMAND_KIND_FLUSH_SA, "a--b"));
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->SerializeAsString(), first.SerializeAsString());
  EXPECT_EQ(Count("rekey:a--b"), 1);
  EXPECT_EQ(agent_->BuildHello("").last_command_id(), 5u);
  // An older id than the last executed one is not run either.
  auto older = agent_->HandleCommand(Cmd(3, v1::COMMAND_KIND_FLUSH_SA, "a--b"));
  ASSERT_TRUE(older.has_value());
  EXPECT_FALSE(older->ok());
  EXPECT_EQ(Count("rekey:a--b"), 1);
}

TEST_F(CommandsTest, ExactlyOnceAcrossAgentRestart) {
  auto first = Run(Cmd(8, v1::COMMAND_KIND_REKEY, "a--b"));
  ASSERT_TRUE(first.ok()) << first.error();
  EXPECT_EQ(Count("rekey:a--b"), 1);
  Restart();
  EXPECT_EQ(agent_->BuildHello("").last_command_id(), 8u);
  auto again = agent_->HandleCommand(Cmd(8, v1::COMMAND_KIND_REKEY, "a--b"));
  ASSERT_TRUE(again.has_value());
  EXPECT_TRUE(again->ok());
  EXPECT_EQ(Count("rekey:a--b"), 1);
  auto next = Run(Cmd(9, v1::COMMAND_KIND_REKEY, "a--b"));
  EXPECT_TRUE(next.ok());
  EXPECT_EQ(Count("rekey:a--b"), 2);
}

TEST_F(CommandsTest, CommandInterruptedByCrashIsNotRerun) {
  // Simulate a crash after the journal recorded the start of command 12 but before it finished.
  ASSERT_TRUE(files::WriteAtomic(dir_ / "state" / "commands.json", R"({"started":12,"executed":11,"results":{}})", 0600).ok());
  Restart();
  auto r = agent_->HandleCommand(Cmd(12, v1::COMMAND_KIND_FLUSH_SA));
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->ok());
  EXPECT_NE(r->error().find("interrupted"), std::string::npos);
  EXPECT_EQ(Count("rekey:a--b"), 0);
}

TEST_F(CommandsTest, UnknownTunnelFailsAndReenrollUsesHook) {
  auto r = Run(Cmd(20, v1::COMMAND_KIND_FLUSH_SA, "nope"));
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.error().find("no tunnel matches"), std::string::npos);
  int called = 0;
  agent_->set_reenroll_hook([&] {
    ++called;
    return absl::OkStatus();
  });
  auto e = Run(Cmd(21, v1::COMMAND_KIND_REENROLL));
  EXPECT_TRUE(e.ok()) << e.error();
  EXPECT_EQ(called, 1);
}

TEST_F(CommandsTest, FlushByPeerAndTimeoutWhenPeerDoesNotAnswer) {
  ike_->fail_initiate = true;
  v1::Command c = Cmd(30, v1::COMMAND_KIND_FLUSH_SA);
  c.set_peer("host-b");
  auto r = Run(c);
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.error().find("peer unreachable"), std::string::npos) << r.error();
  ASSERT_EQ(r.sas_before_size(), 1);
  EXPECT_EQ(r.sas_before(0).tunnel(), "a--b");
}

}  // namespace
}  // namespace ipfleet::agent
