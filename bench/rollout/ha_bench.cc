// rollout_ha_bench: N simulated agents on two controller replicas sharing one PostgreSQL inventory,
// beside the same N agents on one controller with SQLite, in one run.
//
//   rollout_ha_bench --hosts 10000 --group 10
//
// SQLite, one controller: time from StartRollout until every host acknowledged (rollout SUCCEEDED),
// and the controller's peak RSS. PostgreSQL, two replicas (agents split between them): the same
// rollout; then a second generation whose rollout loses its leader to SIGKILL a third of the way
// in: time until the standby leads, time until the rollout it resumed has every host, peak RSS of
// each controller. Controllers are the real ipfleet-controller binary (measure a Release build);
// the agents live in forked children (bench/rollout/sim_agents.h); PostgreSQL is a throwaway server
// (tests/support/postgres_server.h, fsync off, as the SQLite controller runs with --no-fsync).
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "controller_process.h"
#include "free_port.h"
#include "ipfleet/ca/authority.h"
#include "ipfleet/controller/inventory/open_store.h"
#include "ipfleet/v1/admin_service.grpc.pb.h"
#include "postgres_server.h"
#include "sim_agents.h"

namespace ipfleet::bench {
namespace {

namespace fs = std::filesystem;
using testing::ControllerProcess;
using testing::ControllerProcessOptions;

// Peak resident set of another process (VmHWM), MiB; 0 when it is gone.
// A size field of /proc/PID/status ("VmHWM:", "VmRSS:") in MiB.
long StatusMiBOf(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field, 0) == 0) return std::stol(line.substr(field.size())) / 1024;
  }
  return 0;
}
long PeakRssMiBOf(pid_t pid) { return StatusMiBOf(pid, "VmHWM:"); }

std::unique_ptr<grpc::ClientContext> Call(int seconds = 120) {
  auto c = std::make_unique<grpc::ClientContext>();
  c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  return c;
}

struct Controller {
  std::unique_ptr<ControllerProcess> process;
  pid_t pid = 0;
  std::string target;
  v1::AdminService::Stub& admin() { return process->admin(); }
};

absl::StatusOr<Controller> Spawn(const fs::path& dir, const std::string& target, const std::string& inventory,
                                 const std::string& id) {
  Controller c;
  c.target = target;
  ControllerProcessOptions o;
  o.binary = IPFLEET_CONTROLLER_PATH;
  o.data_dir = dir;
  o.listen = c.target;
  o.extra_args = {"--inventory", inventory, "--replica-id", id, "--no-fsync", "--log-level", "warn"};
  c.process = std::make_unique<ControllerProcess>(std::move(o));
  IPFLEET_RETURN_IF_ERROR(c.process->Start(std::chrono::seconds(60)));
  c.pid = c.process->pid();
  return c;
}

// Hosts (with their certificates) straight into the inventory, as enrollment would have left them.
absl::Status AddHosts(const std::string& inventory, const fs::path& dir, int hosts, int group,
                      const std::vector<inventory::Certificate>& certs) {
  IPFLEET_ASSIGN_OR_RETURN(auto store, inventory::OpenStore(inventory, dir / "inventory.db"));
  return store->Transact([&](inventory::Tx& tx) -> absl::Status {
    for (int i = 0; i < hosts; ++i) {
      inventory::Host h;
      h.name = HostName(i);
      h.addresses = {HostAddress(i)};
      h.labels = {{"group", "g" + std::to_string(i / group)}};
      IPFLEET_RETURN_IF_ERROR(tx.AddHost(h));
      IPFLEET_RETURN_IF_ERROR(tx.PutCertificate(certs[i]));
      IPFLEET_RETURN_IF_ERROR(tx.SetHostCertificate(h.name, certs[i].serial, certs[i].not_after_unix));
    }
    return absl::OkStatus();
  });
}

int Connected(Controller& c) {
  v1::FleetStatusResponse s;
  if (!c.admin().FleetStatus(Call().get(), v1::FleetStatusRequest(), &s).ok()) return -1;
  int n = 0;
  for (const auto& h : s.hosts()) n += h.connected();
  return n;
}

std::string Leader(Controller& c) {
  v1::FleetStatusResponse s;
  if (!c.admin().FleetStatus(Call().get(), v1::FleetStatusRequest(), &s).ok()) return "";
  for (const auto& r : s.replicas()) {
    if (r.leader()) return r.id();
  }
  return "";
}

bool WaitAllConnected(Controller& c, int hosts, const char* what) {
  auto t0 = Clock::now();
  int n = 0;
  while ((n = Connected(c)) < hosts && Seconds(t0, Clock::now()) < 900) std::this_thread::sleep_for(std::chrono::seconds(1));
  std::printf("%s sessions connected=%d seconds=%.1f load1=%.1f\n", what, n, Seconds(t0, Clock::now()), Load1());
  return n >= hosts;
}

// Applies generation `round` and starts its rollout through `c`; the rollout id, 0 on failure.
uint64_t ApplyAndStart(Controller& c, int hosts, int group, int round) {
  v1::ApplyRequest ar;
  ar.set_fleet_yaml(MeshFleetYaml(hosts, group, round));
  v1::ApplyResponse aresp;
  grpc::Status gs = c.admin().Apply(Call(300).get(), ar, &aresp);
  if (!gs.ok()) {
    std::fprintf(stderr, "apply: %s\n", gs.error_message().c_str());
    return 0;
  }
  v1::StartRolloutRequest sr;
  sr.set_wave_timeout_seconds(600);
  v1::RolloutStatus r;
  gs = c.admin().StartRollout(Call(120).get(), sr, &r);
  if (!gs.ok()) {
    std::fprintf(stderr, "rollout: %s\n", gs.error_message().c_str());
    return 0;
  }
  return r.id();
}

// Polls the rollout through `c` until it ends or `stop_at_done` hosts are done; returns done hosts
// (-1 when it ended in another state than SUCCEEDED).
int Follow(Controller& c, uint64_t id, int stop_at_done) {
  v1::GetRolloutRequest gr;
  gr.set_id(id);
  auto t0 = Clock::now();
  while (Seconds(t0, Clock::now()) < 900) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    v1::RolloutStatus s;
    if (!c.admin().GetRollout(Call(60).get(), gr, &s).ok()) continue;
    int done = 0;
    for (const auto& h : s.hosts()) done += h.state() == v1::HOST_ROLLOUT_STATE_DONE;
    if (s.state() == v1::ROLLOUT_STATE_SUCCEEDED) return done;
    if (s.state() != v1::ROLLOUT_STATE_RUNNING) {
      std::fprintf(stderr, "rollout %llu ended in state %d: %s\n", static_cast<unsigned long long>(id),
                   static_cast<int>(s.state()), s.error().c_str());
      return -1;
    }
    if (done >= stop_at_done) return done;
  }
  return -1;
}

pid_t ForkAgents(const std::vector<Identity>& ids, const std::string& ca_pem, const std::vector<std::string>& targets,
                 int* go_write, std::atomic<int>* received = nullptr) {
  int go[2];
  if (::pipe(go) != 0) return -1;
  pid_t child = ::fork();
  if (child == 0) {
    ::close(go[1]);
    RunAgents(ids, ca_pem, targets, go[0], received);
  }
  ::close(go[0]);
  *go_write = go[1];
  return child;
}

struct Figures {
  double all_acked_s = -1;
  long rss_mib = 0;
  double takeover_s = -1, resumed_all_acked_s = -1;
  long standby_rss_mib = 0;
};

int Run(int hosts, int group, const std::string& workdir) {
  if (std::string why = testing::PostgresServer::MissingReason(); !why.empty()) {
    std::fprintf(stderr, "%s\n", why.c_str());
    return 2;
  }
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  fs::path root = fs::path(workdir) / ("rollout-ha-bench-" + std::to_string(::getpid()));
  // The data directories hold CA keys: gone however the run ends (after the controllers stopped).
  struct RemoveOnExit {
    fs::path dir;
    ~RemoveOnExit() {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  } cleanup{root};
  for (const char* d : {"sqlite", "c1", "c2"}) fs::create_directories(root / d);
  fs::permissions(root, fs::perms::owner_all);
  ca::ControllerInitOptions init;
  init.addresses = {"127.0.0.1"};
  auto pki = ca::InitControllerPki(root / "c1", init);
  if (!pki.ok()) return std::fprintf(stderr, "init: %s\n", std::string(pki.status().message()).c_str()), 1;
  for (const char* d : {"sqlite", "c2"}) {
    for (const char* sub : {"ca", "tls"}) fs::copy(root / "c1" / sub, root / d / sub, fs::copy_options::recursive);
  }
  auto t_setup = Clock::now();
  std::vector<Identity> ids;
  std::vector<inventory::Certificate> certs;
  if (absl::Status st = MakeIdentities(**pki, hosts, &ids, &certs); !st.ok()) {
    return std::fprintf(stderr, "issue: %s\n", std::string(st.message()).c_str()), 1;
  }
  std::printf("setup keys+certs hosts=%d seconds=%.1f\n", hosts, Seconds(t_setup, Clock::now()));
  const std::string ca_pem = (*pki)->CertificatePem();
  pki->reset();
  // Both agent children are forked now, before this process starts gRPC (it does not survive a
  // fork): their targets are chosen up front.
  auto loopback = [] { return "127.0.0.1:" + std::to_string(testing::FreeLoopbackPort()); };
  const std::string sqlite_target = loopback(), c1_target = loopback(), c2_target = loopback();
  std::map<std::string, pid_t> children;
  int sqlite_go = -1, ha_go = -1;
  children["sqlite-agents"] = ForkAgents(ids, ca_pem, {sqlite_target}, &sqlite_go);
  // The agents count the bundles they receive in memory shared with this process: the leader is
  // killed when a third of the fleet has its bundle, whatever the status polling costs.
  void* shared = ::mmap(nullptr, sizeof(std::atomic<int>), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (shared == MAP_FAILED) return std::fprintf(stderr, "mmap: %s\n", std::strerror(errno)), 1;
  auto* received = new (shared) std::atomic<int>(0);
  children["ha-agents"] = ForkAgents(ids, ca_pem, {c1_target, c2_target}, &ha_go, received);
  ids.clear();
  ids.shrink_to_fit();

  Figures lite, ha;
  auto stop_child = [&](const std::string& name) {
    auto it = children.find(name);
    if (it == children.end()) return;
    ::kill(it->second, SIGKILL);
    ::waitpid(it->second, nullptr, 0);
    children.erase(it);
  };
  auto stop_children = [&] {
    while (!children.empty()) stop_child(children.begin()->first);
  };

  // --- SQLite, one controller ---------------------------------------------------------------
  {
    if (absl::Status st = AddHosts("sqlite", root / "sqlite", hosts, group, certs); !st.ok()) {
      return stop_children(), std::fprintf(stderr, "hosts: %s\n", std::string(st.message()).c_str()), 1;
    }
    auto c = Spawn(root / "sqlite", sqlite_target, "sqlite", "sqlite");
    if (!c.ok()) return stop_children(), std::fprintf(stderr, "controller: %s\n", std::string(c.status().message()).c_str()), 1;
    if (::write(sqlite_go, "g", 1) != 1 || !WaitAllConnected(*c, hosts, "sqlite")) return stop_children(), 1;
    auto t0 = Clock::now();
    uint64_t id = ApplyAndStart(*c, hosts, group, 1);
    if (id == 0 || Follow(*c, id, hosts + 1) != hosts) return stop_children(), 1;
    lite.all_acked_s = Seconds(t0, Clock::now());
    lite.rss_mib = PeakRssMiBOf(c->pid);
    std::printf("sqlite rollout hosts=%d all_acked_seconds=%.2f controller_peak_rss_mib=%ld load1=%.1f\n", hosts,
                lite.all_acked_s, lite.rss_mib, Load1());
    stop_child("sqlite-agents");
    c->process->Stop(SIGTERM);
  }

  // --- PostgreSQL, two replicas -------------------------------------------------------------
  auto pg = testing::PostgresServer::Start();
  if (!pg.ok()) return stop_children(), std::fprintf(stderr, "postgres: %s\n", std::string(pg.status().message()).c_str()), 1;
  auto uri = (*pg)->CreateDatabase("bench");
  if (!uri.ok()) return stop_children(), std::fprintf(stderr, "postgres: %s\n", std::string(uri.status().message()).c_str()), 1;
  if (absl::Status st = AddHosts(*uri, root / "c1", hosts, group, certs); !st.ok()) {
    return stop_children(), std::fprintf(stderr, "hosts: %s\n", std::string(st.message()).c_str()), 1;
  }
  certs.clear();
  auto c1 = Spawn(root / "c1", c1_target, *uri, "c1");
  if (!c1.ok()) return stop_children(), std::fprintf(stderr, "c1: %s\n", std::string(c1.status().message()).c_str()), 1;
  auto c2 = Spawn(root / "c2", c2_target, *uri, "c2");
  if (!c2.ok()) return stop_children(), std::fprintf(stderr, "c2: %s\n", std::string(c2.status().message()).c_str()), 1;
  if (::write(ha_go, "g", 1) != 1 || !WaitAllConnected(*c1, hosts, "postgresql")) return stop_children(), 1;
  {
    auto t0 = Clock::now();
    uint64_t id = ApplyAndStart(*c1, hosts, group, 1);
    if (id == 0 || Follow(*c1, id, hosts + 1) != hosts) return stop_children(), 1;
    ha.all_acked_s = Seconds(t0, Clock::now());
    std::printf("postgresql rollout hosts=%d all_acked_seconds=%.2f c1_peak_rss_mib=%ld c2_peak_rss_mib=%ld load1=%.1f\n",
                hosts, ha.all_acked_s, PeakRssMiBOf(c1->pid), PeakRssMiBOf(c2->pid), Load1());
  }
  {
    const int received_before = received->load();
    uint64_t id = ApplyAndStart(*c1, hosts, group, 2);
    if (id == 0) return stop_children(), 1;
    auto t_round = Clock::now();
    while (received->load() - received_before < hosts / 3 && Seconds(t_round, Clock::now()) < 300) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    const int done_at_kill = received->load() - received_before;
    ha.rss_mib = PeakRssMiBOf(c1->pid);
    const long c2_rss_at_kill = StatusMiBOf(c2->pid, "VmRSS:");
    c1->process->Stop(SIGKILL);
    auto killed = Clock::now();
    while (Leader(*c2) != "c2" && Seconds(killed, Clock::now()) < 120) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ha.takeover_s = Seconds(killed, Clock::now());
    const long c2_rss_at_takeover = StatusMiBOf(c2->pid, "VmRSS:");
    int done = Follow(*c2, id, hosts + 1);
    ha.resumed_all_acked_s = Seconds(killed, Clock::now());
    ha.standby_rss_mib = PeakRssMiBOf(c2->pid);
    std::printf("postgresql failover bundles_received_at_kill=%d takeover_seconds=%.2f all_acked_after_kill_seconds=%.2f done=%d "
                "c1_peak_rss_mib=%ld c2_peak_rss_mib=%ld c2_rss_mib_at_kill=%ld at_takeover=%ld at_end=%ld load1=%.1f\n",
                done_at_kill, ha.takeover_s, ha.resumed_all_acked_s, done, ha.rss_mib, ha.standby_rss_mib, c2_rss_at_kill,
                c2_rss_at_takeover, StatusMiBOf(c2->pid, "VmRSS:"), Load1());
    if (done != hosts) return stop_children(), 1;
  }
  stop_children();
  c2->process->Stop(SIGTERM);
  pg->reset();

  std::printf("\n| %d agents | SQLite, 1 controller | PostgreSQL, 2 replicas |\n|---|---|---|\n", hosts);
  std::printf("| rollout, all acknowledged | %.2f s | %.2f s |\n", lite.all_acked_s, ha.all_acked_s);
  std::printf("| leader SIGKILLed mid-rollout: standby leads | (no standby) | %.2f s |\n", ha.takeover_s);
  std::printf("| ... and the resumed rollout has every host | | %.2f s after the kill |\n", ha.resumed_all_acked_s);
  std::printf("| peak RSS per controller | %ld MiB | leader %ld MiB, standby %ld MiB |\n", lite.rss_mib, ha.rss_mib,
              ha.standby_rss_mib);
  return 0;
}

}  // namespace
}  // namespace ipfleet::bench

int main(int argc, char** argv) {
  setvbuf(stdout, nullptr, _IOLBF, 0);
  CLI::App app("ipfleet controller replicas on PostgreSQL beside one SQLite controller");
  int hosts = 10000, group = 10;
  std::string workdir = "/tmp";
  app.add_option("--hosts", hosts, "simulated agents")->capture_default_str();
  app.add_option("--group", group, "hosts per full-mesh group")->capture_default_str();
  app.add_option("--workdir", workdir, "where the data directories go")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::warn);
  return ipfleet::bench::Run(hosts, group, workdir);
}
