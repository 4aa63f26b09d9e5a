#include "charon_bench.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include <absl/strings/match.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_format.h>
#include <absl/strings/str_split.h>
#include <nlohmann/json.hpp>

#include "harness/charon.h"
#include "harness/ike_peer.h"
#include "harness/netns.h"
#include "harness/pki.h"
#include "harness/swanctl.h"
#include "harness/vici.h"
#include "harness/workdir.h"

namespace ipfleet::bench {
namespace {

using namespace std::chrono_literals;
using interop::Charon;
using interop::SwanctlConn;

}  // namespace

absl::StatusOr<double> CpuMs(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(f, line)) return absl::NotFoundError(absl::StrCat("read /proc/", pid, "/stat failed"));
  // Fields after the ")" of the command name: state is field 3, utime 14, stime 15.
  std::istringstream in(line.substr(line.rfind(')') + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return 1000.0 * static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

std::string CharonBenchResult::ToString() const {
  return absl::StrFormat(
      "%s suite=ecdsa-p256/x25519/aes128gcm16 certs=%s established=%d wall_s=%.3f rate_per_s=%.1f "
      "cpu_ms_per_establishment initiator=%.2f responder=%.2f",
      peer, cert_issuer, established, wall_s, rate_per_s, cpu_ms_initiator, cpu_ms_responder);
}

std::string CharonBenchResult::ToJson() const {
  nlohmann::json j = {{"peer", peer},          {"established", established},
                      {"wall_s", wall_s},          {"rate_per_s", rate_per_s},
                      {"cpu_ms_initiator", cpu_ms_initiator}, {"cpu_ms_responder", cpu_ms_responder},
                      {"cert_issuer", cert_issuer}};
  return j.dump();
}

absl::StatusOr<CharonBenchResult> RunCharonBench(const CharonBenchOptions& o) {
  IPFLEET_ASSIGN_OR_RETURN(auto run, EstablishCharonPair(o));
  return run->result;
}

absl::StatusOr<std::unique_ptr<CharonPairRun>> EstablishCharonPair(const CharonBenchOptions& o) {
  if (!interop::HaveRoot()) return absl::PermissionDeniedError("charon bench needs root (network namespaces)");
  std::string why;
  if (!interop::CharonAvailable(&why)) return absl::FailedPreconditionError(why);
  auto run = std::make_unique<CharonPairRun>();
  run->work = std::make_unique<interop::WorkDir>("bench");
  interop::WorkDir& work = *run->work;
  if (!work.ok()) return absl::InternalError("mkdtemp failed");
  if (o.keep) work.Keep();
  IPFLEET_ASSIGN_OR_RETURN(run->net, interop::NetnsPair::Create());
  auto& net = run->net;
  IPFLEET_ASSIGN_OR_RETURN(
      interop::Pki pki,
      interop::MakePki(work.path() / "pki",
                       {{"host1", net->a().addr, "host1.example"}, {"host2", net->b().addr, "host2.example"}},
                       interop::ConfiguredController()));

  auto opts = [&](const interop::NetnsSide& side, const char* name) {
    interop::CharonOptions c{.netns = side.ns, .dir = work.path() / name};
    c.ike_log_level = 0;
    c.net_log_level = 0;
    c.threads = o.threads;
    // Every initiate must be a new IKE_SA (by default charon puts a CHILD_SA of an equal config into an
    // existing IKE_SA).
    c.extra = "reuse_ikesa = no";
    c.retransmit_tries = 5;  // charon defaults: a loaded machine must not turn slowness into failures
    c.retransmit_timeout_s = 4.0;
    c.retransmit_base = 1.8;
    if (o.cpu >= 0) c.cpu = o.cpu;
    return c;
  };
  IPFLEET_ASSIGN_OR_RETURN(run->init, Charon::Start(opts(net->a(), "initiator")));
  auto& init = run->init;
  // The responder's DoS limits would turn a window of initiates from one IP into dropped IKE_SA_INITs
  // (block_threshold: 5 half-open SAs per peer IP) or COOKIE round trips (cookie_threshold: 10): raised, so
  // the figure is establishment cost, not retransmission timers. (Our engine has no such limits yet.)
  auto resp_opts = opts(net->b(), "responder");
  resp_opts.extra += "\n  block_threshold = 100000\n  cookie_threshold = 100000\n  init_limit_half_open = 0";
  IPFLEET_ASSIGN_OR_RETURN(run->resp, Charon::Start(resp_opts));
  auto& resp = run->resp;

  auto conn = [&](const interop::NetnsSide& me, const interop::NetnsSide& peer, const std::string& name,
                  const std::string& child, const char* id, const char* peer_id, const char* cert) {
    SwanctlConn c;
    c.name = name;
    c.child_name = child;
    c.local_addr = me.addr;
    c.remote_addr = peer.addr;
    c.ike_proposals = o.ike_proposal;
    c.esp_proposals = o.esp_proposal;
    c.psk = false;
    c.local_id = id;
    c.remote_id = peer_id;
    c.local_cert = cert;
    c.unique = "never";  // no INITIAL_CONTACT: concurrent IKE_SAs between the same IDs must all stay
    c.local_ts = me.subnet + "/32";
    c.remote_ts = peer.subnet + "/32";
    return c;
  };
  // One connection per establishment: charon reuses an established IKE_SA of the same connection.
  std::vector<SwanctlConn> conns;
  for (int i = 0; i < o.count; ++i) {
    conns.push_back(conn(net->a(), net->b(), absl::StrCat("b", i), absl::StrCat("c", i), "host1.example",
                         "host2.example", "host1.crt"));
  }
  IPFLEET_RETURN_IF_ERROR(init->Load(interop::RenderSwanctlConf(conns, {}),
                                     {{pki.hosts[0].cert}, {pki.ca_cert}, {pki.hosts[0].key}, {}}));
  IPFLEET_RETURN_IF_ERROR(resp->Load(
      interop::RenderSwanctlConf(
          {conn(net->b(), net->a(), "t", "c", "host2.example", "host1.example", "host2.crt")}, {}),
      {{pki.hosts[1].cert}, {pki.ca_cert}, {pki.hosts[1].key}, {}}));

  // Events on their own connection: charon delivers them while the command connection is busy.
  const std::string sock = (init->dir() / "vici.sock").string();
  IPFLEET_ASSIGN_OR_RETURN(auto events, interop::ViciClient::Connect(sock));
  if (o.events) IPFLEET_RETURN_IF_ERROR(events.RegisterEvent("child-updown", 5s));
  IPFLEET_ASSIGN_OR_RETURN(auto vici, interop::ViciClient::Connect(sock));

  IPFLEET_ASSIGN_OR_RETURN(double cpu_i0, CpuMs(init->pid()));
  IPFLEET_ASSIGN_OR_RETURN(double cpu_r0, CpuMs(resp->pid()));
  const auto t0 = std::chrono::steady_clock::now();
  const int window = o.window > 0 ? o.window : o.count;
  int sent = 0, up = 0, failed = 0;
  size_t log_pos = std::filesystem::file_size(init->dir() / "charon.log");
  auto send_next = [&]() -> absl::Status {
    interop::ViciMessage m;
    m.kv = {{"child", absl::StrCat("c", sent)}, {"ike", absl::StrCat("b", sent)}, {"timeout", "-1"}};
    ++sent;
    // timeout -1: charon answers at once and initiates in the background (no control-log streaming).
    IPFLEET_ASSIGN_OR_RETURN(interop::ViciMessage r, vici.Request("initiate", m, 5s));
    if (r.Get("success") != "yes") {
      ++failed;
      return absl::InternalError(absl::StrCat("charon bench: initiate refused: ", r.Get("errmsg")));
    }
    return absl::OkStatus();
  };
  while (sent < std::min(window, o.count)) IPFLEET_RETURN_IF_ERROR(send_next());
  const auto deadline = t0 + std::chrono::milliseconds(20000 + 200LL * o.count);
  while (up < o.count) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      work.Keep();
      return absl::DeadlineExceededError(absl::StrCat("charon bench: only ", up, " of ", o.count,
                                                      " established before the deadline; failed initiates=", failed,
                                                      "; logs in ", work.path().string()));
    }
    if (!o.events) {
      // Count "CHILD_SA ... established" lines in the initiator's log (level-0 audit lines, logged anyway):
      // costs charon nothing extra, unlike list-sas over N SAs. Read only what was appended.
      std::this_thread::sleep_for(5ms);
      std::ifstream log(init->dir() / "charon.log", std::ios::binary);
      log.seekg(static_cast<std::streamoff>(log_pos));
      std::string chunk((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
      size_t last_nl = chunk.rfind('\n');
      if (last_nl == std::string::npos) continue;
      chunk.resize(last_nl + 1);
      log_pos += chunk.size();
      for (size_t pos = chunk.find(" established with SPIs"); pos != std::string::npos;
           pos = chunk.find(" established with SPIs", pos + 1)) {
        ++up;
      }
      if (absl::StrContains(chunk, "giving up") || absl::StrContains(chunk, "establishing IKE_SA failed")) {
        work.Keep();
        return absl::InternalError(absl::StrCat("charon bench: an establishment failed; logs in ",
                                                work.path().string()));
      }
      while (sent < o.count && sent - up < window) IPFLEET_RETURN_IF_ERROR(send_next());
      continue;
    }
    IPFLEET_ASSIGN_OR_RETURN(auto p, events.ReadPacket(left));
    if (p.type == 7 && p.name == "child-updown" && p.msg.Get("up") == "yes") {
      ++up;
      if (sent < o.count) IPFLEET_RETURN_IF_ERROR(send_next());
    }
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  IPFLEET_ASSIGN_OR_RETURN(double cpu_i1, CpuMs(init->pid()));
  IPFLEET_ASSIGN_OR_RETURN(double cpu_r1, CpuMs(resp->pid()));

  // Independent check: the responder itself reports that many established IKE_SAs.
  IPFLEET_ASSIGN_OR_RETURN(auto sas, resp->ListSas());
  int established = 0;
  for (const auto& s : sas) {
    if (s.state == "ESTABLISHED" && !s.children.empty() && s.children[0].state == "INSTALLED") ++established;
  }
  if (established < o.count) {
    return absl::InternalError(absl::StrCat("charon bench: responder reports ", established, " established of ",
                                            o.count));
  }
  CharonBenchResult& r = run->result;
  r.established = up;
  r.wall_s = wall;
  r.rate_per_s = up / wall;
  r.cpu_ms_initiator = (cpu_i1 - cpu_i0) / up;
  r.cpu_ms_responder = (cpu_r1 - cpu_r0) / up;
  r.cert_issuer = pki.issuer;
  return run;
}

namespace {

// Milliseconds since midnight from a spdlog line "YYYY-MM-DDTHH:MM:SS.mmm ...".
std::optional<double> LineMs(absl::string_view line) {
  if (line.size() < 23 || line[10] != 'T') return std::nullopt;
  int h = 0, m = 0, sec = 0, ms = 0;
  if (std::sscanf(std::string(line.substr(11, 12)).c_str(), "%d:%d:%d.%d", &h, &m, &sec, &ms) != 4) return std::nullopt;
  return ((h * 60.0 + m) * 60.0 + sec) * 1000.0 + ms;
}

}  // namespace

absl::StatusOr<CharonBenchResult> RunIkePeerBench(const CharonBenchOptions& o, const std::string& binary) {
  IPFLEET_ASSIGN_OR_RETURN(auto run, EstablishIkePeerPair(o, binary));
  return run->result;
}

absl::StatusOr<std::unique_ptr<IkePeerPairRun>> EstablishIkePeerPair(const CharonBenchOptions& o,
                                                                     const std::string& binary) {
  if (!interop::HaveRoot()) return absl::PermissionDeniedError("bench needs root (network namespaces)");
  if (binary.empty()) return absl::FailedPreconditionError("no ipfleet-ike-peer binary");
  auto run = std::make_unique<IkePeerPairRun>();
  run->work = std::make_unique<interop::WorkDir>("bench-ours");
  interop::WorkDir& work = *run->work;
  if (!work.ok()) return absl::InternalError("mkdtemp failed");
  if (o.keep) work.Keep();
  IPFLEET_ASSIGN_OR_RETURN(run->net, interop::NetnsPair::Create());
  auto& net = run->net;
  IPFLEET_ASSIGN_OR_RETURN(
      interop::Pki pki,
      interop::MakePki(work.path() / "pki",
                       {{"host1", net->a().addr, "host1.example"}, {"host2", net->b().addr, "host2.example"}},
                       interop::ConfiguredController()));
  auto tunnel = [&](const interop::NetnsSide& me, const interop::NetnsSide& peer, const std::string& name,
                    int host) {
    interop::IkePeerTunnel t;
    t.name = name;
    t.local = me.addr;
    t.remote = peer.addr;
    t.local_id = host == 0 ? "host1.example" : "host2.example";
    t.remote_id = host == 0 ? "host2.example" : "host1.example";
    t.psk = false;
    t.cert = pki.hosts[host].cert;
    t.key = pki.hosts[host].key;
    t.ca = pki.ca_cert;
    t.ike_proposal = o.ike_proposal;
    t.esp_proposal = o.esp_proposal;
    t.local_ts = me.subnet + "/32";
    t.remote_ts = peer.subnet + "/32";
    return t;
  };
  auto peer_opts = [&](const interop::NetnsSide& side, const char* dir, bool initiate) {
    interop::IkePeerOptions p;
    p.binary = binary;
    p.netns = side.ns;
    p.dir = work.path() / dir;
    p.listen = side.addr;
    p.initiate = initiate;
    p.initiate_window = o.window;  // the same number outstanding as charon's initiator gets
    p.cpu = o.cpu >= 0 ? std::optional<int>(o.cpu) : std::nullopt;  // the same core as the charons
    p.log_level = "info";
    p.write_status = false;  // a test aid that rewrites all SAs as JSON; the bench reads the log instead
    p.retransmit_timeout_ms = 4000;
    p.retransmit_tries = 5;
    return p;
  };
  auto ro = peer_opts(net->b(), "responder", false);
  ro.tunnels = {tunnel(net->b(), net->a(), "t", 1)};
  IPFLEET_ASSIGN_OR_RETURN(run->resp, interop::IkePeer::Start(ro));
  auto& resp = run->resp;
  auto io = peer_opts(net->a(), "initiator", true);
  for (int i = 0; i < o.count; ++i) io.tunnels.push_back(tunnel(net->a(), net->b(), absl::StrCat("b", i), 0));
  IPFLEET_ASSIGN_OR_RETURN(double cpu_r0, CpuMs(resp->pid()));
  IPFLEET_ASSIGN_OR_RETURN(run->init, interop::IkePeer::Start(io));
  auto& init = run->init;
  int up = 0;
  std::optional<double> t0, t1;
  double startup_cpu_ms = 0;  // the initiator's config load, reported by the tool itself on its "listening" line
  bool done = interop::WaitFor(
      [&] {
        up = 0;
        const std::string log = init->Log();
        for (absl::string_view line : absl::StrSplit(log, '\n')) {
          if (!t0 && absl::StrContains(line, "listening addr=")) {
            t0 = LineMs(line);
            if (auto at = line.find("cpu_ms="); at != absl::string_view::npos)
              startup_cpu_ms = std::atof(std::string(line.substr(at + 7)).c_str());
          }
          if (absl::StrContains(line, "type=child_installed")) {
            ++up;
            t1 = LineMs(line);
          }
        }
        return up >= o.count;
      },
      std::chrono::milliseconds(20000 + 200LL * o.count), 20ms);
  if (!done || !t0 || !t1) {
    work.Keep();
    return absl::DeadlineExceededError(absl::StrCat("ours bench: ", up, " of ", o.count, " established; logs in ",
                                                    work.path().string()));
  }
  IPFLEET_ASSIGN_OR_RETURN(double cpu_i1, CpuMs(init->pid()));
  IPFLEET_ASSIGN_OR_RETURN(double cpu_r1, CpuMs(resp->pid()));
  CharonBenchResult& r = run->result;
  r.established = up;
  r.wall_s = std::max(0.001, (*t1 - *t0) / 1000.0);
  r.rate_per_s = up / r.wall_s;
  r.cpu_ms_initiator = (cpu_i1 - startup_cpu_ms) / up;
  r.cpu_ms_responder = (cpu_r1 - cpu_r0) / up;
  r.cert_issuer = pki.issuer;
  r.peer = "ours_vs_ours";
  return run;
}

}  // namespace ipfleet::bench
