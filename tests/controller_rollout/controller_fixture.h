// A controller in process with the fleet module (a fast rollout tick), its fleet CA in a fresh
// data directory, and simulated agents that enroll and hold a session: the ground the rollout and
// dashboard tests stand on.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>

#include "fake_agent.h"
#include "ipfleet/ca/authority.h"
#include "ipfleet/controller/daemon/serve.h"
#include "ipfleet/rollout/module.h"
#include "ipfleet/v1/admin_service.grpc.pb.h"

namespace ipfleet::testing {

namespace fs = std::filesystem;

class ControllerFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("ipf-ctl-" + std::to_string(::getpid()) + "-" +
                                        std::to_string(std::random_device{}() % 1000000));
    fs::create_directories(dir_);
    fs::permissions(dir_, fs::perms::owner_all);
    ca::ControllerInitOptions init;
    init.addresses = {"127.0.0.1", "localhost"};
    auto pki = ca::InitControllerPki(dir_, init);
    ASSERT_TRUE(pki.ok()) << pki.status();
    ca_pem_ = (*pki)->CertificatePem();
  }

  void TearDown() override {
    agents_.clear();
    if (controller_) controller_->Shutdown(std::chrono::milliseconds(500));
    controller_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // Starts the controller on loopback; `customize` may change the options (dashboard, metrics).
  void StartController(const std::function<void(controller::ServeOptions&)>& customize = {}, size_t wave_chunk = 500) {
    controller::ServeOptions o;
    o.data_dir = dir_;
    o.listen = "127.0.0.1:0";
    o.fsync_every_commit = false;
    o.fleet_factory = [wave_chunk](controller::ControllerContext& ctx) {
      rollout::ModuleOptions m;
      m.engine.tick_ms = 20;
      m.engine.wave_chunk = wave_chunk;
      return rollout::MakeFleetModule(ctx, m);
    };
    if (customize) customize(o);
    auto c = controller::Controller::Start(o);
    ASSERT_TRUE(c.ok()) << c.status();
    controller_ = std::move(*c);
    admin_ = v1::AdminService::NewStub(
        grpc::CreateChannel("unix:" + controller_->admin_socket().string(), grpc::InsecureChannelCredentials()));
  }

  std::string Target() const { return "127.0.0.1:" + std::to_string(controller_->agent_port()); }

  static std::unique_ptr<grpc::ClientContext> Ctx(int seconds = 20) {
    auto c = std::make_unique<grpc::ClientContext>();
    c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
    return c;
  }

  // host add + enroll + session, waiting until the controller sees it connected.
  FakeAgent& AddAgent(const std::string& name, const std::string& addr, std::map<std::string, std::string> labels = {}) {
    v1::AddHostRequest req;
    req.set_name(name);
    req.add_addresses(addr);
    for (const auto& [k, v] : labels) (*req.mutable_labels())[k] = v;
    v1::AddHostResponse resp;
    grpc::Status st = admin_->AddHost(Ctx().get(), req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    auto agent = std::make_unique<FakeAgent>(name, ca_pem_);
    st = agent->Enroll(Target(), resp.token());
    EXPECT_TRUE(st.ok()) << st.error_message();
    agent->Connect(Target());
    FakeAgent& ref = *agent;
    agents_[name] = std::move(agent);
    EXPECT_TRUE(WaitFor([&] { return Connected(name); })) << name;
    return ref;
  }

  bool Connected(const std::string& host) {
    v1::GetHostRequest req;
    req.set_name(host);
    v1::HostInfo info;
    return admin_->GetHost(Ctx().get(), req, &info).ok() && info.connected();
  }

  fs::path dir_;
  std::string ca_pem_;
  std::unique_ptr<controller::Controller> controller_;
  std::unique_ptr<v1::AdminService::Stub> admin_;
  std::map<std::string, std::unique_ptr<FakeAgent>> agents_;
};

}  // namespace ipfleet::testing
