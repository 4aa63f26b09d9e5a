// Agent memory holding N tunnels on the real IKE engine: the agent core applies one signed bundle
// with N certificate tunnels through the EngineAdapter (our IKEv2 engine over UDP), every tunnel
// negotiates an IKE_SA and a CHILD_SA pair with a peer process, then health ticks run and a report
// is built; printed: the agent process's VmRSS and VmHWM.
//
// Needs root: it runs in a network namespace of its own (unshare) where the agent is 127.0.0.1 and
// the peer answers on 127.1.x.y (one address per tunnel, port 500). This machine's kernel has no
// ESP: the kernel is either FakeXfrm inside the agent process (the SAs and policies a real kernel
// holds are counted against the agent: an upper bound) or a stand-in that keeps nothing.
// Usage: agent_engine_rss_bench [N=500] [fake|outside]   (N tunnels = N IKE_SAs + N CHILD_SA pairs
// = 2N ESP SAs; `outside` leaves the SAs and policies out of the process, as a real kernel does)
// GCC 12 -O3 reports a false maybe-uninitialized inside std::string for ControllerInitOptions.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include <spdlog/spdlog.h>

#include "proc_status.h"
#include "ipfleet/agent/sync/agent.h"
#include "ipfleet/agent/sync/ike_adapter.h"
#include "ipfleet/agent/sync/translate.h"
#include "ipfleet/agent/sync/verifier.h"
#include "ipfleet/ca/authority.h"
#include "ipfleet/ca/bundle_signing.h"
#include "ipfleet/ca/csr.h"
#include "ipfleet/ca/keys.h"
#include "ipfleet/kernel/fake_xfrm.h"
#include "ipfleet/v1/types.pb.h"

namespace {

using namespace ipfleet;
namespace fs = std::filesystem;

// The kernel as seen from the agent process on a real host: it answers, and it keeps the SAs and
// policies in kernel memory, not ours. Counts what it was given.
class KernelOutside : public kernel::Xfrm {
 public:
  absl::StatusOr<uint32_t> AllocSpi(const kernel::SpiRequest&) override {  // an inbound SA's larval state
    ++sas_;
    return next_spi_++;
  }
  absl::Status AddSa(const kernel::SaParams&) override { return Count(sas_, +1); }
  absl::Status UpdateSa(const kernel::SaParams&) override { return absl::OkStatus(); }
  absl::Status DeleteSa(const kernel::SaId&) override { return Count(sas_, -1); }
  absl::StatusOr<kernel::SaState> QuerySa(const kernel::SaId&) override { return absl::NotFoundError("outside"); }
  absl::StatusOr<std::vector<kernel::SaState>> DumpSas() override { return std::vector<kernel::SaState>{}; }
  absl::Status AddPolicy(const kernel::PolicyParams&) override { return Count(policies_, +1); }
  absl::Status UpdatePolicy(const kernel::PolicyParams&) override { return Count(policies_, +1); }
  absl::Status DeletePolicy(const kernel::PolicyId&) override { return Count(policies_, -1); }
  absl::StatusOr<std::vector<kernel::PolicyState>> DumpPolicies() override { return std::vector<kernel::PolicyState>{}; }
  std::vector<absl::Status> Apply(std::span<const kernel::BatchOp> ops) override { return kernel::ApplyOneByOne(*this, ops); }
  absl::Status Subscribe(kernel::EventCallback) override { return absl::OkStatus(); }
  int event_fd() const override { return -1; }
  absl::StatusOr<size_t> Dispatch() override { return size_t{0}; }
  absl::StatusOr<kernel::FlushReport> FlushOwned() override { return kernel::FlushReport{}; }
  absl::StatusOr<kernel::ReconcileReport> Reconcile(const kernel::DesiredState&) override { return kernel::ReconcileReport{}; }
  size_t sa_count() const { return static_cast<size_t>(sas_); }
  size_t policy_count() const { return static_cast<size_t>(policies_); }  // upper bound: updates count too

 private:
  static absl::Status Count(int64_t& n, int d) {
    n += d;
    return absl::OkStatus();
  }
  uint32_t next_spi_ = 0xc0000000;
  int64_t sas_ = 0, policies_ = 0;
};

std::string PeerAddress(int i) { return "127.1." + std::to_string(i / 200) + "." + std::to_string(i % 200 + 1); }
std::string RemoteNet(int i) { return "10." + std::to_string(128 + i / 256) + "." + std::to_string(i % 256) + ".0/24"; }

void Write(const fs::path& p, const std::string& data) { std::ofstream(p, std::ios::binary) << data; }
std::string Read(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// One tunnel end as the controller would compile it (the agent's end initiates).
void AddTunnel(v1::PolicyBundle& b, int i, bool agent_end) {
  auto* t = b.add_tunnels();
  t->set_name("bench--peer" + std::to_string(i));
  t->set_mode(v1::TUNNEL_MODE_TUNNEL);
  auto* local = t->mutable_local();
  auto* remote = t->mutable_remote();
  if (!agent_end) std::swap(local, remote);
  local->set_host("bench");
  local->set_address("127.0.0.1");
  local->set_identity("ip:127.0.0.1");
  local->add_subnets()->set_cidr("198.51.100.10/32");
  remote->set_host("peer" + std::to_string(i));
  remote->set_address(PeerAddress(i));
  remote->set_identity("fqdn:peer.bench.example");
  remote->add_subnets()->set_cidr(RemoteNet(i));
  auto* p = t->mutable_proposal();
  p->set_name("default");
  p->mutable_ike()->add_encryption("aes128gcm16");
  p->mutable_ike()->add_prf("prfsha256");
  p->mutable_ike()->add_dh_groups("curve25519");
  p->mutable_esp()->add_encryption("aes128gcm16");
  t->set_auth(v1::AUTH_METHOD_CERTIFICATE);
  t->mutable_dpd()->set_interval_seconds(30);
  t->mutable_dpd()->set_max_retries(3);
  t->mutable_dpd()->set_stale_child_seconds(10);
  t->set_start_action(agent_end ? v1::START_ACTION_START : v1::START_ACTION_NONE);
  t->set_initiator(agent_end);
  t->set_reqid(0x1F000100 + i);
}

// Key + certificate issued by the bench CA, written as DIR/NAME.{key,crt}.
bool Issue(ca::CertificateAuthority& authority, const fs::path& dir, const std::string& name,
           std::vector<std::string> ips, std::vector<std::string> dns) {
  auto key = ca::GenerateKey(ca::KeyType::kEcdsaP256);
  if (!key.ok()) return false;
  auto csr = ca::MakeCsrPem(key->get(), name);
  ca::IssueRequest req;
  req.common_name = name;
  req.ips = std::move(ips);
  req.dns = std::move(dns);
  auto cert = csr.ok() ? authority.Issue(*csr, req) : absl::StatusOr<ca::IssuedCert>(csr.status());
  auto pem = ca::PrivateKeyToPem(key->get());
  if (!cert.ok() || !pem.ok()) {
    std::fprintf(stderr, "issue %s: %s\n", name.c_str(), std::string(cert.status().message()).c_str());
    return false;
  }
  Write(dir / (name + ".crt"), cert->pem);
  Write(dir / (name + ".key"), *pem);
  return true;
}

agent::HostCredentials Credentials(const fs::path& dir, const std::string& name) {
  return agent::HostCredentials{Read(dir / (name + ".crt")), Read(dir / (name + ".key"))};
}

// The peer: N responder tunnels on its own EngineAdapter, until the parent ends it.
int RunPeer(const fs::path& dir, int n) {
  kernel::FakeXfrm xfrm;
  const agent::HostCredentials creds = Credentials(dir, "peer");
  agent::EngineAdapter ike(xfrm, [&] { return creds; });
  if (!ike.Start().ok()) return 1;
  agent::ConnectionOptions o;
  o.policy_priority = 10000;
  o.ca_chain_pem = {Read(dir / "ca.crt")};
  o.crl_pem = Read(dir / "ca.crl");
  v1::PolicyBundle b;
  b.set_host("peer");
  for (int i = 0; i < n; ++i) AddTunnel(b, i, false);
  auto state = agent::TranslateBundle(b);
  if (!state.ok()) return 1;
  for (const auto& t : state->tunnels) {
    if (absl::Status s = ike.AddConnection(t, o); !s.ok()) {
      std::fprintf(stderr, "peer: %s\n", std::string(s.message()).c_str());
      return 1;
    }
  }
  Write(dir / "peer.ready", "1");
  pause();  // SIGTERM from the parent
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 500;
  const std::string kernel_mode = argc > 2 ? argv[2] : "fake";
  if (n < 1 || n > 20000 || (kernel_mode != "fake" && kernel_mode != "outside")) {
    std::fprintf(stderr, "usage: %s [TUNNELS=500] [fake|outside]\n"
                 "  fake: the SAs and policies are kept in this process (FakeXfrm), an upper bound\n"
                 "  outside: they are not (as with a real kernel, which holds them in its memory)\n", argv[0]);
    return 2;
  }
  if (geteuid() != 0) {
    std::fprintf(stderr, "needs root (a network namespace of its own, UDP port 500)\n");
    return 2;
  }
  spdlog::set_level(spdlog::level::warn);
  if (unshare(CLONE_NEWNET) != 0 || std::system("ip link set lo up") != 0) {
    std::fprintf(stderr, "unshare(CLONE_NEWNET) / lo up failed\n");
    return 1;
  }
  rlimit fds{static_cast<rlim_t>(n + 256), static_cast<rlim_t>(n + 256)};
  setrlimit(RLIMIT_NOFILE, &fds);  // the peer holds one socket per address
  const fs::path dir = fs::temp_directory_path() / ("ipfleet-agent-engine-bench-" + std::to_string(getpid()));
  fs::create_directories(dir);

  // PKI and the signed bundle, made in a child so that none of it stays in the agent's memory.
  pid_t setup = fork();
  if (setup == 0) {
    auto pki = ca::InitControllerPki(dir / "ctl", ca::ControllerInitOptions{});
    auto signer = ca::BundleSigner::Load(dir / "ctl");
    if (!pki.ok() || !signer.ok()) _exit(1);
    auto crl = (*pki)->Crl();
    if (!crl.ok() || !Issue(**pki, dir, "bench", {"127.0.0.1"}, {}) ||
        !Issue(**pki, dir, "peer", {}, {"peer.bench.example"}))
      _exit(1);
    Write(dir / "ca.crt", (*pki)->CertificatePem());
    Write(dir / "ca.crl", crl->pem);
    v1::PolicyBundle b;
    b.set_host("bench");
    b.set_version(1);
    b.set_controller_address("192.0.2.1:7443");
    b.add_ca_chain((*pki)->CertificatePem());
    b.set_crl(crl->pem);
    for (int i = 0; i < n; ++i) AddTunnel(b, i, true);
    v1::SignedBundle sb;
    sb.set_bundle(b.SerializeAsString());
    auto sig = signer->Sign(sb.bundle());
    if (!sig.ok()) _exit(1);
    sb.set_signature(sig->signature);
    sb.set_signer_certificate(sig->signer_cert_pem);
    sb.set_algorithm(sig->algorithm);
    Write(dir / "bundle.pb", sb.SerializeAsString());
    _exit(0);
  }
  int st = 0;
  waitpid(setup, &st, 0);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    std::fprintf(stderr, "setup failed\n");
    return 1;
  }

  pid_t peer = fork();
  if (peer == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    _exit(RunPeer(dir, n));
  }
  auto cleanup = [&](int rc) {
    kill(peer, SIGTERM);
    waitpid(peer, nullptr, 0);
    fs::remove_all(dir);
    return rc;
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60 + n / 10);
  while (!fs::exists(dir / "peer.ready")) {
    if (std::chrono::steady_clock::now() > deadline || waitpid(peer, nullptr, WNOHANG) != 0) {
      std::fprintf(stderr, "peer did not start\n");
      return cleanup(1);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }

  const long rss_start = ProcStatusKb("VmRSS:");
  const auto t0 = std::chrono::steady_clock::now();
  int up = 0;
  long rss = 0, hwm = 0;
  size_t report_bytes = 0, kernel_sas = 0, kernel_policies = 0;
  {
    kernel::FakeXfrm fake;
    KernelOutside outside;
    kernel::Xfrm& xfrm = kernel_mode == "fake" ? static_cast<kernel::Xfrm&>(fake) : outside;
    const agent::HostCredentials creds = Credentials(dir, "bench");
    agent::EngineAdapter ike(xfrm, [&] { return creds; });
    if (!ike.Start().ok()) return cleanup(1);
    agent::SystemClock clock;
    agent::AgentOptions o;
    o.host = "bench";
    o.data_dir = dir / "agent";
    agent::Agent a(o, xfrm, ike, agent::MakeCaVerifier(Read(dir / "ca.crt")), clock);
    if (!a.Start().ok()) return cleanup(1);
    v1::SignedBundle sb;
    sb.ParseFromString(Read(dir / "bundle.pb"));
    auto ack = a.HandleBundle(sb);
    sb.Clear();
    if (!ack.applied()) {
      std::fprintf(stderr, "bundle refused: %s\n", ack.error().c_str());
      return cleanup(1);
    }
    // Every tunnel up (an IKE_SA and an installed CHILD_SA pair), bounded; health ticks meanwhile.
    while (std::chrono::steady_clock::now() < deadline) {
      a.Tick();
      auto rep = a.BuildHealth(true);
      up = 0;
      for (const auto& t : rep.tunnels()) up += t.up();
      report_bytes = rep.ByteSizeLong();
      if (up == n) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    for (int i = 0; i < 10; ++i) a.Tick();
    kernel_sas = kernel_mode == "fake" ? fake.sa_count() : outside.sa_count();
    kernel_policies = kernel_mode == "fake" ? fake.policy_count() : outside.policy_count();
    rss = ProcStatusKb("VmRSS:");
    hwm = ProcStatusKb("VmHWM:");
    ike.Stop();
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("kernel=%s tunnels=%d up=%d kernel_sas=%zu kernel_policies=%zu report_bytes=%zu establish_s=%.1f\n", kernel_mode.c_str(), n, up,
              kernel_sas, kernel_policies, report_bytes, secs);
  std::printf("rss_before_kb=%ld rss_kb=%ld peak_rss_kb=%ld agent_delta_kb=%ld\n", rss_start, rss, hwm, rss - rss_start);
  return cleanup(up == n ? 0 : 1);
}
