// Two controller processes (replicas) on one PostgreSQL inventory, with simulated agents spread
// over both: the standby refuses rollout commands and names the leader; bundles and commands
// reach agents on either replica; the leader is SIGKILLed in the middle of a rollout and the
// standby takes over and finishes it, with nothing acknowledged before the kill lost and a
// flush-sa sent before the kill executed exactly once. Also: PostgreSQL restarted under a running
// controller (not ready, writes refused, recovery by itself), and a wrong connection string.
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "controller_process.h"
#include "fake_agent.h"
#include "free_port.h"
#include "ipfleet/ca/authority.h"
#include "ipfleet/ca/fingerprint.h"
#include "ipfleet/v1/admin_service.grpc.pb.h"
#include "postgres_server.h"

namespace ipfleet::testing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

class HaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = PostgresServer::MissingReason(); !why.empty()) GTEST_SKIP() << why;
    auto server = PostgresServer::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    pg_ = std::move(*server);
    auto uri = pg_->CreateDatabase("ha");
    ASSERT_TRUE(uri.ok()) << uri.status();
    uri_ = *uri;
    root_ = fs::temp_directory_path() /
            ("ipf-ha-" + std::to_string(::getpid()) + "-" + std::to_string(std::random_device{}() % 1000000));
    // Two data directories with the same key material, as the HA guide copies it.
    for (const char* r : {"c1", "c2"}) fs::create_directories(root_ / r);
    fs::permissions(root_, fs::perms::owner_all);
    ca::ControllerInitOptions init;
    init.addresses = {"127.0.0.1"};
    auto pki = ca::InitControllerPki(root_ / "c1", init);
    ASSERT_TRUE(pki.ok()) << pki.status();
    ca_pem_ = (*pki)->CertificatePem();
    for (const char* sub : {"ca", "tls"}) {
      fs::copy(root_ / "c1" / sub, root_ / "c2" / sub, fs::copy_options::recursive);
    }
  }
  void TearDown() override {
    agents_.clear();
    replicas_.clear();
    pg_.reset();
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  struct Replica {
    std::unique_ptr<ControllerProcess> process;
    int port = 0;
    std::string Target() const { return "127.0.0.1:" + std::to_string(port); }
    v1::AdminService::Stub& admin() { return process->admin(); }
  };

  ControllerProcessOptions Options(const std::string& id, int port, const std::string& inventory,
                                   std::string notify_socket = {}) const {
    ControllerProcessOptions o;
    o.binary = IPFLEET_CONTROLLER_PATH;
    o.data_dir = root_ / id;
    o.listen = "127.0.0.1:" + std::to_string(port);
    o.notify_socket = std::move(notify_socket);
    o.extra_args = {"--inventory", inventory, "--replica-id", id};
    return o;
  }

  Replica& Spawn(const std::string& id, std::string notify_socket = {}) {
    Replica& r = replicas_[id];
    if (r.port == 0) r.port = FreeLoopbackPort();
    r.process = std::make_unique<ControllerProcess>(Options(id, r.port, uri_, std::move(notify_socket)));
    absl::Status started = r.process->Start();
    EXPECT_TRUE(started.ok()) << started;
    return r;
  }

  static std::unique_ptr<grpc::ClientContext> Ctx(int seconds = 20) {
    auto c = std::make_unique<grpc::ClientContext>();
    c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
    return c;
  }

  static v1::FleetStatusResponse Status(Replica& r) {
    v1::FleetStatusResponse s;
    EXPECT_TRUE(r.admin().FleetStatus(Ctx().get(), v1::FleetStatusRequest(), &s).ok());
    return s;
  }
  static std::string LeaderOf(const v1::FleetStatusResponse& s) {
    for (const auto& r : s.replicas()) {
      if (r.leader()) return r.id();
    }
    return "";
  }
  static const v1::HostStatus* HostOf(const v1::FleetStatusResponse& s, const std::string& host) {
    for (const auto& h : s.hosts()) {
      if (h.host() == host) return &h;
    }
    return nullptr;
  }

  v1::RolloutStatus Rollout(Replica& r, uint64_t id) {
    v1::GetRolloutRequest req;
    req.set_id(id);
    v1::RolloutStatus out;
    EXPECT_TRUE(r.admin().GetRollout(Ctx().get(), req, &out).ok());
    return out;
  }
  static v1::HostRollout HostIn(const v1::RolloutStatus& r, const std::string& host) {
    for (const auto& h : r.hosts()) {
      if (h.host() == host) return h;
    }
    ADD_FAILURE() << host << " is missing from rollout " << r.id();
    return {};
  }

  // Adds the host through `via`, enrolls its agent there and connects it to `holder`.
  void AddAgent(Replica& via, Replica& holder, const std::string& name, int n) {
    v1::AddHostRequest req;
    req.set_name(name);
    req.add_addresses("192.0.2." + std::to_string(60 + n));
    (*req.mutable_labels())["group"] = "g1";
    v1::AddHostResponse resp;
    ASSERT_TRUE(via.admin().AddHost(Ctx().get(), req, &resp).ok());
    auto a = std::make_unique<FakeAgent>(name, ca_pem_);
    ASSERT_TRUE(a->Enroll(via.Target(), resp.token()).ok());
    a->Connect(holder.Target());
    agents_[name] = std::move(a);
  }

  std::unique_ptr<PostgresServer> pg_;
  std::string uri_;
  fs::path root_;
  std::string ca_pem_;
  std::map<std::string, Replica> replicas_;
  std::map<std::string, std::unique_ptr<FakeAgent>> agents_;
};

TEST_F(HaTest, LeaderKilledMidRolloutStandbyFinishesItAndFlushRunsOnce) {
  Replica& c1 = Spawn("c1");
  ASSERT_TRUE(WaitFor([&] { return LeaderOf(Status(c1)) == "c1"; }));
  Replica& c2 = Spawn("c2");
  ASSERT_TRUE(WaitFor([&] {
    v1::FleetStatusResponse s = Status(c2);
    return LeaderOf(s) == "c1" && s.replicas_size() == 2;
  }));

  // k1, k2 hold sessions on the leader, k3, k4 on the standby; every host is visible from both.
  const std::vector<std::string> names = {"k1", "k2", "k3", "k4"};
  for (int i = 0; i < 4; ++i) ASSERT_NO_FATAL_FAILURE(AddAgent(c1, i < 2 ? c1 : c2, names[i], i));
  // Enrollment names every replica, the answering one first: what the agent fails over to.
  EXPECT_EQ(agents_["k1"]->controllers(), (std::vector<std::string>{c1.Target(), c2.Target()}));
  ASSERT_TRUE(WaitFor([&] {
    v1::FleetStatusResponse s = Status(c1);
    for (int i = 0; i < 4; ++i) {
      const v1::HostStatus* h = HostOf(s, names[i]);
      if (!h || !h->connected() || h->replica() != (i < 2 ? "c1" : "c2")) return false;
    }
    return true;
  })) << Status(c1).DebugString();

  v1::ApplyRequest ap;
  ap.set_fleet_yaml("meshes:\n  - select: {group: g1}\n");
  v1::ApplyResponse apr;
  ASSERT_TRUE(c2.admin().Apply(Ctx().get(), ap, &apr).ok());  // any replica applies

  v1::StartRolloutRequest sr;
  sr.set_canary_percent(25);
  sr.set_wave_size(1);
  sr.set_wave_timeout_seconds(300);
  v1::RolloutStatus started;
  grpc::Status refused = c2.admin().StartRollout(Ctx().get(), sr, &started);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(refused.error_message().find("leader is replica c1"), std::string::npos) << refused.error_message();

  agents_["k3"]->set_mode(FakeAgent::Mode::kSilent);  // holds wave 3 open, on the standby's session
  ASSERT_TRUE(c1.admin().StartRollout(Ctx().get(), sr, &started).ok());
  ASSERT_EQ(started.waves(), 4u);
  v1::RolloutStatus before;
  ASSERT_TRUE(WaitFor([&] {
    before = Rollout(c1, started.id());
    return HostIn(before, "k3").state() == v1::HOST_ROLLOUT_STATE_SENT && agents_["k3"]->bundles().size() == 1;
  })) << before.DebugString();
  // k2's ack came through the leader's own session, k3's bundle went through the bus to c2.
  EXPECT_EQ(HostIn(before, "k1").state(), v1::HOST_ROLLOUT_STATE_DONE);
  EXPECT_EQ(HostIn(before, "k2").state(), v1::HOST_ROLLOUT_STATE_DONE);
  EXPECT_EQ(HostIn(before, "k4").state(), v1::HOST_ROLLOUT_STATE_PENDING);

  // A flush-sa for k1 (on the leader) is delivered but lost before it runs.
  v1::SendCommandRequest cmd;
  cmd.set_kind(v1::COMMAND_KIND_FLUSH_SA);
  agents_["k1"]->drop_next_command();
  cmd.set_host("k1");
  v1::CommandStatus k1_cmd;
  ASSERT_TRUE(c1.admin().SendCommand(Ctx().get(), cmd, &k1_cmd).ok());
  ASSERT_TRUE(WaitFor([&] { return !agents_["k1"]->commands_received().empty(); }));
  EXPECT_TRUE(agents_["k1"]->executions().empty());
  // A flush-sa for k4, whose session is on the standby, and the leader dies the moment it has
  // answered: the notice to the standby was committed with the command, so it is not lost.
  cmd.set_host("k4");
  v1::CommandStatus k4_cmd;
  ASSERT_TRUE(c1.admin().SendCommand(Ctx().get(), cmd, &k4_cmd).ok());
  c1.process->Stop(SIGKILL);
  const auto killed = Clock::now();
  ASSERT_TRUE(WaitFor([&] { return agents_["k4"]->executions().count(k4_cmd.command().id()) > 0; },
                      std::chrono::seconds(10)));

  // The standby leads within seconds and resumes the same rollout from the inventory.
  ASSERT_TRUE(WaitFor([&] { return LeaderOf(Status(c2)) == "c2"; }, std::chrono::seconds(10)));
  const double takeover_s = std::chrono::duration<double>(Clock::now() - killed).count();
  std::printf("leader takeover after SIGKILL: %.2f s\n", takeover_s);
  v1::RolloutStatus resumed = Rollout(c2, 0);
  EXPECT_EQ(resumed.id(), started.id());
  for (const auto& name : {"k1", "k2", "k3"}) {
    EXPECT_EQ(HostIn(resumed, name).version(), HostIn(before, name).version()) << name;
    EXPECT_EQ(HostIn(resumed, name).state(), HostIn(before, name).state()) << name;
  }

  // The leader's agents fail over to the standby (as the agent's session does along --controller).
  for (const auto& name : {"k1", "k2"}) ASSERT_TRUE(WaitFor([&] { return !agents_[name]->connected(); }));
  agents_["k3"]->set_mode(FakeAgent::Mode::kAck);
  for (const auto& name : {"k1", "k2", "k3"}) agents_[name]->Connect(c2.Target());
  ASSERT_TRUE(WaitFor([&] {
    v1::FleetStatusResponse s = Status(c2);
    for (const auto& name : names) {
      const v1::HostStatus* h = HostOf(s, name);
      if (!h || !h->connected() || h->replica() != "c2") return false;
    }
    return true;
  }, std::chrono::seconds(10)));
  const double reconnected_s = std::chrono::duration<double>(Clock::now() - killed).count();
  std::printf("every agent on the surviving replica: %.2f s after the kill\n", reconnected_s);
  EXPECT_LT(reconnected_s, 10.0);

  v1::RolloutStatus done;
  ASSERT_TRUE(WaitFor([&] {
    done = Rollout(c2, started.id());
    return done.state() != v1::ROLLOUT_STATE_RUNNING;
  }, std::chrono::seconds(30)));
  ASSERT_EQ(done.state(), v1::ROLLOUT_STATE_SUCCEEDED) << done.error();
  for (const auto& [name, a] : agents_) {
    EXPECT_EQ(a->applied(), HostIn(done, name).version()) << name;  // every host acknowledged
  }
  // Acknowledged before the kill, still so, at the same versions.
  EXPECT_EQ(HostIn(done, "k1").version(), HostIn(before, "k1").version());
  EXPECT_EQ(HostIn(done, "k2").version(), HostIn(before, "k2").version());

  // The lost flush-sa runs exactly once, after the failover (resent on the new session's hello).
  ASSERT_TRUE(WaitFor([&] { return agents_["k1"]->executions().count(k1_cmd.command().id()) > 0; }));
  v1::GetCommandRequest get;
  get.set_id(k1_cmd.command().id());
  get.set_wait_seconds(10);
  v1::CommandStatus result;
  ASSERT_TRUE(c2.admin().GetCommand(Ctx().get(), get, &result).ok());
  EXPECT_EQ(result.state(), v1::COMMAND_STATE_SUCCEEDED);
  EXPECT_EQ(agents_["k1"]->executions().at(k1_cmd.command().id()), 1);
  EXPECT_EQ(agents_["k4"]->executions().at(k4_cmd.command().id()), 1);

  int status = c2.process->Stop(SIGTERM);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "wait status " << status;
}

// systemd's side of sd_notify, to read what the controller says about its readiness.
class NotifySocket {
 public:
  explicit NotifySocket(const fs::path& path) : path_(path) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    ok_ = fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~NotifySocket() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool ok() const { return ok_; }
  // Datagrams until one contains `text`, within `timeout`.
  bool WaitFor(const std::string& text, std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
      if (::poll(&p, 1, std::max(left, 1)) != 1) continue;
      char buf[512];
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n > 0 && std::string(buf, static_cast<size_t>(n)).find(text) != std::string::npos) return true;
    }
    return false;
  }

 private:
  fs::path path_;
  int fd_ = -1;
  bool ok_ = false;
};

TEST_F(HaTest, PostgresRestartedUnderARunningControllerRefusesWritesThenRecovers) {
  NotifySocket notify(root_ / "notify.sock");
  ASSERT_TRUE(notify.ok());
  Replica& c1 = Spawn("c1", (root_ / "notify.sock").string());
  ASSERT_TRUE(notify.WaitFor("READY=1", std::chrono::seconds(10)));
  ASSERT_TRUE(WaitFor([&] { return LeaderOf(Status(c1)) == "c1"; }));

  for (int i = 0; i < 2; ++i) {  // two hosts, so that a mesh has a tunnel and makes a generation
    v1::AddHostRequest host;
    host.set_name("m" + std::to_string(i));
    host.add_addresses("192.0.2." + std::to_string(70 + i));
    (*host.mutable_labels())["group"] = "g1";
    v1::AddHostResponse added;
    ASSERT_TRUE(c1.admin().AddHost(Ctx().get(), host, &added).ok());
  }
  v1::ApplyRequest apply;
  apply.set_fleet_yaml("meshes:\n  - select: {group: g1}\n");
  v1::ApplyResponse applied;
  ASSERT_TRUE(c1.admin().Apply(Ctx().get(), apply, &applied).ok());
  ASSERT_EQ(Status(c1).generation(), 1u);

  ASSERT_TRUE(pg_->Stop().ok());
  EXPECT_TRUE(notify.WaitFor("inventory UNREACHABLE", std::chrono::seconds(10)));
  apply.set_fleet_yaml(  // every tunnel changes: a whole new generation, refused
      "proposals:\n  default: {ike: {encryption: [aes256gcm16], prf: [prfsha256], dh_groups: [curve25519]}, "
      "esp: {encryption: [aes256gcm16]}}\nmeshes:\n  - select: {group: g1}\n");
  grpc::Status apply_refused = c1.admin().Apply(Ctx().get(), apply, &applied);
  EXPECT_EQ(apply_refused.error_code(), grpc::StatusCode::UNAVAILABLE) << apply_refused.error_message();
  v1::AddHostRequest req;
  req.set_name("during-outage");
  req.add_addresses("192.0.2.99");
  v1::AddHostResponse resp;
  grpc::Status refused = c1.admin().AddHost(Ctx().get(), req, &resp);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE) << refused.error_message();
  EXPECT_NE(refused.error_message().find("reconnects by itself"), std::string::npos) << refused.error_message();

  ASSERT_TRUE(pg_->Restart().ok());
  EXPECT_TRUE(notify.WaitFor("inventory reachable; leading", std::chrono::seconds(15)));
  // Writes work again without a restart of the controller; the refused ones left nothing behind.
  EXPECT_EQ(Status(c1).generation(), 1u);  // no half-applied generation
  v1::GetHostRequest get;
  get.set_name("during-outage");
  v1::HostInfo info;
  EXPECT_EQ(c1.admin().GetHost(Ctx().get(), get, &info).error_code(), grpc::StatusCode::NOT_FOUND);
  req.set_name("after-outage");
  EXPECT_TRUE(c1.admin().AddHost(Ctx().get(), req, &resp).ok());
  EXPECT_TRUE(WaitFor([&] { return LeaderOf(Status(c1)) == "c1"; }, std::chrono::seconds(10)));
  int status = c1.process->Stop(SIGTERM);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "wait status " << status;
}

#ifdef IPFLEET_AGENT_PATH
// The real agent's enrollment through one replica writes every replica into agent.json, the one it
// was given first: what its session fails over along.
TEST_F(HaTest, EnrollmentWritesEveryReplicaIntoTheAgentsConfig) {
  Replica& c1 = Spawn("c1");
  Replica& c2 = Spawn("c2");
  ASSERT_TRUE(WaitFor([&] { return Status(c1).replicas_size() == 2; }));
  v1::AddHostRequest req;
  req.set_name("e1");
  req.add_addresses("192.0.2.90");
  v1::AddHostResponse added;
  ASSERT_TRUE(c2.admin().AddHost(Ctx().get(), req, &added).ok());
  auto fingerprint = ca::FingerprintSha256Pem(ca_pem_);
  ASSERT_TRUE(fingerprint.ok());
  const fs::path data = root_ / "agent-e1";
  const std::string cmd = "timeout 60 " IPFLEET_AGENT_PATH " enroll --controller " + c2.Target() + " --name e1 --token " +
                          added.token() + " --ca-fingerprint " + *fingerprint + " --data-dir " + data.string() +
                          " > " + (root_ / "enroll-e1.log").string() + " 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::ifstream in(data / "agent.json");
  auto config = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(config.is_object()) << "agent.json unreadable";
  EXPECT_EQ(config["controllers"], nlohmann::json::array({c2.Target(), c1.Target()})) << config.dump();
}
#endif

TEST_F(HaTest, WrongConnectionStringFailsAtStartWithAClearError) {
  ControllerProcess bad(Options("c1", FreeLoopbackPort(), pg_->Uri("no_such_db")));
  absl::Status started = bad.Start(std::chrono::seconds(15));
  ASSERT_FALSE(started.ok());
  EXPECT_NE(started.message().find("cannot connect to the inventory at postgresql://"), std::string::npos) << started;
  EXPECT_NE(started.message().find("\"no_such_db\" does not exist"), std::string::npos) << started;
  EXPECT_FALSE(fs::exists(root_ / "c1" / "inventory.db"));  // no SQLite file made on the side
}

TEST_F(HaTest, NewerSchemaInTheDatabaseIsRefusedAtStartAndLeftAlone) {
  {
    Replica& c1 = Spawn("c1");  // creates the schema
    ASSERT_EQ(c1.process->Stop(SIGTERM), 0);
  }
  auto exec = [&](const std::string& sql) {
    PGconn* c = PQconnectdb(uri_.c_str());
    PGresult* r = PQexec(c, sql.c_str());
    std::string value = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "";
    PQclear(r);
    PQfinish(c);
    return value;
  };
  exec("UPDATE ipfleet_schema SET version = 999");
  ControllerProcess newer(Options("c2", FreeLoopbackPort(), uri_));
  absl::Status started = newer.Start(std::chrono::seconds(15));
  ASSERT_FALSE(started.ok());
  EXPECT_NE(started.message().find("schema version 999"), std::string::npos) << started;
  EXPECT_NE(started.message().find("run a newer ipfleet-controller"), std::string::npos) << started;
  EXPECT_EQ(exec("SELECT version FROM ipfleet_schema"), "999");
  EXPECT_EQ(exec("SELECT count(*) FROM replicas WHERE id = 'c2'"), "0");  // it wrote nothing
}

}  // namespace
}  // namespace ipfleet::testing
