// rollout_bench: how fast the controller gets a fleet onto a new generation.
//
//   rollout_bench compile --hosts 10000 --group 10     pure compiler time (full mesh within groups)
//   rollout_bench rollout --hosts 10000 --group 10     controller in this process, N simulated agents
//                                                      in a forked child, one mutual-TLS Session each
//                                                      (bench/rollout/sim_agents.h)
//
// The rollout run reports: time from StartRollout until every host acknowledged its bundle and
// reported its tunnels up (rollout SUCCEEDED), and the controller process's peak RSS (the agents
// live in the child, so they do not count).
#include <dlfcn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <CLI/CLI.hpp>
#include <openssl/evp.h>
#include <spdlog/spdlog.h>
#include <grpcpp/grpcpp.h>
#include <absl/synchronization/mutex.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <thread>

#include "ipfleet/ca/authority.h"
#include "ipfleet/ca/keys.h"
#include "ipfleet/controller/api/context.h"
#include "ipfleet/controller/api/pki.h"
#include "ipfleet/controller/api/session_registry.h"
#include "ipfleet/controller/daemon/serve.h"
#include "ipfleet/controller/inventory/store.h"
#include "ipfleet/policy/compiled_generation.h"
#include "ipfleet/policy/compiler.h"
#include "ipfleet/rollout/module.h"
#include "ipfleet/v1/admin_service.grpc.pb.h"
#include "ipfleet/v1/agent_service.grpc.pb.h"
#include "free_port.h"  // tests/controller_rollout
#include "sim_agents.h"

namespace ipfleet::bench {
namespace {

namespace fs = std::filesystem;

long CurrentRssMiB() {
  long pages = 0, resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return resident * (::sysconf(_SC_PAGESIZE) / 1024) / 1024;
}

long PeakRssMiB() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024;
}

// tcmalloc's view (looked up at run time: a build without tcmalloc prints nothing): bytes the
// program holds, and bytes the allocator keeps free for reuse. Allocated bytes can exceed RSS:
// pages of a buffer nobody wrote to are not resident.
std::string AllocatorStats() {
  using GetProperty = int (*)(const char*, size_t*);
  auto get = reinterpret_cast<GetProperty>(::dlsym(RTLD_DEFAULT, "MallocExtension_GetNumericProperty"));
  if (!get) return "";
  size_t allocated = 0, pageheap_free = 0, thread_caches = 0, central = 0;
  get("generic.current_allocated_bytes", &allocated);
  get("tcmalloc.pageheap_free_bytes", &pageheap_free);
  get("tcmalloc.current_total_thread_cache_bytes", &thread_caches);
  get("tcmalloc.central_cache_free_bytes", &central);
  char buf[160];
  std::snprintf(buf, sizeof(buf), " malloc_in_use_mib=%zu malloc_pageheap_free_mib=%zu malloc_thread_caches_mib=%zu malloc_central_free_mib=%zu",
                allocated >> 20, pageheap_free >> 20, thread_caches >> 20, central >> 20);
  return buf;
}

// With gperftools' full tcmalloc preloaded and ROLLOUT_BENCH_HEAP_PROFILE=PREFIX set, profiles the
// heap from the moment every session is up: apply and rollout allocations only (the heap profiler
// slows handshakes too much to profile them). HEAP_PROFILE_INUSE_INTERVAL sets the dump step.
void StartHeapProfileIfAsked() {
  const char* prefix = std::getenv("ROLLOUT_BENCH_HEAP_PROFILE");
  if (!prefix) return;
  auto start = reinterpret_cast<void (*)(const char*)>(::dlsym(RTLD_DEFAULT, "HeapProfilerStart"));
  if (!start) {
    std::fprintf(stderr, "ROLLOUT_BENCH_HEAP_PROFILE needs LD_PRELOAD=libtcmalloc.so.4 (google-perftools)\n");
    return;
  }
  start(prefix);
}

// --- compile ---------------------------------------------------------------------------------
int RunCompile(int hosts, int group) {
  policy::InventorySnapshot s;
  s.generation = 1;
  s.controller = {{"192.0.2.1"}, 7443};
  v1::Proposal p;
  p.set_name("default");
  p.mutable_ike()->add_encryption("aes128gcm16");
  p.mutable_ike()->add_prf("prfsha256");
  p.mutable_ike()->add_dh_groups("curve25519");
  p.mutable_esp()->add_encryption("aes128gcm16");
  s.proposals["default"] = p;
  for (int i = 0; i < hosts; ++i) s.hosts.push_back({HostName(i), {HostAddress(i)}, {}, {{"group", std::to_string(i / group)}}, {}});
  for (int g = 0; g * group < hosts; ++g) {
    for (int a = g * group; a < std::min(hosts, (g + 1) * group); ++a) {
      for (int b = a + 1; b < std::min(hosts, (g + 1) * group); ++b) {
        policy::Tunnel t;
        t.name = HostName(a) + "--" + HostName(b);
        t.a = {HostName(a), false, {}};
        t.b = {HostName(b), false, {}};
        t.proposal = "default";
        t.origin = "bench";
        s.tunnels.push_back(std::move(t));
      }
    }
  }
  policy::DeterministicKeySource keys(1);
  // What the controller runs on apply: compile, each host's bundle serialized as it is built.
  auto t0 = Clock::now();
  const double cpu0 = CpuSeconds();  // CPU time too: the wall time swings with others' builds here
  auto r = policy::CompiledGeneration::Compile(s, keys);
  const double cpu = CpuSeconds() - cpu0;
  auto t1 = Clock::now();
  if (!r.ok()) {
    std::fprintf(stderr, "compile failed: %s\n", std::string(r.status().message()).c_str());
    return 1;
  }
  // The digest of every bundle's bytes shows a compiler optimisation left the output unchanged.
  size_t bytes = 0;
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> md(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestInit_ex(md.get(), EVP_sha256(), nullptr);
  for (const auto& [h, b] : r->hosts) {
    bytes += b.bytes.size();
    EVP_DigestUpdate(md.get(), b.bytes.data(), b.bytes.size());
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  EVP_DigestFinal_ex(md.get(), digest, &digest_len);
  std::string hex;
  for (unsigned int i = 0; i < 8 && i < digest_len; ++i) hex += "0123456789abcdef"[digest[i] >> 4], hex += "0123456789abcdef"[digest[i] & 15];
  std::printf("compile hosts=%d tunnels=%zu bundles=%zu bundle_bytes_total=%zu bundles_sha256_prefix=%s seconds=%.3f "
              "cpu_seconds=%.3f peak_rss_mib=%ld load1=%.1f\n",
              hosts, s.tunnels.size(), r->hosts.size(), bytes, hex.c_str(), Seconds(t0, t1), cpu, PeakRssMiB(), Load1());
  return 0;
}

bool g_connect_only = false;
int g_rounds = 1;

int RunRollout(int hosts, int group, const std::string& workdir) {
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);

  fs::path dir = fs::path(workdir) / ("rollout-bench-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  fs::permissions(dir, fs::perms::owner_all);
  ca::ControllerInitOptions init;
  init.addresses = {"127.0.0.1"};
  auto pki = ca::InitControllerPki(dir, init);
  if (!pki.ok()) {
    std::fprintf(stderr, "init: %s\n", std::string(pki.status().message()).c_str());
    return 1;
  }
  // Keys and certificates for every host, made before any gRPC exists in this process so the
  // agents' child can be forked safely.
  auto t_setup = Clock::now();
  std::vector<Identity> ids;
  std::vector<inventory::Certificate> certs;
  if (absl::Status st = MakeIdentities(**pki, hosts, &ids, &certs); !st.ok()) {
    std::fprintf(stderr, "issue: %s\n", std::string(st.message()).c_str());
    return 1;
  }
  std::string ca_pem = (*pki)->CertificatePem();
  int port = testing::FreeLoopbackPort();
  std::string target = "127.0.0.1:" + std::to_string(port);
  int go[2];
  if (::pipe(go) != 0) return 1;
  pid_t child = ::fork();
  if (child == 0) {
    ::close(go[1]);
    RunAgents(ids, ca_pem, {target}, go[0]);
  }
  ::close(go[0]);
  ids.clear();
  ids.shrink_to_fit();
  std::printf("setup keys+certs hosts=%d seconds=%.1f\n", hosts, Seconds(t_setup, Clock::now()));

  controller::ServeOptions o;
  o.data_dir = dir;
  o.listen = target;
  o.fsync_every_commit = false;
  o.fleet_factory = [](controller::ControllerContext& ctx) { return rollout::MakeFleetModule(ctx); };
  auto ctl = controller::Controller::Start(o);
  if (!ctl.ok()) {
    std::fprintf(stderr, "controller: %s\n", std::string(ctl.status().message()).c_str());
    ::kill(child, SIGKILL);
    return 1;
  }
  controller::ControllerContext& ctx = (*ctl)->context();
  absl::Status st = ctx.store->Transact([&](inventory::Tx& tx) -> absl::Status {
    for (int i = 0; i < hosts; ++i) {
      inventory::Host h;
      h.name = HostName(i);
      h.addresses = {HostAddress(i)};
      h.labels = {{"group", "g" + std::to_string(i / group)}};
      h.created_unix = ctx.clock();
      IPFLEET_RETURN_IF_ERROR(tx.AddHost(h));
      IPFLEET_RETURN_IF_ERROR(tx.PutCertificate(certs[i]));
      IPFLEET_RETURN_IF_ERROR(tx.SetHostCertificate(h.name, certs[i].serial, certs[i].not_after_unix));
    }
    return absl::OkStatus();
  });
  if (!st.ok()) {
    std::fprintf(stderr, "hosts: %s\n", std::string(st.message()).c_str());
    ::kill(child, SIGKILL);
    return 1;
  }
  certs.clear();
  if (::write(go[1], "g", 1) != 1) return 1;
  auto t_conn = Clock::now();
  while (ctx.sessions->ConnectedCount() < static_cast<size_t>(hosts) && Seconds(t_conn, Clock::now()) < 900) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::printf("sessions connected=%zu seconds=%.1f controller_rss_mib_all_connected=%ld controller_rss_mib_now=%ld load1=%.1f%s\n",
              ctx.sessions->ConnectedCount(), Seconds(t_conn, Clock::now()), PeakRssMiB(), CurrentRssMiB(), Load1(),
              AllocatorStats().c_str());
  std::fflush(stdout);
  if (g_connect_only) {  // memory analysis of idle sessions (e.g. under heaptrack: all live memory shows as leaked)
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    std::error_code ec;
    fs::remove_all(dir, ec);  // the data directory holds a CA key; _exit skips the cleanup below
    ::_exit(0);
  }

  StartHeapProfileIfAsked();
  auto admin = v1::AdminService::NewStub(
      grpc::CreateChannel("unix:" + (*ctl)->admin_socket().string(), grpc::InsecureChannelCredentials()));
  auto call = [](int seconds) {
    auto c = std::make_unique<grpc::ClientContext>();
    c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
    return c;
  };
  // Round 1 rolls the mesh out; each further round changes the default proposal (every tunnel,
  // every bundle) and rolls that out: peak RSS after several generations, not just the first.
  for (int round = 1; round <= g_rounds; ++round) {
    std::printf("round %d\n", round);
    v1::ApplyRequest ar;
    ar.set_fleet_yaml(MeshFleetYaml(hosts, group, round));
    v1::ApplyResponse aresp;
    auto t_apply = Clock::now();
    grpc::Status gs = admin->Apply(call(300).get(), ar, &aresp);
    if (!gs.ok()) {
      std::fprintf(stderr, "apply: %s\n", gs.error_message().c_str());
      ::kill(child, SIGKILL);
      return 1;
    }
    std::printf("apply generation=%llu tunnels=%d seconds=%.2f controller_peak_rss_mib=%ld controller_rss_mib_now=%ld%s\n",
                static_cast<unsigned long long>(aresp.generation()), aresp.changes_size(), Seconds(t_apply, Clock::now()),
                PeakRssMiB(), CurrentRssMiB(), AllocatorStats().c_str());

    v1::StartRolloutRequest sr;
    sr.set_wave_timeout_seconds(600);
    v1::RolloutStatus r;
    auto t0 = Clock::now();
    std::printf("rollout_start mono=%.3f\n", Mono());
    const double cpu0 = CpuSeconds();
    gs = admin->StartRollout(call(60).get(), sr, &r);
    if (!gs.ok()) {
      std::fprintf(stderr, "rollout: %s\n", gs.error_message().c_str());
      ::kill(child, SIGKILL);
      return 1;
    }
    double started = Seconds(t0, Clock::now());
    v1::GetRolloutRequest gr;
    gr.set_id(r.id());
    int next_report = 1;
    for (;;) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      v1::RolloutStatus s;
      if (!admin->GetRollout(call(60).get(), gr, &s).ok()) continue;
      if (Seconds(t0, Clock::now()) >= next_report) {
        int done = 0, sent = 0;
        for (const auto& h : s.hosts()) {
          done += h.state() == v1::HOST_ROLLOUT_STATE_DONE;
          sent += h.state() == v1::HOST_ROLLOUT_STATE_SENT;
        }
        std::printf("progress t=%.1f sent=%d done=%d mono=%.3f\n", Seconds(t0, Clock::now()), sent, done, Mono());
        ++next_report;
      }
      if (s.state() != v1::ROLLOUT_STATE_RUNNING) {
        int done = 0;
        for (const auto& h : s.hosts()) done += h.state() == v1::HOST_ROLLOUT_STATE_DONE;
        std::printf("rollout hosts=%d state=%d done=%d start_rpc_seconds=%.2f all_acked_seconds=%.2f controller_peak_rss_mib=%ld "
                    "controller_cpu_seconds=%.2f load1=%.1f%s\n",
                    hosts, static_cast<int>(s.state()), done, started, Seconds(t0, Clock::now()), PeakRssMiB(),
                    CpuSeconds() - cpu0, Load1(), AllocatorStats().c_str());
        break;
      }
    }
  }  // rounds
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  (*ctl)->Shutdown(std::chrono::milliseconds(500));
  ctl->reset();
  std::error_code ec;
  fs::remove_all(dir, ec);
  return 0;
}

}  // namespace
}  // namespace ipfleet::bench

int main(int argc, char** argv) {
  setvbuf(stdout, nullptr, _IOLBF, 0);
  CLI::App app("ipfleet rollout benchmark");
  int hosts = 1000, group = 10;
  std::string workdir = "/tmp";
  auto* compile = app.add_subcommand("compile", "time the pure compiler");
  auto* rollout = app.add_subcommand("rollout", "roll a generation out to simulated agents");
  for (auto* c : {compile, rollout}) {
    c->add_option("--hosts", hosts, "number of hosts");
    c->add_option("--group", group, "hosts per full-mesh group");
  }
  rollout->add_option("--workdir", workdir, "where the controller data directory goes");
  rollout->add_flag("--connect-only", ipfleet::bench::g_connect_only, "stop once every session is up (memory analysis)");
  rollout->add_option("--rounds", ipfleet::bench::g_rounds, "generations to apply and roll out one after another (2+: each changes every bundle)")
      ->check(CLI::Range(1, 10));
  app.require_subcommand(1);
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::warn);
  if (compile->parsed()) return ipfleet::bench::RunCompile(hosts, group);
  return ipfleet::bench::RunRollout(hosts, group, workdir);
}
