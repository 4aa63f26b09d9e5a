// Agent memory with N tunnels up: one signed bundle with N IKE tunnels (each with an IKE_SA view
// and one CHILD_SA pair installed in the fake kernel, i.e. 2N kernel SAs and 3N policies),
// health ticks and a report built, then VmRSS / VmHWM of this process.
// Uses the fake kernel and FakeIke (tests/agent/fake_ike.h): it measures the agent core, not the
// IKE engine's per-SA state. Usage: agent_rss_bench [N=1000]
// GCC 12 -O3 reports a false maybe-uninitialized inside std::string for ControllerInitOptions.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unistd.h>
#include <fstream>
#include <string>

#include <spdlog/spdlog.h>

#include "../../tests/agent/fake_ike.h"
#include "proc_status.h"
#include "ipfleet/agent/sync/agent.h"
#include "ipfleet/agent/sync/verifier.h"
#include "ipfleet/ca/authority.h"
#include "ipfleet/ca/bundle_signing.h"
#include "ipfleet/kernel/fake_xfrm.h"
#include "ipfleet/v1/types.pb.h"

namespace {

class BenchClock : public ipfleet::agent::Clock {
 public:
  int64_t NowMs() override { return ms; }
  int64_t NowUnix() override { return 1'700'000'000 + ms / 1000; }
  int64_t ms = 0;
};

}  // namespace

int main(int argc, char** argv) {
  using namespace ipfleet;
  const int n = argc > 1 ? std::atoi(argv[1]) : 1000;
  spdlog::set_level(spdlog::level::warn);
  auto dir = std::filesystem::temp_directory_path() / ("ipfleet-agent-bench-" + std::to_string(getpid()));
  ca::ControllerInitOptions init_options;
  init_options.ca.name = "bench CA";
  auto pki = ca::InitControllerPki(dir / "ctl", init_options);
  auto signer = ca::BundleSigner::Load(dir / "ctl");
  if (!pki.ok() || !signer.ok()) return 1;

  v1::PolicyBundle b;
  b.set_host("bench");
  b.set_version(1);
  b.set_controller_address("192.0.2.1:7443");
  for (int i = 0; i < n; ++i) {
    auto* t = b.add_tunnels();
    t->set_name("bench--peer" + std::to_string(i));
    t->set_mode(v1::TUNNEL_MODE_TUNNEL);
    t->mutable_local()->set_host("bench");
    t->mutable_local()->set_address("192.0.2.10");
    t->mutable_local()->add_subnets()->set_cidr("198.51.100.10/32");
    t->mutable_remote()->set_host("peer" + std::to_string(i));
    char addr[32];
    std::snprintf(addr, sizeof(addr), "10.%d.%d.1", (i >> 8) & 0xff, i & 0xff);
    t->mutable_remote()->set_address(addr);
    std::snprintf(addr, sizeof(addr), "10.%d.%d.0/24", 128 + ((i >> 8) & 0x7f), i & 0xff);
    t->mutable_remote()->add_subnets()->set_cidr(addr);
    t->mutable_proposal()->mutable_esp()->add_encryption("aes128gcm16");
    t->set_auth(v1::AUTH_METHOD_CERTIFICATE);
    t->set_start_action(v1::START_ACTION_START);
    t->set_initiator(true);
    t->set_reqid(0x1F000100 + i);
  }
  v1::SignedBundle sb;
  sb.set_bundle(b.SerializeAsString());
  auto sig = signer->Sign(sb.bundle());
  sb.set_signature(sig->signature);
  sb.set_signer_certificate(sig->signer_cert_pem);
  sb.set_algorithm(sig->algorithm);
  const std::string ca_pem = (*pki)->CertificatePem();
  b.Clear();

  const long rss_start = ProcStatusKb("VmRSS:");
  kernel::FakeXfrm xfrm;
  agent::testing::FakeIke ike(xfrm);
  BenchClock clock;
  agent::AgentOptions o;
  o.host = "bench";
  o.data_dir = dir / "agent";
  agent::Agent a(o, xfrm, ike, agent::MakeCaVerifier(ca_pem), clock);
  if (!a.Start().ok()) return 1;
  auto ack = a.HandleBundle(sb);
  sb.Clear();
  if (!ack.applied()) {
    std::fprintf(stderr, "bundle refused: %s\n", ack.error().c_str());
    return 1;
  }
  for (int i = 0; i < 20; ++i) {
    clock.ms += 500;
    a.Tick();
  }
  auto rep = a.BuildHealth(true);
  int up = 0;
  for (const auto& t : rep.tunnels()) up += t.up();
  const long rss = ProcStatusKb("VmRSS:");
  const long hwm = ProcStatusKb("VmHWM:");
  std::printf("tunnels=%d up=%d kernel_sas=%zu kernel_policies=%zu report_bytes=%zu\n", n, up, xfrm.sa_count(),
              xfrm.policy_count(), rep.ByteSizeLong());
  std::printf("rss_before_kb=%ld rss_kb=%ld peak_rss_kb=%ld agent_delta_kb=%ld\n", rss_start, rss, hwm, rss - rss_start);
  std::filesystem::remove_all(dir);
  return up == n ? 0 : 1;
}
