// A simulated ipfleet agent for rollout tests: enrolls, holds one Session, verifies every bundle it
// receives against its pinned CA (and the CRL inside), acks, reports its tunnels up, executes
// commands at most once (tracking the highest id like the real agent). Behaviour is switchable.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ipfleet/ca/bundle_signing.h"
#include "ipfleet/ca/csr.h"
#include "ipfleet/ca/keys.h"
#include "ipfleet/v1/agent_service.grpc.pb.h"

namespace ipfleet::testing {

// Bounded poll: true as soon as `cond` holds, false after `timeout`.
inline bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return cond();
}

struct ReceivedBundle {
  v1::SignedBundle signed_bundle;
  v1::PolicyBundle bundle;
  std::string verify_error;  // empty when the signature verified against the pinned CA
};

class FakeAgent {
 public:
  enum class Mode { kAck, kRefuse, kSilent };

  FakeAgent(std::string name, std::string ca_pem) : name_(std::move(name)), ca_pem_(std::move(ca_pem)) {
    key_ = std::move(ca::GenerateKey(ca::KeyType::kEcdsaP256)).value();
  }
  ~FakeAgent() { Disconnect(); }

  const std::string& name() const { return name_; }

  // Enrollment over server-auth TLS with the one-time token.
  grpc::Status Enroll(const std::string& target, const std::string& token) {
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = ca_pem_;
    auto stub = v1::AgentService::NewStub(grpc::CreateChannel(target, grpc::SslCredentials(o)));
    v1::EnrollRequest req;
    req.set_host(name_);
    req.set_token(token);
    req.set_csr_pem(std::move(ca::MakeCsrPem(key_.get(), name_)).value());
    v1::EnrollResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    grpc::Status st = stub->Enroll(&ctx, req, &resp);
    if (st.ok()) {
      cert_pem_ = resp.certificate_pem();
      controllers_.assign(resp.controllers().begin(), resp.controllers().end());
    }
    return st;
  }
  // The controller replicas the enrollment response named (empty for a lone controller).
  const std::vector<std::string>& controllers() const { return controllers_; }

  // Opens the session and says hello with what it has applied and executed.
  void Connect(const std::string& target) {
    Disconnect();
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = ca_pem_;
    o.pem_private_key = std::move(ca::PrivateKeyToPem(key_.get())).value();
    o.pem_cert_chain = cert_pem_;
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
    stub_ = v1::AgentService::NewStub(grpc::CreateCustomChannel(target, grpc::SslCredentials(o), args));
    ctx_ = std::make_unique<grpc::ClientContext>();
    stream_ = stub_->Session(ctx_.get());
    v1::AgentMessage hello;
    {
      std::lock_guard lock(mu_);
      hello.mutable_hello()->set_host(name_);
      hello.mutable_hello()->set_agent_version("fake-agent");
      hello.mutable_hello()->set_bundle_version(applied_);
      hello.mutable_hello()->set_last_command_id(last_command_);
    }
    connected_ = Write(hello);
    reader_ = std::thread([this] { ReadLoop(); });
  }

  void Disconnect() {
    if (!stream_) return;
    ctx_->TryCancel();
    if (reader_.joinable()) reader_.join();
    stream_->Finish();
    stream_.reset();
    ctx_.reset();
    connected_ = false;
  }

  // Sends a health report of the test's making (a tunnel down, SAs with SPIs) on the session.
  bool SendHealth(v1::HealthReport report) {
    v1::AgentMessage m;
    report.set_host(name_);
    {
      std::lock_guard lock(mu_);
      report.set_bundle_version(applied_);
    }
    *m.mutable_health() = std::move(report);
    return Write(m);
  }

  // The tunnels of the last bundle applied (names as the compiler made them).
  std::vector<std::string> applied_tunnels() const {
    std::lock_guard lock(mu_);
    std::vector<std::string> out;
    for (auto it = bundles_.rbegin(); it != bundles_.rend(); ++it) {
      if (!it->verify_error.empty() || it->bundle.version() != applied_) continue;
      for (const auto& t : it->bundle.tunnels()) out.push_back(t.name());
      break;
    }
    return out;
  }

  // True while the stream is open (the reader thread has not seen its end).
  bool connected() const { return connected_; }

  void set_mode(Mode m) {
    std::lock_guard lock(mu_);
    mode_ = m;
  }
  // Pretend a delivered command got lost before execution (the next one is dropped silently).
  void drop_next_command() {
    std::lock_guard lock(mu_);
    drop_next_command_ = true;
  }

  std::vector<ReceivedBundle> bundles() const {
    std::lock_guard lock(mu_);
    return bundles_;
  }
  std::vector<uint64_t> commands_received() const {
    std::lock_guard lock(mu_);
    return commands_received_;
  }
  std::map<uint64_t, int> executions() const {
    std::lock_guard lock(mu_);
    return executions_;
  }
  uint64_t applied() const {
    std::lock_guard lock(mu_);
    return applied_;
  }

 private:
  void ReadLoop() {
    v1::ControllerMessage m;
    while (stream_->Read(&m)) {
      std::vector<v1::AgentMessage> replies;
      {
        std::lock_guard lock(mu_);
        if (m.has_bundle()) HandleBundle(m.bundle(), &replies);
        if (m.has_command()) HandleCommand(m.command(), &replies);
      }
      for (const auto& r : replies) Write(r);
    }
    connected_ = false;
  }

  // One writer at a time: the reader thread acks while a test sends health.
  bool Write(const v1::AgentMessage& m) {
    std::lock_guard lock(write_mu_);
    return stream_ && stream_->Write(m);
  }

  void HandleBundle(const v1::SignedBundle& sb, std::vector<v1::AgentMessage>* replies) {
    ReceivedBundle rb;
    rb.signed_bundle = sb;
    if (!rb.bundle.ParseFromString(sb.bundle())) {
      rb.verify_error = "unparseable bundle";
    } else {
      auto v = ca::VerifyBundle(sb.bundle(), sb.signature(), sb.signer_certificate(), ca_pem_, rb.bundle.crl(),
                                sb.algorithm());
      if (!v.ok()) rb.verify_error = std::string(v.status().message());
      if (rb.bundle.host() != name_) rb.verify_error += " wrong host " + rb.bundle.host();
    }
    bundles_.push_back(rb);
    v1::AgentMessage ack;
    ack.mutable_bundle_ack()->set_version(rb.bundle.version());
    if (!rb.verify_error.empty()) {
      ack.mutable_bundle_ack()->set_applied(false);
      ack.mutable_bundle_ack()->set_error(rb.verify_error);
    } else if (rb.bundle.version() <= applied_) {
      ack.mutable_bundle_ack()->set_applied(false);
      ack.mutable_bundle_ack()->set_error("rollback: version not higher than applied");
    } else if (mode_ == Mode::kSilent) {
      return;
    } else if (mode_ == Mode::kRefuse) {
      ack.mutable_bundle_ack()->set_applied(false);
      ack.mutable_bundle_ack()->set_error("simulated failure: cannot install policy");
    } else {
      applied_ = rb.bundle.version();
      ack.mutable_bundle_ack()->set_applied(true);
      for (const auto& t : rb.bundle.tunnels()) {
        auto* r = ack.mutable_bundle_ack()->add_tunnels();
        r->set_tunnel(t.name());
        r->set_ok(true);
      }
    }
    replies->push_back(ack);
    if (ack.bundle_ack().applied()) {
      v1::AgentMessage health;
      v1::HealthReport* h = health.mutable_health();
      h->set_host(name_);
      h->set_bundle_version(applied_);
      for (const auto& t : rb.bundle.tunnels()) {
        v1::TunnelHealth* th = h->add_tunnels();
        th->set_tunnel(t.name());
        th->set_up(true);
        th->add_child_sas()->set_state(v1::SA_STATE_ESTABLISHED);
      }
      replies->push_back(health);
    }
  }

  void HandleCommand(const v1::Command& c, std::vector<v1::AgentMessage>* replies) {
    commands_received_.push_back(c.id());
    if (drop_next_command_) {
      drop_next_command_ = false;
      return;
    }
    if (c.id() <= last_command_) return;  // executed already: at most once
    last_command_ = c.id();
    ++executions_[c.id()];
    v1::AgentMessage r;
    v1::CommandResult* res = r.mutable_command_result();
    res->set_id(c.id());
    res->set_ok(true);
    auto* before = res->add_sas_before();
    before->set_tunnel(c.tunnel());
    before->set_spi_in("c1000001");
    before->set_spi_out("c2000001");
    auto* after = res->add_sas_after();
    after->set_tunnel(c.tunnel());
    after->set_spi_in("c1000002");
    after->set_spi_out("c2000002");
    res->set_recovery_ms(12);
    replies->push_back(r);
  }

  std::string name_;
  std::string ca_pem_;
  ossl::PKey key_;
  std::string cert_pem_;
  std::vector<std::string> controllers_;
  std::unique_ptr<v1::AgentService::Stub> stub_;
  std::unique_ptr<grpc::ClientContext> ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::AgentMessage, v1::ControllerMessage>> stream_;
  std::thread reader_;
  std::atomic<bool> connected_{false};

  std::mutex write_mu_;
  mutable std::mutex mu_;
  Mode mode_ = Mode::kAck;
  bool drop_next_command_ = false;
  uint64_t applied_ = 0;
  uint64_t last_command_ = 0;
  std::vector<ReceivedBundle> bundles_;
  std::vector<uint64_t> commands_received_;
  std::map<uint64_t, int> executions_;
};

}  // namespace ipfleet::testing
