// Shared pieces for the agent tests: a throwaway PKI (the real ipfleet_ca), bundle builders,
// a fake clock and an Xfrm wrapper that records the order of kernel operations.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "ipfleet/agent/health/prober.h"
#include "ipfleet/agent/sync/clock.h"
#include "ipfleet/ca/authority.h"
#include "ipfleet/ca/bundle_signing.h"
#include "ipfleet/kernel/fake_xfrm.h"
#include "ipfleet/v1/types.pb.h"

namespace ipfleet::agent::testing {

inline std::filesystem::path TempDir(const std::string& tag) {
  auto base = std::filesystem::temp_directory_path() /
              ("ipfleet-agent-" + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(rand()));
  std::filesystem::create_directories(base);
  return base;
}

struct TestPki {
  std::filesystem::path dir;
  std::unique_ptr<ca::CertificateAuthority> authority;
  std::optional<ca::BundleSigner> signer;

  static std::unique_ptr<TestPki> Make() {
    auto p = std::make_unique<TestPki>();
    p->dir = TempDir("pki");
    auto a = ca::InitControllerPki(p->dir, ca::ControllerInitOptions{});
    EXPECT_TRUE(a.ok()) << a.status();
    p->authority = std::move(*a);
    auto s = ca::BundleSigner::Load(p->dir);
    EXPECT_TRUE(s.ok()) << s.status();
    p->signer.emplace(std::move(*s));
    return p;
  }
  ~TestPki() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  v1::SignedBundle Sign(const v1::PolicyBundle& b) const {
    v1::SignedBundle sb;
    sb.set_bundle(b.SerializeAsString());
    auto sig = signer->Sign(sb.bundle());
    EXPECT_TRUE(sig.ok()) << sig.status();
    sb.set_signature(sig->signature);
    sb.set_signer_certificate(sig->signer_cert_pem);
    sb.set_algorithm(sig->algorithm);
    return sb;
  }
};

inline v1::BypassRule* AddBypass(v1::PolicyBundle& b, const std::string& reason, const std::string& cidr,
                                 uint32_t proto, uint32_t from, uint32_t to, uint32_t priority = 100,
                                 v1::BypassAction action = v1::BYPASS_ACTION_ALLOW) {
  auto* r = b.add_bypass();
  r->set_reason(reason);
  r->mutable_remote()->set_cidr(cidr);
  r->mutable_remote()->set_protocol(proto);
  r->mutable_remote()->set_port_from(from);
  r->mutable_remote()->set_port_to(to);
  r->set_action(action);
  r->set_priority(priority);
  return r;
}

inline v1::TunnelSpec* AddTunnel(v1::PolicyBundle& b, const std::string& name, const std::string& peer,
                                 const std::string& local_addr, const std::string& remote_addr,
                                 const std::string& local_net, const std::string& remote_net) {
  auto* t = b.add_tunnels();
  t->set_name(name);
  t->set_mode(v1::TUNNEL_MODE_TUNNEL);
  t->mutable_local()->set_host(b.host());
  t->mutable_local()->set_address(local_addr);
  t->mutable_local()->add_subnets()->set_cidr(local_net);
  t->mutable_remote()->set_host(peer);
  t->mutable_remote()->set_address(remote_addr);
  t->mutable_remote()->add_subnets()->set_cidr(remote_net);
  t->mutable_proposal()->set_name("default");
  t->mutable_proposal()->mutable_ike()->add_encryption("aes128gcm16");
  t->mutable_proposal()->mutable_ike()->add_prf("prfsha256");
  t->mutable_proposal()->mutable_ike()->add_dh_groups("curve25519");
  t->mutable_proposal()->mutable_esp()->add_encryption("aes128gcm16");
  t->set_auth(v1::AUTH_METHOD_CERTIFICATE);
  t->mutable_dpd()->set_interval_seconds(5);
  t->mutable_dpd()->set_max_retries(3);
  t->mutable_dpd()->set_stale_child_seconds(5);
  t->set_start_action(v1::START_ACTION_START);
  t->set_reqid(0x1F000010);
  t->set_initiator(true);
  return t;
}

inline void MakeStatic(v1::TunnelSpec* t, uint32_t spi_out, uint32_t spi_in, char key_byte) {
  t->set_auth(v1::AUTH_METHOD_STATIC);
  auto* k = t->mutable_static_keys();
  k->mutable_outbound()->set_spi(spi_out);
  k->mutable_outbound()->set_encryption_key(std::string(20, key_byte));
  k->mutable_inbound()->set_spi(spi_in);
  k->mutable_inbound()->set_encryption_key(std::string(20, static_cast<char>(key_byte + 1)));
  k->set_key_generation(1);
}

// host-a's standard bundle: controller/IKE/ND bypass, an IKE tunnel to host-b, a static one to host-c.
inline v1::PolicyBundle StandardBundle(uint64_t version, const std::string& host = "host-a") {
  v1::PolicyBundle b;
  b.set_host(host);
  b.set_version(version);
  b.set_generation(version);
  b.set_controller_address("192.0.2.1:7443");
  AddBypass(b, "controller", "192.0.2.1/32", 6, 7443, 7443);
  AddBypass(b, "ike", "0.0.0.0/0", 17, 500, 500);
  AddBypass(b, "ike-natt", "0.0.0.0/0", 17, 4500, 4500);
  AddBypass(b, "icmpv6-nd", "::/0", 58, 133 << 8, (137 << 8) | 0xff);
  AddTunnel(b, "a--b", "host-b", "192.0.2.10", "192.0.2.11", "198.51.100.10/32", "198.51.100.11/32");
  auto* s = AddTunnel(b, "a--c", "host-c", "192.0.2.10", "192.0.2.12", "198.51.100.10/32", "198.51.100.12/32");
  s->set_reqid(0x1F000020);
  MakeStatic(s, 0x5000, 0x6000, 'k');
  return b;
}

class FakeClock : public Clock {
 public:
  int64_t NowMs() override { return ms; }
  int64_t NowUnix() override { return 1'700'000'000 + ms / 1000; }
  void Advance(int64_t d) { ms += d; }
  int64_t ms = 1'000'000;
};

class FakeProber : public health::Prober {
 public:
  absl::StatusOr<uint64_t> Send(const IpAddress& src, const IpAddress& dst) override {
    sent.push_back({src.ToString(), dst.ToString()});
    return ++next;
  }
  bool Answered(uint64_t) override { return answer; }
  std::vector<std::pair<std::string, std::string>> sent;
  bool answer = false;
  uint64_t next = 0;
};

// Forwards to a FakeXfrm and records "op kind" lines, e.g. "policy+ bypass prio=100",
// "policy+ protect prio=10000", "sa+ spi=00005000", "sa- spi=...", "policy- ...".
class RecordingXfrm : public kernel::FakeXfrm {
 public:
  absl::Status AddSa(const kernel::SaParams& sa) override {
    log.push_back("sa+ " + Spi(sa.spi));
    return FakeXfrm::AddSa(sa);
  }
  absl::Status UpdateSa(const kernel::SaParams& sa) override {
    log.push_back("sa~ " + Spi(sa.spi));
    return FakeXfrm::UpdateSa(sa);
  }
  absl::Status DeleteSa(const kernel::SaId& id) override {
    log.push_back("sa- " + Spi(id.spi));
    return FakeXfrm::DeleteSa(id);
  }
  absl::Status AddPolicy(const kernel::PolicyParams& p) override {
    log.push_back(Pol("policy+", p));
    return FakeXfrm::AddPolicy(p);
  }
  absl::Status UpdatePolicy(const kernel::PolicyParams& p) override {
    log.push_back(Pol("policy+", p));
    return FakeXfrm::UpdatePolicy(p);
  }
  absl::Status DeletePolicy(const kernel::PolicyId& id) override {
    log.push_back("policy- " + id.ToString());
    return FakeXfrm::DeletePolicy(id);
  }
  static std::string Spi(uint32_t spi) {
    char b[16];
    std::snprintf(b, sizeof(b), "%08x", spi);
    return b;
  }
  static std::string Pol(const char* op, const kernel::PolicyParams& p) {
    return std::string(op) + (p.templates.empty() ? " bypass" : " protect") + " prio=" + std::to_string(p.priority);
  }
  std::vector<std::string> log;
};

}  // namespace ipfleet::agent::testing
