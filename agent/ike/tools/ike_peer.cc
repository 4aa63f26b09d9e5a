// ipfleet-ike-peer: the IKEv2 engine on a real UDP socket with the in-memory fake kernel, for
// interop tests against strongSwan. Config format and controls: docs/ike.md.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <deque>
#include <nlohmann/json.hpp>
#include <optional>

#include "ipfleet/common/files.h"
#include "ipfleet/common/logging.h"
#include "ipfleet/ike/crypto.h"
#include "ipfleet/ike/engine.h"
#include "ipfleet/kernel/fake_xfrm.h"

namespace ike = ipfleet::ike;
namespace kernel = ipfleet::kernel;

namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path) { return ipfleet::files::Read(path); }

absl::StatusOr<std::vector<std::string>> ReadList(const YAML::Node& n) {
  std::vector<std::string> out;
  if (!n) return out;
  if (n.IsScalar()) {
    IPFLEET_ASSIGN_OR_RETURN(std::string s, ReadFile(n.as<std::string>()));
    out.push_back(s);
    return out;
  }
  for (const auto& e : n) {
    IPFLEET_ASSIGN_OR_RETURN(std::string s, ReadFile(e.as<std::string>()));
    out.push_back(s);
  }
  return out;
}

std::vector<std::string> Strings(const YAML::Node& n, std::vector<std::string> def = {}) {
  if (!n) return def;
  std::vector<std::string> out;
  if (n.IsScalar()) out.push_back(n.as<std::string>());
  else
    for (const auto& e : n) out.push_back(e.as<std::string>());
  return out;
}

// Durations are written in seconds (fractions allowed), as dpd_interval always was.
ike::Duration Seconds(const YAML::Node& n, ike::Duration def) {
  if (!n) return def;
  return ike::Duration(static_cast<int64_t>(n.as<double>() * 1000));
}

// `pfs: GROUP` appends the DH group to every ESP proposal that has none, so rekeys carry a KE
// payload (the engine reads PFS from the proposal; a group in IKE_AUTH is ignored, RFC 7296 1.2).
absl::Status ApplyPfs(const std::string& group, std::vector<std::string>& proposals) {
  static const char* const kGroups[] = {"modp2048", "ecp256", "ecp384", "x25519", "curve25519"};
  if (std::find(std::begin(kGroups), std::end(kGroups), group) == std::end(kGroups))
    return absl::InvalidArgumentError("pfs: unknown DH group '" + group + "'");
  for (auto& prop : proposals) {
    bool has_group = false;
    for (const char* g : kGroups) has_group |= prop.find(g) != std::string::npos;
    if (!has_group) prop += "-" + group;
  }
  return absl::OkStatus();
}

// Part-2 settings of the whole engine (config.h IkeConfig); absent keys keep the engine defaults.
void ReadEngineSettings(const YAML::Node& root, ike::IkeConfig& c) {
  if (root["retransmit_timeout_ms"]) c.retransmit_timeout = ike::Duration(root["retransmit_timeout_ms"].as<int>());
  if (root["retransmit_tries"]) c.retransmit_tries = root["retransmit_tries"].as<int>();
  c.half_open_timeout = Seconds(root["half_open_timeout"], c.half_open_timeout);
  c.nat_keepalive = Seconds(root["nat_keepalive"], c.nat_keepalive);
  if (root["fragmentation"]) c.fragmentation = root["fragmentation"].as<bool>();
  if (root["fragment_size"]) c.fragment_size = root["fragment_size"].as<size_t>();
  c.reassembly_timeout = Seconds(root["reassembly_timeout"], c.reassembly_timeout);
  if (root["cookie_threshold"]) c.cookie_threshold = root["cookie_threshold"].as<size_t>();
  if (root["half_open_max"]) c.half_open_max = root["half_open_max"].as<size_t>();
  if (root["half_open_per_peer"]) c.half_open_per_peer = root["half_open_per_peer"].as<size_t>();
  c.cookie_secret_lifetime = Seconds(root["cookie_secret_lifetime"], c.cookie_secret_lifetime);
  c.rekey_grace = Seconds(root["rekey_grace"], c.rekey_grace);
}

// Lifetimes of one CHILD_SA (config.h ChildConfig, rekey.h).
absl::Status ReadChildLifetimes(const YAML::Node& c, ike::ChildConfig& cc) {
  cc.rekey_time = Seconds(c["rekey_time"], cc.rekey_time);
  cc.rand_time = Seconds(c["rand_time"], cc.rand_time);
  cc.life_time = Seconds(c["life_time"], cc.life_time);
  if (c["rekey_bytes"]) cc.rekey_bytes = c["rekey_bytes"].as<uint64_t>();
  if (c["rekey_packets"]) cc.rekey_packets = c["rekey_packets"].as<uint64_t>();
  if (c["pfs"]) return ApplyPfs(c["pfs"].as<std::string>(), cc.esp_proposals);
  return absl::OkStatus();
}

struct ToolConfig {
  ike::IkeConfig ike;
  std::optional<kernel::IpAddress> listen;
  uint16_t port = 500;
};

absl::StatusOr<ToolConfig> LoadConfig(const std::string& path) {
  ToolConfig tc;
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(std::string("config ") + path + ": " + e.what());
  }
  try {
    if (root["listen"]) {
      IPFLEET_ASSIGN_OR_RETURN(tc.listen, kernel::IpAddress::Parse(root["listen"].as<std::string>()));
    }
    if (root["port"]) tc.port = root["port"].as<uint16_t>();
    ReadEngineSettings(root, tc.ike);
    for (const auto& t : root["tunnels"]) {
      ike::PeerConfig p;
      p.name = t["name"].as<std::string>();
      IPFLEET_ASSIGN_OR_RETURN(p.local_addr, kernel::IpAddress::Parse(t["local"].as<std::string>()));
      std::string remote = t["remote"] ? t["remote"].as<std::string>() : "%any";
      if (remote != "%any") {
        IPFLEET_ASSIGN_OR_RETURN(p.remote_addr, kernel::IpAddress::Parse(remote));
      }
      p.local_port = tc.port;
      if (t["remote_port"]) p.remote_port = t["remote_port"].as<uint16_t>();
      if (t["local_id"]) p.local_id = t["local_id"].as<std::string>();
      if (t["remote_id"]) p.remote_id = t["remote_id"].as<std::string>();
      std::string auth = t["auth"] ? t["auth"].as<std::string>() : "pubkey";
      if (auth == "psk") {
        p.auth = ike::AuthKind::kPsk;
        if (t["psk"]) p.psk = t["psk"].as<std::string>();
        if (t["psk_file"]) {
          IPFLEET_ASSIGN_OR_RETURN(p.psk, ReadFile(t["psk_file"].as<std::string>()));
          while (!p.psk.empty() && (p.psk.back() == '\n' || p.psk.back() == '\r')) p.psk.pop_back();
        }
      } else if (auth == "pubkey") {
        p.auth = ike::AuthKind::kPubkey;
        IPFLEET_ASSIGN_OR_RETURN(p.cert_pem, ReadFile(t["cert"].as<std::string>()));
        IPFLEET_ASSIGN_OR_RETURN(p.key_pem, ReadFile(t["key"].as<std::string>()));
        IPFLEET_ASSIGN_OR_RETURN(p.ca_pems, ReadList(t["ca"]));
        IPFLEET_ASSIGN_OR_RETURN(p.crl_pems, ReadList(t["crl"]));
      } else {
        return absl::InvalidArgumentError("tunnel " + p.name + ": auth must be pubkey or psk");
      }
      p.ike_proposals = Strings(t["ike_proposals"], p.ike_proposals);
      if (t["dpd_interval"]) p.dpd_interval = ike::Duration(static_cast<int64_t>(t["dpd_interval"].as<double>() * 1000));
      if (t["dpd_action"]) p.dpd_action = t["dpd_action"].as<std::string>() == "restart" ? ike::DpdAction::kRestart : ike::DpdAction::kClear;
      p.ike_rekey_time = Seconds(t["ike_rekey_time"], p.ike_rekey_time);
      p.ike_rand_time = Seconds(t["ike_rand_time"], p.ike_rand_time);
      for (const auto& c : t["children"]) {
        ike::ChildConfig cc;
        cc.name = c["name"] ? c["name"].as<std::string>() : p.name;
        for (const auto& s : Strings(c["local_ts"])) {
          IPFLEET_ASSIGN_OR_RETURN(auto ts, ike::TsConfig::Parse(s));
          cc.local_ts.push_back(ts);
        }
        for (const auto& s : Strings(c["remote_ts"])) {
          IPFLEET_ASSIGN_OR_RETURN(auto ts, ike::TsConfig::Parse(s));
          cc.remote_ts.push_back(ts);
        }
        std::string mode = c["mode"] ? c["mode"].as<std::string>() : "tunnel";
        cc.mode = mode == "transport" ? kernel::Mode::kTransport : kernel::Mode::kTunnel;
        cc.esp_proposals = Strings(c["esp_proposals"], cc.esp_proposals);
        if (c["reqid"]) cc.reqid = c["reqid"].as<uint32_t>();
        std::string sa = c["start_action"] ? c["start_action"].as<std::string>() : "none";
        cc.start_action = sa == "start" ? ike::StartAction::kStart : sa == "trap" ? ike::StartAction::kTrap : ike::StartAction::kNone;
        IPFLEET_RETURN_IF_ERROR(ReadChildLifetimes(c, cc));
        p.children.push_back(cc);
      }
      tc.ike.peers.push_back(std::move(p));
    }
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(std::string("config ") + path + ": " + e.what());
  }
  if (tc.ike.peers.empty()) return absl::InvalidArgumentError("config has no tunnels");
  if (!tc.listen) tc.listen = tc.ike.peers.front().local_addr;
  for (auto& p : tc.ike.peers) p.local_port = tc.port;
  return tc;
}

class UdpNetwork : public ike::Network {
 public:
  int fd = -1;
  int fd_natt = -1;  // port 4500: IKE behind the 4-byte non-ESP marker (RFC 3948)
  void Send(const ike::Endpoint& local, const ike::Endpoint& remote, ike::Bytes d) override {
    sockaddr_storage ss{};
    socklen_t len = ToSockaddr(remote, ss);
    int s = fd;
    if (local.port == 4500 && fd_natt >= 0) {
      // RFC 3948: IKE gets the 4-byte non-ESP marker; a NAT-keepalive (one 0xFF octet) goes as is.
      if (!(d.size() == 1 && d[0] == 0xff)) d.insert(d.begin(), 4, 0);
      s = fd_natt;
    }
    if (sendto(s, d.data(), d.size(), 0, reinterpret_cast<sockaddr*>(&ss), len) < 0)
      spdlog::warn("udp_send_failed to={} errno=\"{}\"", remote.ToString(), strerror(errno));
  }
  static socklen_t ToSockaddr(const ike::Endpoint& e, sockaddr_storage& ss) {
    if (e.addr.is_v4()) {
      auto* s = reinterpret_cast<sockaddr_in*>(&ss);
      s->sin_family = AF_INET;
      s->sin_port = htons(e.port);
      memcpy(&s->sin_addr, e.addr.bytes.data(), 4);
      return sizeof *s;
    }
    auto* s = reinterpret_cast<sockaddr_in6*>(&ss);
    s->sin6_family = AF_INET6;
    s->sin6_port = htons(e.port);
    memcpy(&s->sin6_addr, e.addr.bytes.data(), 16);
    return sizeof *s;
  }
};

nlohmann::json StatusJson(const std::vector<ike::IkeSaInfo>& sas) {
  auto hex64 = [](uint64_t v) {
    char b[17];
    snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(v));
    return std::string(b);
  };
  auto hex32 = [](uint32_t v) {
    char b[9];
    snprintf(b, sizeof b, "%08x", v);
    return std::string(b);
  };
  nlohmann::json out = {{"ike_sas", nlohmann::json::array()}};
  for (const auto& s : sas) {
    nlohmann::json j = {{"tunnel", s.tunnel},       {"id", s.id},
                        {"state", ike::ToString(s.state)}, {"initiator", s.initiator},
                        {"spi_i", hex64(s.spi_i)},  {"spi_r", hex64(s.spi_r)},
                        {"local", s.local.ToString()}, {"remote", s.remote.ToString()},
                        {"local_id", s.local_id},   {"remote_id", s.remote_id},
                        {"suite", s.suite},         {"age_s", s.age.count()},
                        {"last_heard_s", s.last_heard.count()}, {"children", nlohmann::json::array()}};
    for (const auto& c : s.children)
      j["children"].push_back({{"name", c.name}, {"id", c.id}, {"state", ike::ToString(c.state)},
                               {"spi_in", hex32(c.spi_in)}, {"spi_out", hex32(c.spi_out)},
                               {"mode", kernel::ToString(c.mode)}, {"reqid", c.reqid}, {"local_ts", c.local_ts},
                               {"remote_ts", c.remote_ts}, {"suite", c.suite}, {"age_s", c.age.count()}});
    out["ike_sas"].push_back(j);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ipfleet-ike-peer: the ipfleet IKEv2 engine on UDP with a fake kernel (interop testing)"};
  std::string config_path, status_file, log_level = "info";
  int port = -1;
  bool initiate = false;
  size_t initiate_window = 0;
  double delete_after = -1;
  app.add_option("--config", config_path, "YAML/JSON config (docs/ike.md)")->required();
  app.add_option("--port", port, "UDP port to bind (default: config 'port' or 500)");
  app.add_option("--status-file", status_file, "write the SA table as JSON here on every change");
  app.add_flag("--initiate", initiate, "initiate every tunnel at start");
  app.add_option("--initiate-window", initiate_window,
                 "with --initiate: keep at most this many tunnels negotiating at once (0: all at once)");
  app.add_option("--delete-after", delete_after, "delete all IKE_SAs this many seconds after the first is up");
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error");
  CLI11_PARSE(app, argc, argv);
  ipfleet::logging::Init("ipfleet-ike-peer", log_level);

  auto cfg = LoadConfig(config_path);
  if (!cfg.ok()) {
    spdlog::error("config_error reason=\"{}\"", std::string(cfg.status().message()));
    return 2;
  }
  if (port >= 0) {
    cfg->port = static_cast<uint16_t>(port);
    for (auto& p : cfg->ike.peers) p.local_port = cfg->port;
  }

  UdpNetwork net;
  net.fd = socket(cfg->listen->is_v4() ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (net.fd < 0) {
    spdlog::error("socket_failed errno=\"{}\"", strerror(errno));
    return 1;
  }
  int one = 1;
  setsockopt(net.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  // A burst of requests (hundreds of rekeys or initiations at once) overflowed the default receive buffer
  // (~208 KiB of small-datagram truesize) while this single loop was busy, and the lost requests waited for
  // a retransmission: 4 MiB, forced when root (rmem_max caps the plain option).
  auto grow_rcvbuf = [](int fd) {
    int size = 4 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0)
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  };
  grow_rcvbuf(net.fd);
  ike::Endpoint bound{*cfg->listen, cfg->port};
  sockaddr_storage ss{};
  socklen_t sl = UdpNetwork::ToSockaddr(bound, ss);
  if (bind(net.fd, reinterpret_cast<sockaddr*>(&ss), sl) < 0) {
    spdlog::error("bind_failed addr={} errno=\"{}\"", bound.ToString(), strerror(errno));
    return 1;
  }

  // A peer that detects NAT (e.g. charon with kernel-libipsec, which fakes it) moves to 4500.
  if (cfg->port == 500) {
    net.fd_natt = socket(cfg->listen->is_v4() ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ike::Endpoint natt{*cfg->listen, 4500};
    sockaddr_storage ns{};
    socklen_t nl = UdpNetwork::ToSockaddr(natt, ns);
    setsockopt(net.fd_natt, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    grow_rcvbuf(net.fd_natt);
    if (bind(net.fd_natt, reinterpret_cast<sockaddr*>(&ns), nl) < 0) {
      spdlog::warn("bind_failed addr={} errno=\"{}\" (NAT-T port unavailable)", natt.ToString(), strerror(errno));
      close(net.fd_natt);
      net.fd_natt = -1;
    }
  }

  sigset_t mask;
  sigemptyset(&mask);
  // SIGRTMIN / SIGRTMIN+1: rekey every CHILD_SA / IKE_SA now (interop tests and bench/ike_rekey).
  const int kRekeyChildSig = SIGRTMIN, kRekeyIkeSig = SIGRTMIN + 1;
  // SIGHUP: initiate every tunnel now, as --initiate does at start (bench/ike_rekey starts a mesh of
  // processes at one instant this way).
  for (int s : {SIGTERM, SIGINT, SIGUSR1, SIGUSR2, SIGHUP, kRekeyChildSig, kRekeyIkeSig}) sigaddset(&mask, s);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  int sfd = signalfd(-1, &mask, SFD_CLOEXEC);

  ike::SystemClock clock;
  kernel::FakeXfrm xfrm;
  auto engine = ike::Engine::Create(clock, net, xfrm);
  bool dirty = true;
  std::optional<ike::TimePoint> delete_at;
  // Tunnels still to initiate, in config order, and how many are negotiating now (see --initiate-window).
  std::deque<std::string> to_initiate;
  size_t negotiating = 0;
  engine->SetEventCallback([&](const ike::Event& e) {
    spdlog::info("event type={} tunnel={} ike={} child={} detail=\"{}\"", ike::ToString(e.type), e.tunnel, e.ike_id,
                 e.child_id, e.detail);
    dirty = true;
    if (negotiating > 0 && (e.type == ike::EventType::kChildInstalled || e.type == ike::EventType::kIkeFailed))
      --negotiating;
    if (e.type == ike::EventType::kIkeEstablished && delete_after >= 0 && !delete_at)
      delete_at = clock.Now() + std::chrono::milliseconds(static_cast<int64_t>(delete_after * 1000));
  });
  if (auto s = engine->Load(cfg->ike); !s.ok()) {
    spdlog::error("load_failed reason=\"{}\"", std::string(s.message()));
    return 2;
  }
  // cpu_ms: what start-up (config, certificates, keys) cost, so a benchmark can leave it out.
  timespec cpu{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);
  spdlog::info("listening addr={} tunnels={} cpu_ms={:.1f}", bound.ToString(), cfg->ike.peers.size(),
               cpu.tv_sec * 1e3 + cpu.tv_nsec / 1e6);
  if (initiate)
    for (const auto& p : cfg->ike.peers) to_initiate.push_back(p.name);
  auto initiate_more = [&] {
    while (!to_initiate.empty() && (initiate_window == 0 || negotiating < initiate_window)) {
      std::string name = std::move(to_initiate.front());
      to_initiate.pop_front();
      if (auto r = engine->Initiate(name); !r.ok()) {
        spdlog::error("initiate_failed tunnel={} reason=\"{}\"", name, std::string(r.status().message()));
        continue;
      }
      ++negotiating;
    }
  };

  auto write_status = [&] {
    if (status_file.empty()) return;
    auto s = ipfleet::files::WriteAtomic(status_file, StatusJson(engine->ListSas()).dump(1) + "\n", 0644);
    if (!s.ok()) spdlog::warn("status_write_failed path={} reason=\"{}\"", status_file, std::string(s.message()));
  };
  std::vector<uint8_t> buf(65536);
  // The status file is rewritten (and fsynced) at most every kStatusEvery: rewriting it after every datagram
  // made the tool spend more time on status JSON than on IKE when hundreds of SAs come up at once.
  constexpr auto kStatusEvery = std::chrono::milliseconds(50);
  ike::TimePoint last_status{};
  for (;;) {
    initiate_more();
    auto now = clock.Now();
    if (dirty && now - last_status >= kStatusEvery) {
      write_status();
      dirty = false;
      last_status = now;
    }
    int timeout_ms = 1000;
    if (dirty) timeout_ms = static_cast<int>(kStatusEvery.count());
    for (auto d : {engine->NextDeadline(), delete_at})
      if (d) timeout_ms = std::min<int>(timeout_ms, std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(*d - now).count() + 1));
    pollfd pfds[3] = {{net.fd, POLLIN, 0}, {sfd, POLLIN, 0}, {net.fd_natt, POLLIN, 0}};
    int n = poll(pfds, net.fd_natt >= 0 ? 3 : 2, timeout_ms);
    if (n < 0 && errno != EINTR) {
      spdlog::error("poll_failed errno=\"{}\"", strerror(errno));
      return 1;
    }
    if (n > 0 && (pfds[1].revents & POLLIN)) {
      signalfd_siginfo si;
      if (read(sfd, &si, sizeof si) == sizeof si) {
        if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
          spdlog::info("exiting signal={}", si.ssi_signo);
          write_status();
          return 0;
        }
        if (si.ssi_signo == SIGUSR1) {
          spdlog::info("control action=delete_ike_sas");
          (void)engine->Flush("");
        }
        if (static_cast<int>(si.ssi_signo) == kRekeyChildSig || static_cast<int>(si.ssi_signo) == kRekeyIkeSig) {
          bool child = static_cast<int>(si.ssi_signo) == kRekeyChildSig;
          spdlog::info("control action={}", child ? "rekey_child_sas" : "rekey_ike_sas");
          for (const auto& s : engine->ListSas()) {
            if (s.state != ike::IkeState::kEstablished) continue;
            absl::Status r = absl::OkStatus();
            if (!child) r = engine->RekeyIke(s.id);
            for (const auto& c : s.children)
              if (child && c.state == ike::ChildState::kInstalled) r.Update(engine->RekeyChild(c.id));
            if (!r.ok()) spdlog::warn("rekey_failed ike={} reason=\"{}\"", s.id, std::string(r.message()));
          }
        }
        if (si.ssi_signo == SIGHUP) {
          // InitiateChildren, not Initiate: a tunnel a peer already brought up (we were its responder)
          // keeps that IKE_SA instead of getting a second one that no collision rule would remove.
          spdlog::info("control action=initiate_all");
          for (const auto& p : cfg->ike.peers)
            if (auto r = engine->InitiateChildren(p.name); !r.ok())
              spdlog::error("initiate_failed tunnel={} reason=\"{}\"", p.name, std::string(r.message()));
        }
        if (si.ssi_signo == SIGUSR2) {
          spdlog::info("control action=delete_child_sas");
          for (const auto& s : engine->ListSas())
            for (const auto& c : s.children) (void)engine->DeleteChild(c.id);
        }
        dirty = true;
      }
    }
    for (int which : {0, 2}) {
      if (n <= 0 || (which == 2 && net.fd_natt < 0) || !(pfds[which].revents & POLLIN)) continue;
      int rfd = which == 0 ? net.fd : net.fd_natt;
      for (;;) {
        sockaddr_storage from{};
        socklen_t fl = sizeof from;
        ssize_t r = recvfrom(rfd, buf.data(), buf.size(), MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&from), &fl);
        if (r < 0) break;
        size_t off = 0;
        if (which == 2) {
          // Non-ESP marker: four zero bytes; anything else is UDP-encapsulated ESP for the kernel.
          if (r < 4 || buf[0] || buf[1] || buf[2] || buf[3]) continue;
          off = 4;
        }
        ike::Endpoint remote;
        if (from.ss_family == AF_INET) {
          auto* s = reinterpret_cast<sockaddr_in*>(&from);
          remote.addr.family = kernel::IpAddress::Family::kV4;
          memcpy(remote.addr.bytes.data(), &s->sin_addr, 4);
          remote.port = ntohs(s->sin_port);
        } else {
          auto* s = reinterpret_cast<sockaddr_in6*>(&from);
          remote.addr.family = kernel::IpAddress::Family::kV6;
          memcpy(remote.addr.bytes.data(), &s->sin6_addr, 16);
          remote.port = ntohs(s->sin6_port);
        }
        ike::Endpoint local_ep{bound.addr, static_cast<uint16_t>(which == 0 ? bound.port : 4500)};
        engine->OnDatagram(local_ep, remote, ike::ByteView(buf.data() + off, static_cast<size_t>(r) - off));
        dirty = true;
      }
    }
    engine->Tick();
    if (delete_at && clock.Now() >= *delete_at) {
      spdlog::info("control action=delete_after");
      (void)engine->Flush("");
      delete_at = ike::TimePoint::max();
    }
  }
}
