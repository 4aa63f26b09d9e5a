// IKE_SA + first CHILD_SA establishments per second on one core: our initiator against our
// responder in one process (ECDSA P-256 certificates, Curve25519, AES-GCM-128 for IKE and ESP),
// with the CPU time each side spends measured separately (CLOCK_THREAD_CPUTIME_ID around every
// engine call). Datagrams pass through an in-memory queue; kernel = FakeXfrm.
//   ike_bench [--n N]
#include <spdlog/spdlog.h>
#include <time.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <string>

#include "ipfleet/ike/engine.h"
#include "ipfleet/kernel/fake_xfrm.h"
#include "test_pki.h"

namespace ike = ipfleet::ike;
namespace kernel = ipfleet::kernel;

namespace {

double CpuNow() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

struct Packet {
  ike::Endpoint from, to;
  ike::Bytes data;
};

class QueueNet : public ike::Network {
 public:
  void Send(const ike::Endpoint& l, const ike::Endpoint& r, ike::Bytes d) override { q.push_back({l, r, std::move(d)}); }
  std::deque<Packet> q;
};

ike::PeerConfig Peer(const std::string& local, const std::string& remote, const ike::testing::Pem& cert,
                     const ike::testing::Pem& ca) {
  ike::PeerConfig p;
  p.name = "bench";
  p.local_addr = kernel::IpAddress::MustParse(local);
  p.remote_addr = kernel::IpAddress::MustParse(remote);
  p.local_id = local;
  p.remote_id = remote;
  p.cert_pem = cert.cert;
  p.key_pem = cert.key;
  p.ca_pems = {ca.cert};
  p.ike_proposals = {"aes128gcm16-prfsha256-x25519"};
  ike::ChildConfig c;
  c.name = "c";
  c.esp_proposals = {"aes128gcm16"};
  p.children = {c};
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  int n = 2000;
  for (int i = 1; i + 1 < argc; ++i)
    if (!strcmp(argv[i], "--n")) n = atoi(argv[i + 1]);
  spdlog::set_level(spdlog::level::warn);  // the per-SA info lines would dominate a tight loop
  auto ca = ike::testing::MakeCa("bench CA");
  auto ca_crl = ike::testing::MakeCrl(ca, {999});
  auto ca_a = ike::testing::IssueCert(ca, "a", {"IP:192.0.2.1"}, 2);
  auto ca_b = ike::testing::IssueCert(ca, "b", {"IP:192.0.2.2"}, 3);
  ike::SystemClock clock;
  QueueNet net;
  kernel::FakeXfrm xa, xb;
  auto a = ike::Engine::Create(clock, net, xa);
  auto b = ike::Engine::Create(clock, net, xb);
  ike::IkeConfig ca_cfg, cb_cfg;
  ca_cfg.peers = {Peer("192.0.2.1", "192.0.2.2", ca_a, ca)};
  cb_cfg.peers = {Peer("192.0.2.2", "192.0.2.1", ca_b, ca)};
  ca_cfg.peers[0].crl_pems = cb_cfg.peers[0].crl_pems = {ca_crl};
  if (!a->Load(ca_cfg).ok() || !b->Load(cb_cfg).ok()) return 1;
  int established = 0;
  uint64_t last_ike = 0;
  a->SetEventCallback([&](const ike::Event& e) {
    if (e.type == ike::EventType::kIkeEstablished) {
      ++established;
      last_ike = e.ike_id;
    }
  });
  double cpu_a = 0, cpu_b = 0, cpu_del = 0;
  auto pump = [&](double* ca_acc, double* cb_acc) {
    while (!net.q.empty()) {
      Packet p = std::move(net.q.front());
      net.q.pop_front();
      bool to_a = p.to.addr == kernel::IpAddress::MustParse("192.0.2.1");
      double t0 = CpuNow();
      (to_a ? a : b)->OnDatagram(p.to, p.from, p.data);
      *(to_a ? ca_acc : cb_acc) += CpuNow() - t0;
    }
  };
  auto wall0 = std::chrono::steady_clock::now();
  double del_wall = 0;
  for (int i = 0; i < n; ++i) {
    double t0 = CpuNow();
    if (!a->Initiate("bench").ok()) return 1;
    cpu_a += CpuNow() - t0;
    pump(&cpu_a, &cpu_b);
    if (established != i + 1) {
      fprintf(stderr, "establishment %d failed\n", i);
      return 1;
    }
    // Tear down (not counted as establishment CPU) so tables stay small.
    auto d0 = std::chrono::steady_clock::now();
    double t1 = CpuNow();
    (void)a->DeleteIke(last_ike);
    pump(&cpu_del, &cpu_del);
    cpu_del += CpuNow() - t1;
    del_wall += std::chrono::duration<double>(std::chrono::steady_clock::now() - d0).count();
  }
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count() - del_wall;
  printf("establishments=%d suite=AES_GCM_16_128/PRF_HMAC_SHA2_256/CURVE_25519+ECDSA-P256-certs esp=AES_GCM_16_128\n", n);
  printf("initiator_cpu_ms_per_establishment=%.3f\n", cpu_a / n * 1e3);
  printf("responder_cpu_ms_per_establishment=%.3f\n", cpu_b / n * 1e3);
  printf("establishments_per_second_one_core=%.0f\n", n / wall);
  printf("delete_cpu_ms_per_ike_sa_both_sides=%.3f\n", cpu_del / n * 1e3);
  return 0;
}
