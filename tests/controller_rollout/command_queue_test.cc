// CommandQueue against the session registry with scripted sinks: the interleavings that made
// RolloutTest.FlushSaIsDeliveredExactlyOnceAcrossReconnects flaky under load, forced
// deterministically (no gRPC, no threads).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <vector>

#include "ipfleet/controller/api/context.h"
#include "ipfleet/controller/api/session_registry.h"
#include "ipfleet/controller/inventory/sqlite_store.h"
#include "ipfleet/rollout/commands.h"

namespace ipfleet::testing {
namespace {

namespace fs = std::filesystem;
using inventory::CommandState;

// Records the command ids pushed to it; `on_command` runs inside Send, i.e. before the pushing
// thread gets to its own bookkeeping (what a fast agent on another thread can do).
class ScriptedSink final : public controller::SessionSink {
 public:
  bool Send(v1::ControllerMessage msg) override {
    ids.push_back(msg.command().id());
    if (on_command) on_command(msg.command());
    return true;
  }
  void Close(int, const std::string&) override {}

  std::vector<uint64_t> ids;
  std::function<void(const v1::Command&)> on_command;
};

class CommandQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("ipf-cmdq-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    inventory::SqliteOptions options;
    options.fsync_every_commit = false;
    auto store = inventory::OpenSqliteStore(dir_ / "inventory.db", options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    inventory::Host host;
    host.name = "h1";
    ASSERT_TRUE(store_->Transact([&](inventory::Tx& tx) { return tx.AddHost(host); }).ok());
    ctx_.store = store_.get();
    ctx_.sessions = &sessions_;
    queue_ = std::make_unique<rollout::CommandQueue>(ctx_);
    // Wired as the fleet module wires it.
    sessions_.OnAttach([this](const std::string& h) { queue_->OnAttach(h); });
    sessions_.OnHello([this](const std::string& h, const v1::Hello& m) { queue_->OnHello(h, m); });
  }
  void TearDown() override {
    queue_.reset();
    store_.reset();
    fs::remove_all(dir_);
  }

  // A new session of h1: attached, then its Hello dispatched (what the AgentService does).
  std::shared_ptr<ScriptedSink> Connect(uint64_t last_command_id, bool dispatch_hello = true) {
    auto sink = std::make_shared<ScriptedSink>();
    sessions_.Attach("h1", sink, 1);
    if (dispatch_hello) Hello(last_command_id);
    return sink;
  }
  void Hello(uint64_t last_command_id) {
    v1::Hello h;
    h.set_host("h1");
    h.set_last_command_id(last_command_id);
    sessions_.DispatchHello("h1", h);
  }
  uint64_t Send() {
    auto c = queue_->Send("h1", v1::COMMAND_KIND_FLUSH_SA, "", "");
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? c->id : 0;
  }
  CommandState State(uint64_t id) {
    auto c = store_->GetCommand(id);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? c->state : CommandState::kUnspecified;
  }
  // What the AgentService does with a CommandResult: store it as finished.
  void StoreResult(uint64_t id) {
    ASSERT_TRUE(store_
                    ->Transact([&](inventory::Tx& tx) -> absl::Status {
                      auto c = tx.GetCommand(id);
                      if (!c.ok()) return c.status();
                      c->state = CommandState::kSucceeded;
                      c->finished_unix = 2;
                      c->result = "r";
                      return tx.UpdateCommand(*c);
                    })
                    .ok());
  }

  fs::path dir_;
  std::unique_ptr<inventory::Store> store_;
  controller::SessionRegistry sessions_;
  controller::ControllerContext ctx_;
  std::unique_ptr<rollout::CommandQueue> queue_;
};

// The result is stored before Send has marked the command delivered: it must stay finished
// (before the fix it was overwritten with `delivered` and waited on forever).
TEST_F(CommandQueueTest, ResultStoredBeforeSendReturnsIsNotOverwritten) {
  auto sink = Connect(0);
  sink->on_command = [&](const v1::Command& c) { StoreResult(c.id()); };
  uint64_t id = Send();
  EXPECT_EQ(sink->ids, std::vector<uint64_t>{id});
  EXPECT_EQ(State(id), CommandState::kSucceeded);
}

// Same on the Hello resend path.
TEST_F(CommandQueueTest, ResultStoredDuringHelloResendIsNotOverwritten) {
  uint64_t id = Send();  // no session: queued
  EXPECT_EQ(State(id), CommandState::kQueued);
  auto sink = Connect(0, /*dispatch_hello=*/false);
  sink->on_command = [&](const v1::Command& c) { StoreResult(c.id()); };
  Hello(0);
  EXPECT_EQ(sink->ids, std::vector<uint64_t>{id});
  EXPECT_EQ(State(id), CommandState::kSucceeded);
}

// A command sent after the session attached but before its Hello was dispatched goes out once,
// after the older pending one (the agent skips ids below the highest it executed, so the newer
// one first would lose the older one).
TEST_F(CommandQueueTest, SendBetweenAttachAndHelloIsDeliveredOnceInOrder) {
  uint64_t older = Send();
  auto sink = Connect(0, /*dispatch_hello=*/false);
  uint64_t newer = Send();
  EXPECT_EQ(State(newer), CommandState::kQueued);
  Hello(0);
  EXPECT_EQ(sink->ids, (std::vector<uint64_t>{older, newer}));
  EXPECT_EQ(State(older), CommandState::kDelivered);
  EXPECT_EQ(State(newer), CommandState::kDelivered);
}

// A session replacing a live one (no disconnect in between) starts un-greeted too.
TEST_F(CommandQueueTest, ReplacingSessionGetsEachCommandOnce) {
  auto first = Connect(0);
  auto second = Connect(0, /*dispatch_hello=*/false);
  uint64_t id = Send();
  Hello(0);
  EXPECT_TRUE(first->ids.empty());
  EXPECT_EQ(second->ids, std::vector<uint64_t>{id});
  uint64_t next = Send();  // greeted now: pushed at once
  EXPECT_EQ(second->ids, (std::vector<uint64_t>{id, next}));
}

}  // namespace
}  // namespace ipfleet::testing
