// Full-mesh start: every host initiates all of its tunnels at one instant (RFC 7296 2.8.1's simultaneous
// initiation, issue 7). Same namespaces, certificates and proposals for charon and ours.
#include <signal.h>

#include <fstream>
#include <set>

#include <absl/strings/numbers.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_format.h>
#include <absl/strings/str_split.h>

#include "harness/mesh_netns.h"
#include "harness/pki.h"
#include "harness/swanctl.h"
#include "harness/vici.h"
#include "ike_rekey_bench.h"

namespace ipfleet::bench {
namespace {

using namespace std::chrono_literals;
using interop::NetnsSide;

constexpr const char* kIke = "aes128gcm16-prfsha256-x25519";
constexpr const char* kEsp = "aes128gcm16";

std::string HostId(int i) { return absl::StrCat("host", i + 1, ".example"); }
std::string TunnelName(int peer) { return absl::StrCat("p", peer); }

// UDP datagrams sent from the namespace so far (Udp OutDatagrams of its /proc/net/snmp).
absl::StatusOr<uint64_t> UdpOut(const std::string& ns) {
  IPFLEET_ASSIGN_OR_RETURN(auto r, interop::RunOk(interop::NetnsPair::Exec(ns, {"cat", "/proc/net/snmp"})));
  std::vector<std::string> lines = absl::StrSplit(r.out, '\n');
  for (size_t i = 0; i + 1 < lines.size(); ++i) {
    if (!absl::StartsWith(lines[i], "Udp: ") || !absl::StartsWith(lines[i + 1], "Udp: ")) continue;
    std::vector<std::string> keys = absl::StrSplit(lines[i], ' '), vals = absl::StrSplit(lines[i + 1], ' ');
    for (size_t k = 0; k < keys.size() && k < vals.size(); ++k) {
      uint64_t v = 0;
      if (keys[k] == "OutDatagrams" && absl::SimpleAtoi(vals[k], &v)) return v;
    }
  }
  return absl::InternalError("no Udp OutDatagrams in /proc/net/snmp of " + ns);
}

absl::StatusOr<uint64_t> TotalUdpOut(const interop::NetnsMesh& mesh) {
  uint64_t n = 0;
  for (const auto& h : mesh.hosts()) {
    IPFLEET_ASSIGN_OR_RETURN(uint64_t v, UdpOut(h.ns));
    n += v;
  }
  return n;
}

// Distinct tunnel names in `file` that appear after `marker` ("CHILD_SA p3{" -> p3, "tunnel=p3 " -> p3).
size_t DistinctUp(const std::filesystem::path& file, const std::string& marker, char end) {
  std::ifstream in(file, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::set<std::string> names;
  for (size_t p = text.find(marker); p != std::string::npos; p = text.find(marker, p + 1)) {
    size_t s = p + marker.size(), e = text.find(end, s);
    if (e != std::string::npos) names.insert(text.substr(s, e - s));
  }
  return names.size();
}

struct MeshSetup {
  std::unique_ptr<interop::WorkDir> work;
  std::unique_ptr<interop::NetnsMesh> mesh;
  interop::Pki pki;
};

absl::StatusOr<MeshSetup> Setup(int hosts, bool keep, const char* tag) {
  MeshSetup s;
  s.work = std::make_unique<interop::WorkDir>(tag);
  if (!s.work->ok()) return absl::InternalError("mkdtemp failed");
  if (keep) s.work->Keep();
  IPFLEET_ASSIGN_OR_RETURN(s.mesh, interop::NetnsMesh::Create(hosts));
  std::vector<interop::PkiHostSpec> specs;
  for (int i = 0; i < hosts; ++i) specs.push_back({absl::StrCat("host", i + 1), s.mesh->hosts()[i].addr, HostId(i)});
  IPFLEET_ASSIGN_OR_RETURN(s.pki, interop::MakePki(s.work->path() / "pki", specs, interop::ConfiguredController()));
  return s;
}

// Polls `up(i)` for every host until each reports `hosts - 1` tunnels, then lets the datagram count settle.
absl::Status WaitMesh(MeshFigures& f, const interop::NetnsMesh& mesh, std::chrono::steady_clock::time_point t0,
                      uint64_t udp0, const std::function<size_t(int)>& up) {
  const int n = static_cast<int>(mesh.hosts().size());
  bool all = interop::WaitFor(
      [&] {
        for (int i = 0; i < n; ++i)
          if (up(i) < static_cast<size_t>(n - 1)) return false;
        return true;
      },
      60s, 10ms);
  f.all_up_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  IPFLEET_ASSIGN_OR_RETURN(uint64_t udp1, TotalUdpOut(mesh));
  f.datagrams_to_up = udp1 - udp0;
  if (!all) {
    int done = 0;
    for (int i = 0; i < n; ++i) done += static_cast<int>(up(i));
    return absl::DeadlineExceededError(absl::StrCat(f.peer, " mesh: ", done, " of ", n * (n - 1), " tunnel ends up"));
  }
  // Settled: no datagram for a whole second (bounded).
  uint64_t last = udp1;
  auto still_since = std::chrono::steady_clock::now();
  interop::WaitFor(
      [&] {
        auto v = TotalUdpOut(mesh);
        if (!v.ok()) return false;
        if (*v != last) {
          last = *v;
          still_since = std::chrono::steady_clock::now();
        }
        return std::chrono::steady_clock::now() - still_since >= 1s;
      },
      20s, 200ms);
  f.datagrams_settled = last - udp0;
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<MeshFigures> CharonMeshStart(int hosts, int cpu, bool keep) {
  if (!interop::HaveRoot()) return absl::PermissionDeniedError("mesh bench needs root (network namespaces)");
  IPFLEET_ASSIGN_OR_RETURN(MeshSetup s, Setup(hosts, keep, "mesh-charon"));
  MeshFigures f{.peer = "charon", .hosts = hosts, .tunnels = hosts * (hosts - 1) / 2};
  std::vector<std::unique_ptr<interop::Charon>> charons;
  for (int i = 0; i < hosts; ++i) {
    const NetnsSide& me = s.mesh->hosts()[i];
    interop::CharonOptions c{.netns = me.ns, .dir = s.work->path() / absl::StrCat("h", i)};
    c.ike_log_level = 0;
    c.net_log_level = 0;
    c.threads = 16;  // kernel-libipsec, netlink and VICI keep 9 busy for good: with 8, VICI never answers
    c.retransmit_tries = 5;
    c.retransmit_timeout_s = 4.0;
    c.retransmit_base = 1.8;
    if (cpu >= 0) c.cpu = cpu;
    IPFLEET_ASSIGN_OR_RETURN(auto ch, interop::Charon::Start(c));
    std::vector<interop::SwanctlConn> conns;
    for (int j = 0; j < hosts; ++j) {
      if (j == i) continue;
      const NetnsSide& peer = s.mesh->hosts()[j];
      interop::SwanctlConn cn;
      cn.name = TunnelName(j);
      cn.child_name = TunnelName(j);
      cn.local_addr = me.addr;
      cn.remote_addr = peer.addr;
      cn.ike_proposals = kIke;
      cn.esp_proposals = kEsp;
      cn.psk = false;
      cn.local_id = HostId(i);
      cn.remote_id = HostId(j);
      cn.local_cert = absl::StrCat("host", i + 1, ".crt");
      cn.local_ts = me.subnet + "/32";
      cn.remote_ts = peer.subnet + "/32";
      conns.push_back(cn);
    }
    IPFLEET_RETURN_IF_ERROR(ch->Load(interop::RenderSwanctlConf(conns, {}),
                                     {{s.pki.hosts[i].cert}, {s.pki.ca_cert}, {s.pki.hosts[i].key}, {}}));
    charons.push_back(std::move(ch));
  }
  std::vector<interop::ViciClient> vici;
  for (auto& ch : charons) {
    IPFLEET_ASSIGN_OR_RETURN(auto v, interop::ViciClient::Connect((ch->dir() / "vici.sock").string()));
    vici.push_back(std::move(v));
  }
  IPFLEET_ASSIGN_OR_RETURN(uint64_t udp0, TotalUdpOut(*s.mesh));
  const auto t0 = std::chrono::steady_clock::now();
  // Every request first (timeout -1: initiate in the background), then the answers.
  for (int i = 0; i < hosts; ++i)
    for (int j = 0; j < hosts; ++j) {
      if (j == i) continue;
      interop::ViciMessage m;
      m.kv = {{"child", TunnelName(j)}, {"ike", TunnelName(j)}, {"timeout", "-1"}};
      IPFLEET_RETURN_IF_ERROR(vici[i].Send("initiate", m));
    }
  for (int i = 0; i < hosts; ++i)
    for (int j = 0; j < hosts - 1; ++j) IPFLEET_RETURN_IF_ERROR(vici[i].ReadPacket(10s).status());
  IPFLEET_RETURN_IF_ERROR(WaitMesh(f, *s.mesh, t0, udp0, [&](int i) {
    return DistinctUp(charons[i]->dir() / "charon.log", "CHILD_SA p", '{');
  }));
  for (auto& ch : charons) {
    IPFLEET_ASSIGN_OR_RETURN(auto sas, ch->ListSas());
    f.ike_sas += static_cast<int>(sas.size());
  }
  return f;
}

absl::StatusOr<MeshFigures> OursMeshStart(int hosts, int cpu, const std::string& binary, bool keep) {
  if (!interop::HaveRoot()) return absl::PermissionDeniedError("mesh bench needs root (network namespaces)");
  if (binary.empty()) return absl::FailedPreconditionError("no ipfleet-ike-peer binary");
  IPFLEET_ASSIGN_OR_RETURN(MeshSetup s, Setup(hosts, keep, "mesh-ours"));
  MeshFigures f{.peer = "ours", .hosts = hosts, .tunnels = hosts * (hosts - 1) / 2};
  std::vector<std::unique_ptr<interop::IkePeer>> peers;
  for (int i = 0; i < hosts; ++i) {
    const NetnsSide& me = s.mesh->hosts()[i];
    interop::IkePeerOptions p;
    p.binary = binary;
    p.netns = me.ns;
    p.dir = s.work->path() / absl::StrCat("h", i);
    p.listen = me.addr;
    p.log_level = "info";
    p.retransmit_timeout_ms = 4000;
    p.retransmit_tries = 5;
    if (cpu >= 0) p.cpu = cpu;
    for (int j = 0; j < hosts; ++j) {
      if (j == i) continue;
      const NetnsSide& peer = s.mesh->hosts()[j];
      interop::IkePeerTunnel t;
      t.name = TunnelName(j);
      t.child_name = TunnelName(j);
      t.local = me.addr;
      t.remote = peer.addr;
      t.local_id = HostId(i);
      t.remote_id = HostId(j);
      t.psk = false;
      t.cert = s.pki.hosts[i].cert;
      t.key = s.pki.hosts[i].key;
      t.ca = s.pki.ca_cert;
      t.ike_proposal = kIke;
      t.esp_proposal = kEsp;
      t.local_ts = me.subnet + "/32";
      t.remote_ts = peer.subnet + "/32";
      p.tunnels.push_back(t);
    }
    IPFLEET_ASSIGN_OR_RETURN(auto peer, interop::IkePeer::Start(p));
    peers.push_back(std::move(peer));
  }
  IPFLEET_ASSIGN_OR_RETURN(uint64_t udp0, TotalUdpOut(*s.mesh));
  const auto t0 = std::chrono::steady_clock::now();
  for (auto& p : peers) IPFLEET_RETURN_IF_ERROR(p->Signal(SIGHUP));
  IPFLEET_RETURN_IF_ERROR(WaitMesh(f, *s.mesh, t0, udp0, [&](int i) {
    return DistinctUp(s.work->path() / absl::StrCat("h", i) / "ike-peer.log", "type=child_installed tunnel=", ' ');
  }));
  // The status files trail by up to 50 ms; the datagram count stood still for a second.
  for (auto& p : peers) {
    IPFLEET_ASSIGN_OR_RETURN(auto sas, p->Sas());
    f.ike_sas += static_cast<int>(sas.size());
  }
  return f;
}

std::string ToString(const MeshFigures& f) {
  return absl::StrFormat("mesh peer=%s hosts=%d tunnels=%d all_up_s=%.3f datagrams_to_up=%d datagrams_settled=%d "
                         "ike_sa_ends=%d (one per tunnel: %d)",
                         f.peer, f.hosts, f.tunnels, f.all_up_s, f.datagrams_to_up, f.datagrams_settled, f.ike_sas,
                         2 * f.tunnels);
}

}  // namespace ipfleet::bench
