// Test harness for the controller: a data directory with a fresh PKI, an in-process controller on
// loopback port 0 with an adjustable clock, an AdminService stub on its unix socket, and
// simulated agents speaking the agent side of the v1 contract over real TLS.
#pragma once

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <sys/wait.h>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>

#include "ipfleet/ca/authority.h"
#include "ipfleet/ca/csr.h"
#include "ipfleet/ca/keys.h"
#include "ipfleet/ca/layout.h"
#include "ipfleet/controller/daemon/serve.h"
#include "ipfleet/v1/admin_service.grpc.pb.h"
#include "ipfleet/v1/agent_service.grpc.pb.h"

namespace ipfleet::testing {

namespace fs = std::filesystem;

inline fs::path MakeTempDir(const std::string& tag) {
  fs::path p = fs::temp_directory_path() /
               ("ipf-" + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(std::random_device{}() % 100000));
  fs::create_directories(p);
  fs::permissions(p, fs::perms::owner_all);
  return p;
}

// Bounded poll: true as soon as `cond` holds, false after `timeout`.
inline bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return cond();
}

inline std::string ReadFileOrDie(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs a shell command, returns its stdout; *status gets the exit status.
inline std::string RunCommand(const std::string& cmd, int* status = nullptr) {
  std::string out;
  FILE* f = ::popen(cmd.c_str(), "r");
  if (!f) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  int st = ::pclose(f);
  if (status) *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return out;
}

// A fleet host's agent, simulated: its own key, a CSR, TLS channels with or without its cert.
class SimAgent {
 public:
  SimAgent(std::string name, std::string ca_pem, std::string target)
      : name_(std::move(name)), ca_pem_(std::move(ca_pem)), target_(std::move(target)) {
    key_ = std::move(ca::GenerateKey(ca::KeyType::kEcdsaP256)).value();
  }
  const std::string& name() const { return name_; }
  const std::string& cert_pem() const { return cert_pem_; }
  void set_cert_pem(std::string pem) { cert_pem_ = std::move(pem); }
  void set_target(std::string target) { target_ = std::move(target); }
  EVP_PKEY* key() { return key_.get(); }
  std::string Csr() { return std::move(ca::MakeCsrPem(key_.get(), name_)).value(); }
  // A new key (renewal, re-enrollment).
  void Rekey() { key_ = std::move(ca::GenerateKey(ca::KeyType::kEcdsaP256)).value(); }

  std::unique_ptr<v1::AgentService::Stub> Stub(bool with_cert) {
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = ca_pem_;
    if (with_cert) {
      o.pem_private_key = std::move(ca::PrivateKeyToPem(key_.get())).value();
      o.pem_cert_chain = cert_pem_;
    }
    return v1::AgentService::NewStub(grpc::CreateChannel(target_, grpc::SslCredentials(o)));
  }

  grpc::Status Enroll(const std::string& host, const std::string& token, v1::EnrollResponse* resp) {
    v1::EnrollRequest req;
    req.set_host(host);
    req.set_token(token);
    req.set_csr_pem(Csr());
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    grpc::Status st = Stub(false)->Enroll(&ctx, req, resp);
    if (st.ok()) cert_pem_ = resp->certificate_pem();
    return st;
  }

 private:
  std::string name_;
  std::string ca_pem_;
  std::string target_;
  ossl::PKey key_;
  std::string cert_pem_;
};

// One open Session stream of a simulated agent.
class SimSession {
 public:
  explicit SimSession(SimAgent& agent, bool with_cert = true) : stub_(agent.Stub(with_cert)) {
    ctx_.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    stream_ = stub_->Session(&ctx_);
  }
  ~SimSession() {
    if (finished_) return;
    ctx_.TryCancel();
    Finish();
  }
  bool Send(const v1::AgentMessage& m) { return stream_->Write(m); }
  bool Hello(const std::string& host, uint64_t bundle_version = 0) {
    v1::AgentMessage m;
    m.mutable_hello()->set_host(host);
    m.mutable_hello()->set_agent_version("sim-0.1");
    m.mutable_hello()->set_bundle_version(bundle_version);
    return Send(m);
  }
  // Blocking read of the next controller message.
  bool Read(v1::ControllerMessage* m) { return stream_->Read(m); }
  // Drains until the stream ends, returns the final status.
  grpc::Status Finish() {
    if (finished_) return status_;
    v1::ControllerMessage m;
    while (stream_->Read(&m)) {
    }
    finished_ = true;
    status_ = stream_->Finish();
    return status_;
  }
  void CloseSend() { stream_->WritesDone(); }

 private:
  std::unique_ptr<v1::AgentService::Stub> stub_;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::AgentMessage, v1::ControllerMessage>> stream_;
  bool finished_ = false;
  grpc::Status status_;
};

class ControllerFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("ctl");
    ca::ControllerInitOptions init;
    init.addresses = {"127.0.0.1", "localhost"};
    auto pki = ca::InitControllerPki(dir_, init);
    ASSERT_TRUE(pki.ok()) << pki.status();
    ca_pem_ = (*pki)->CertificatePem();
    fingerprint_ = (*pki)->Fingerprint();
    now_ = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    StartController();
  }

  void TearDown() override {
    controller_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void StartController() {
    controller::ServeOptions o;
    o.data_dir = dir_;
    o.listen = "127.0.0.1:0";
    o.fsync_every_commit = false;
    o.clock = [this] { return now_.load(); };
    auto c = controller::Controller::Start(o);
    ASSERT_TRUE(c.ok()) << c.status();
    controller_ = std::move(*c);
    admin_ = v1::AdminService::NewStub(
        grpc::CreateChannel("unix:" + controller_->admin_socket().string(), grpc::InsecureChannelCredentials()));
  }

  void RestartController() {
    controller_.reset();
    StartController();
  }

  std::string AgentTarget() const { return "127.0.0.1:" + std::to_string(controller_->agent_port()); }

  std::unique_ptr<SimAgent> NewAgent(const std::string& name) {
    return std::make_unique<SimAgent>(name, ca_pem_, AgentTarget());
  }

  static std::unique_ptr<grpc::ClientContext> Ctx() {
    auto c = std::make_unique<grpc::ClientContext>();
    c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return c;
  }

  v1::AddHostResponse AddHost(const std::string& name, const std::vector<std::string>& addrs,
                              const std::vector<std::string>& dns = {}, uint32_t ttl = 0) {
    v1::AddHostRequest req;
    req.set_name(name);
    for (const auto& a : addrs) req.add_addresses(a);
    for (const auto& d : dns) req.add_dns_names(d);
    req.set_token_ttl_seconds(ttl);
    v1::AddHostResponse resp;
    grpc::Status st = admin_->AddHost(Ctx().get(), req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp;
  }

  // Adds and enrolls a host; the agent holds its certificate afterwards.
  std::unique_ptr<SimAgent> Enrolled(const std::string& name, const std::string& addr) {
    v1::AddHostResponse added = AddHost(name, {addr});
    auto agent = NewAgent(name);
    v1::EnrollResponse er;
    grpc::Status st = agent->Enroll(name, added.token(), &er);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return agent;
  }

  v1::HostStatus StatusOf(const std::string& host) {
    v1::FleetStatusResponse resp;
    grpc::Status st = admin_->FleetStatus(Ctx().get(), v1::FleetStatusRequest(), &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    for (const auto& h : resp.hosts()) {
      if (h.host() == host) return h;
    }
    return v1::HostStatus();
  }

  fs::path dir_;
  std::string ca_pem_;
  std::string fingerprint_;
  std::atomic<int64_t> now_{0};
  std::unique_ptr<controller::Controller> controller_;
  std::unique_ptr<v1::AdminService::Stub> admin_;
};

}  // namespace ipfleet::testing
