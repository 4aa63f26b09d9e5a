// The agent's session against a fake controller: an in-process gRPC server on loopback port 0
// implementing AgentService (label inproc). Bundles, refusals, health, commands executed once
// across a dropped stream, reconnect with backoff.
#include <absl/strings/match.h>
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "fake_ike.h"
#include "ipfleet/agent/sync/agent.h"
#include "ipfleet/agent/sync/session.h"
#include "ipfleet/agent/sync/verifier.h"
#include "ipfleet/v1/agent_service.grpc.pb.h"
#include "test_support.h"

namespace ipfleet::agent {
namespace {

using testing::FakeIke;
using testing::StandardBundle;
using testing::TestPki;

// Records every AgentMessage; lets the test push ControllerMessages and drop the stream.
// Like a careless controller, it re-sends `replay` to every new session regardless of Hello.
class FakeController final : public v1::AgentService::Service {
 public:
  grpc::Status Session(grpc::ServerContext* ctx,
                       grpc::ServerReaderWriter<v1::ControllerMessage, v1::AgentMessage>* stream) override {
    {
      std::lock_guard l(mu_);
      ctx_ = ctx;
      stream_ = stream;
      ++sessions_;
    }
    v1::AgentMessage m;
    bool first = true;
    while (stream->Read(&m)) {
      std::lock_guard l(mu_);
      received_.push_back(m);
      if (first) {
        first = false;
        for (const auto& r : replay) stream->Write(r);
      }
      cv_.notify_all();
    }
    std::lock_guard l(mu_);
    stream_ = nullptr;
    ctx_ = nullptr;
    return grpc::Status::OK;
  }
  bool Push(const v1::ControllerMessage& m) {
    std::lock_guard l(mu_);
    return stream_ && stream_->Write(m);
  }
  void Drop() {
    std::lock_guard l(mu_);
    if (ctx_) ctx_->TryCancel();
  }
  // Waits (bounded) for a message matching `pred`, searching from index `from`.
  template <typename Pred>
  std::optional<v1::AgentMessage> WaitFor(Pred pred, size_t* from, int timeout_ms = 10000) {
    std::unique_lock l(mu_);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      for (; *from < received_.size(); ++*from) {
        if (pred(received_[*from])) return received_[(*from)++];
      }
      if (cv_.wait_until(l, deadline) == std::cv_status::timeout) return std::nullopt;
    }
  }
  int sessions() {
    std::lock_guard l(mu_);
    return sessions_;
  }
  std::vector<v1::ControllerMessage> replay;

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  grpc::ServerContext* ctx_ = nullptr;
  grpc::ServerReaderWriter<v1::ControllerMessage, v1::AgentMessage>* stream_ = nullptr;
  std::deque<v1::AgentMessage> received_;
  int sessions_ = 0;
};

class SessionInprocTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pki_ = TestPki::Make();
    dir_ = testing::TempDir("session");
    grpc::ServerBuilder b;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    b.RegisterService(&controller_);
    server_ = b.BuildAndStart();
    ASSERT_NE(port_, 0);
    ike_ = std::make_unique<FakeIke>(xfrm_);
    AgentOptions o;
    o.host = "host-a";
    o.data_dir = dir_;
    agent_ = std::make_unique<Agent>(o, xfrm_, *ike_, MakeCaVerifier(pki_->authority->CertificatePem()), clock_);
    ASSERT_TRUE(agent_->Start().ok());
    SessionOptions so;
    so.targets = {"127.0.0.1:" + std::to_string(port_)};
    so.credentials = [] { return grpc::InsecureChannelCredentials(); };
    so.tick_interval_ms = 50;
    so.health_interval_ms = 1000;
    so.backoff = Backoff::Options{std::chrono::milliseconds(50), std::chrono::milliseconds(400), 2.0};
    session_ = std::make_unique<SessionClient>(so, *agent_);
    session_->Start();
  }
  void TearDown() override {
    session_.reset();
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    std::filesystem::remove_all(dir_);
  }
  static v1::ControllerMessage BundleMsg(const v1::SignedBundle& sb) {
    v1::ControllerMessage m;
    *m.mutable_bundle() = sb;
    return m;
  }

  std::unique_ptr<TestPki> pki_;
  std::filesystem::path dir_;
  FakeController controller_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  SystemClock clock_;
  kernel::FakeXfrm xfrm_;
  std::unique_ptr<FakeIke> ike_;
  std::unique_ptr<Agent> agent_;
  std::unique_ptr<SessionClient> session_;
};

TEST_F(SessionInprocTest, HelloBundleAckRefusalAndHealth) {
  size_t at = 0;
  auto hello = controller_.WaitFor([](auto& m) { return m.has_hello(); }, &at);
  ASSERT_TRUE(hello);
  EXPECT_EQ(hello->hello().host(), "host-a");
  EXPECT_EQ(hello->hello().bundle_version(), 0u);

  ASSERT_TRUE(controller_.Push(BundleMsg(pki_->Sign(StandardBundle(1)))));
  auto ack = controller_.WaitFor([](auto& m) { return m.has_bundle_ack(); }, &at);
  ASSERT_TRUE(ack);
  EXPECT_TRUE(ack->bundle_ack().applied()) << ack->bundle_ack().error();
  EXPECT_EQ(ack->bundle_ack().version(), 1u);
  auto health = controller_.WaitFor(
      [](auto& m) { return m.has_health() && m.health().bundle_version() == 1 && m.health().tunnels_size() == 2; }, &at);
  ASSERT_TRUE(health);
  EXPECT_TRUE(health->health().tunnels(0).up());
  EXPECT_TRUE(health->health().tunnels(1).up());

  auto tampered = pki_->Sign(StandardBundle(2));
  tampered.set_signature(tampered.signature().substr(1));
  ASSERT_TRUE(controller_.Push(BundleMsg(tampered)));
  auto refused = controller_.WaitFor([](auto& m) { return m.has_bundle_ack(); }, &at);
  ASSERT_TRUE(refused);
  EXPECT_FALSE(refused->bundle_ack().applied());
  EXPECT_EQ(refused->bundle_ack().version(), 2u);
  EXPECT_TRUE(absl::StartsWith(refused->bundle_ack().error(), "bad signature")) << refused->bundle_ack().error();
  EXPECT_EQ(agent_->applied_version(), 1u);
}

TEST_F(SessionInprocTest, CommandExecutedOnceAcrossDroppedStream) {
  size_t at = 0;
  ASSERT_TRUE(controller_.WaitFor([](auto& m) { return m.has_hello(); }, &at));
  ASSERT_TRUE(controller_.Push(BundleMsg(pki_->Sign(StandardBundle(1)))));
  ASSERT_TRUE(controller_.WaitFor([](auto& m) { return m.has_bundle_ack(); }, &at));

  v1::ControllerMessage cmd;
  cmd.mutable_command()->set_id(42);
  cmd.mutable_command()->set_kind(v1::COMMAND_KIND_FLUSH_SA);
  cmd.mutable_command()->set_tunnel("a--b");
  controller_.replay.push_back(cmd);  // and re-sent on every later session
  ASSERT_TRUE(controller_.Push(cmd));
  auto result = controller_.WaitFor([](auto& m) { return m.has_command_result(); }, &at);
  ASSERT_TRUE(result);
  EXPECT_EQ(result->command_result().id(), 42u);
  EXPECT_TRUE(result->command_result().ok()) << result->command_result().error();

  for (int drop = 0; drop < 2; ++drop) {
    controller_.Drop();
    auto hello = controller_.WaitFor([](auto& m) { return m.has_hello(); }, &at);
    ASSERT_TRUE(hello) << "agent did not reconnect";
    EXPECT_EQ(hello->hello().last_command_id(), 42u);
    EXPECT_EQ(hello->hello().bundle_version(), 1u);
    auto again = controller_.WaitFor([](auto& m) { return m.has_command_result(); }, &at);
    ASSERT_TRUE(again);
    EXPECT_EQ(again->command_result().id(), 42u);
  }
  EXPECT_GE(controller_.sessions(), 3);
  EXPECT_EQ(std::count(ike_->log.begin(), ike_->log.end(), "rekey:a--b"), 1) << "command ran twice";
}

TEST_F(SessionInprocTest, ReconnectsAfterControllerRestartWithBackoff) {
  size_t at = 0;
  ASSERT_TRUE(controller_.WaitFor([](auto& m) { return m.has_hello(); }, &at));
  server_->Shutdown(std::chrono::system_clock::now());
  server_.reset();
  // Bring the controller back on the same port after the agent has failed a few times.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // let reconnect attempts fail (bounded)
  FakeController second;
  grpc::ServerBuilder b;
  int port = 0;
  b.AddListeningPort("127.0.0.1:" + std::to_string(port_), grpc::InsecureServerCredentials(), &port);
  b.RegisterService(&second);
  server_ = b.BuildAndStart();
  ASSERT_EQ(port, port_);
  size_t at2 = 0;
  auto hello = second.WaitFor([](auto& m) { return m.has_hello(); }, &at2, 15000);
  ASSERT_TRUE(hello) << "agent did not come back";
  session_.reset();  // stop before `second` goes out of scope
  server_->Shutdown(std::chrono::system_clock::now());
  server_.reset();
}

// Two controller replicas: the one holding the session dies, and the agent is on the other within
// 10 s with the daemon's own backoff settings (no test-shortened delays).
TEST_F(SessionInprocTest, FailsOverToTheNextControllerReplica) {
  session_.reset();  // the fixture's single-target session
  FakeController second;
  int second_port = 0;
  grpc::ServerBuilder b;
  b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &second_port);
  b.RegisterService(&second);
  std::unique_ptr<grpc::Server> second_server = b.BuildAndStart();
  ASSERT_NE(second_port, 0);

  SessionOptions so;
  so.targets = {"127.0.0.1:" + std::to_string(port_), "127.0.0.1:" + std::to_string(second_port)};
  so.credentials = [] { return grpc::InsecureChannelCredentials(); };
  SessionClient client(so, *agent_);
  client.Start();
  size_t seen = 0;
  ASSERT_TRUE(controller_.WaitFor([](const v1::AgentMessage& m) { return m.has_hello(); }, &seen));
  EXPECT_EQ(second.sessions(), 0);

  const auto killed = std::chrono::steady_clock::now();
  server_->Shutdown(std::chrono::system_clock::now());  // the first replica dies: its streams end
  size_t seen2 = 0;
  ASSERT_TRUE(second.WaitFor([](const v1::AgentMessage& m) { return m.has_hello(); }, &seen2, 10000))
      << "no hello on the second replica within 10 s";
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed).count();
  std::printf("session on the second replica %.2f s after the first died\n", seconds);
  EXPECT_LT(seconds, 10.0);
  EXPECT_TRUE(client.connected());
  client.Stop();
  second_server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
}

}  // namespace
}  // namespace ipfleet::agent
