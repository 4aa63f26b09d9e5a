// The controller process is killed with SIGKILL in the middle of a rollout and started again: the
// same rollout resumes with the same versions and bytes, and finishes.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <random>

#include "controller_process.h"
#include "fake_agent.h"
#include "free_port.h"
#include "ipfleet/ca/authority.h"
#include "ipfleet/v1/admin_service.grpc.pb.h"

namespace ipfleet::testing {
namespace {

namespace fs = std::filesystem;

class CrashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("ipf-crash-" + std::to_string(::getpid()) + "-" +
                                        std::to_string(std::random_device{}() % 1000000));
    fs::create_directories(dir_);
    fs::permissions(dir_, fs::perms::owner_all);
    ca::ControllerInitOptions init;
    init.addresses = {"127.0.0.1"};
    auto pki = ca::InitControllerPki(dir_, init);
    ASSERT_TRUE(pki.ok()) << pki.status();
    ca_pem_ = (*pki)->CertificatePem();
    port_ = FreeLoopbackPort();
  }
  void TearDown() override {
    agents_.clear();
    controller_.reset();  // stops a controller a failed test left running (bounded)
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // Starts (or restarts) the controller process on the same directory and agent port.
  void Spawn() {
    ControllerProcessOptions o;
    o.binary = IPFLEET_CONTROLLER_PATH;
    o.data_dir = dir_;
    o.listen = Target();
    controller_ = std::make_unique<ControllerProcess>(std::move(o));
    absl::Status started = controller_->Start();
    ASSERT_TRUE(started.ok()) << started;
    admin_ = &controller_->admin();
  }

  static std::unique_ptr<grpc::ClientContext> Ctx(int seconds = 20) {
    auto c = std::make_unique<grpc::ClientContext>();
    c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
    return c;
  }
  std::string Target() const { return "127.0.0.1:" + std::to_string(port_); }

  bool Connected(const std::string& host) {
    v1::GetHostRequest req;
    req.set_name(host);
    v1::HostInfo info;
    return admin_->GetHost(Ctx().get(), req, &info).ok() && info.connected();
  }

  v1::RolloutStatus Rollout(uint64_t id) {
    v1::GetRolloutRequest req;
    req.set_id(id);
    v1::RolloutStatus r;
    EXPECT_TRUE(admin_->GetRollout(Ctx().get(), req, &r).ok());
    return r;
  }

  static const v1::HostRollout* Find(const v1::RolloutStatus& r, const std::string& host) {
    for (const auto& h : r.hosts()) {
      if (h.host() == host) return &h;
    }
    return nullptr;
  }
  // The host's row; a missing row is a test failure, not a crash.
  static const v1::HostRollout& HostIn(const v1::RolloutStatus& r, const std::string& host) {
    const v1::HostRollout* h = Find(r, host);
    if (h) return *h;
    ADD_FAILURE() << host << " is missing from rollout " << r.id();
    return v1::HostRollout::default_instance();
  }

  fs::path dir_;
  std::string ca_pem_;
  int port_ = 0;
  std::unique_ptr<ControllerProcess> controller_;
  v1::AdminService::Stub* admin_ = nullptr;
  std::map<std::string, std::unique_ptr<FakeAgent>> agents_;
};

TEST_F(CrashTest, SigkillMidRolloutResumesTheSameRollout) {
  ASSERT_NO_FATAL_FAILURE(Spawn());
  std::vector<std::string> names = {"k1", "k2", "k3", "k4"};
  for (size_t i = 0; i < names.size(); ++i) {
    v1::AddHostRequest req;
    req.set_name(names[i]);
    req.add_addresses("192.0.2." + std::to_string(60 + i));
    (*req.mutable_labels())["group"] = "g1";
    v1::AddHostResponse resp;
    ASSERT_TRUE(admin_->AddHost(Ctx().get(), req, &resp).ok());
    auto a = std::make_unique<FakeAgent>(names[i], ca_pem_);
    ASSERT_TRUE(a->Enroll(Target(), resp.token()).ok());
    a->Connect(Target());
    agents_[names[i]] = std::move(a);
    ASSERT_TRUE(WaitFor([&] { return Connected(names[i]); }));
  }
  v1::ApplyRequest ap;
  ap.set_fleet_yaml("meshes:\n  - select: {group: g1}\n");
  v1::ApplyResponse apr;
  ASSERT_TRUE(admin_->Apply(Ctx().get(), ap, &apr).ok());
  agents_["k3"]->set_mode(FakeAgent::Mode::kSilent);  // holds wave 3 open
  v1::StartRolloutRequest sr;
  sr.set_canary_percent(25);
  sr.set_wave_size(1);
  sr.set_wave_timeout_seconds(300);
  v1::RolloutStatus started;
  ASSERT_TRUE(admin_->StartRollout(Ctx().get(), sr, &started).ok());
  ASSERT_EQ(started.waves(), 4u);
  v1::RolloutStatus before;
  ASSERT_TRUE(WaitFor([&] {
    before = Rollout(started.id());
    const v1::HostRollout* h = Find(before, "k3");
    return h && h->state() == v1::HOST_ROLLOUT_STATE_SENT && agents_["k3"]->bundles().size() == 1;
  }));
  EXPECT_EQ(HostIn(before, "k2").state(), v1::HOST_ROLLOUT_STATE_DONE);
  EXPECT_EQ(HostIn(before, "k4").state(), v1::HOST_ROLLOUT_STATE_PENDING);

  controller_->Stop(SIGKILL);
  ASSERT_NO_FATAL_FAILURE(Spawn());
  v1::RolloutStatus resumed = Rollout(0);
  EXPECT_EQ(resumed.id(), started.id());
  EXPECT_EQ(resumed.state(), v1::ROLLOUT_STATE_RUNNING);
  EXPECT_EQ(resumed.current_wave(), 2u);
  for (const auto& name : {"k1", "k2", "k3"}) {
    EXPECT_EQ(HostIn(resumed, name).version(), HostIn(before, name).version()) << name;
    EXPECT_EQ(HostIn(resumed, name).state(), HostIn(before, name).state()) << name;
  }

  agents_["k3"]->set_mode(FakeAgent::Mode::kAck);
  for (auto& [name, a] : agents_) a->Connect(Target());
  v1::RolloutStatus done;
  ASSERT_TRUE(WaitFor([&] {
    done = Rollout(started.id());
    return done.state() != v1::ROLLOUT_STATE_RUNNING;
  }));
  ASSERT_EQ(done.state(), v1::ROLLOUT_STATE_SUCCEEDED) << done.error();
  EXPECT_EQ(HostIn(done, "k3").version(), HostIn(before, "k3").version());
  for (const auto& [name, a] : agents_) {
    auto bundles = a->bundles();
    ASSERT_FALSE(bundles.empty()) << name;
    EXPECT_EQ(a->applied(), HostIn(done, name).version()) << name;
    for (size_t i = 1; i < bundles.size(); ++i) {
      // The same version is only ever the same bytes (k3 got its bundle again after the restart).
      if (bundles[i].bundle.version() == bundles[i - 1].bundle.version()) {
        EXPECT_EQ(bundles[i].signed_bundle.bundle(), bundles[i - 1].signed_bundle.bundle()) << name;
      } else {
        EXPECT_GT(bundles[i].bundle.version(), bundles[i - 1].bundle.version()) << name;
      }
    }
  }
  EXPECT_EQ(agents_["k3"]->bundles().size(), 2u);

  // The resumed controller shuts down on SIGTERM like any other (a stuck one is SIGKILLed, status 9).
  int status = controller_->Stop(SIGTERM);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "wait status " << status;
}

}  // namespace
}  // namespace ipfleet::testing
