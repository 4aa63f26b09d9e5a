// Stale-SA detection with a fake clock, repairs as forced renegotiations, /metrics (label unit).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "fake_ike.h"
#include "ipfleet/common/http/metrics_endpoint.h"
#include "ipfleet/agent/health/stale_detector.h"
#include "ipfleet/agent/sync/agent.h"
#include "ipfleet/agent/sync/verifier.h"
#include "test_support.h"

namespace ipfleet::agent {
namespace {

using health::ChildStaleDetector;
using testing::FakeClock;
using testing::FakeIke;
using testing::FakeProber;
using testing::StandardBundle;
using testing::TestPki;

TEST(StaleDetectorTest, RacoonCaseOutboundRisingInboundFlatProbeUnansweredIsStale) {
  ChildStaleDetector d({5000, 2000});
  int64_t t = 0;
  uint64_t out = 100, in = 100;
  EXPECT_EQ(d.Observe({t, out, in}), ChildStaleDetector::Action::kNone);
  // The peer lost the SA: we keep sending, nothing comes back.
  for (int i = 1; i < 5; ++i) {
    t += 1000;
    out += 10;
    EXPECT_EQ(d.Observe({t, out, in}), ChildStaleDetector::Action::kNone) << "too early at " << t;
  }
  t += 1000;
  out += 10;
  EXPECT_EQ(d.Observe({t, out, in}), ChildStaleDetector::Action::kSendProbe);
  EXPECT_EQ(d.reason(), "no-inbound-traffic");
  t += 1000;
  EXPECT_EQ(d.Observe({t, out + 1, in}), ChildStaleDetector::Action::kNone);
  t += 1000;
  EXPECT_EQ(d.Observe({t, out + 2, in}), ChildStaleDetector::Action::kDeclareStale);
  EXPECT_EQ(d.state(), ChildStaleDetector::State::kStale);
  EXPECT_EQ(d.reason(), "probe-unanswered");
  EXPECT_NE(d.detail().find("probe unanswered"), std::string::npos);
}

TEST(StaleDetectorTest, OneWayTrafficWithProbeAnsweredIsNeverStale) {
  ChildStaleDetector d({5000, 2000});
  int64_t t = 0;
  uint64_t out = 0, in = 0;
  d.Observe({t, out, in});
  int probes = 0;
  for (int i = 0; i < 60; ++i) {  // a minute of one-way streaming
    t += 1000;
    out += 50;
    auto a = d.Observe({t, out, in});
    ASSERT_NE(a, ChildStaleDetector::Action::kDeclareStale) << "at " << t;
    if (a == ChildStaleDetector::Action::kSendProbe) {
      ++probes;
      in += 1;  // the echo reply arrives through the inbound SA
    }
  }
  EXPECT_GE(probes, 5);
  EXPECT_NE(d.state(), ChildStaleDetector::State::kStale);
}

TEST(StaleDetectorTest, ProberSeenAnswerClearsSuspicionAndIdleSaIsNotSuspect) {
  ChildStaleDetector d({5000, 2000});
  d.Observe({0, 10, 10});
  EXPECT_EQ(d.Observe({6000, 20, 10}), ChildStaleDetector::Action::kSendProbe);
  d.ProbeAnswered(6500);
  EXPECT_EQ(d.state(), ChildStaleDetector::State::kHealthy);
  EXPECT_EQ(d.Observe({9000, 20, 10}), ChildStaleDetector::Action::kNone);
  // Idle in both directions for a long time: nothing to suspect.
  ChildStaleDetector idle({5000, 2000});
  idle.Observe({0, 5, 5});
  EXPECT_EQ(idle.Observe({600000, 5, 5}), ChildStaleDetector::Action::kNone);
  EXPECT_EQ(idle.state(), ChildStaleDetector::State::kHealthy);
}

TEST(StaleDetectorTest, UnknownSaTrackerWaitsForGrace) {
  health::UnknownSaTracker t(3000);
  EXPECT_TRUE(t.Observe(0, {1, 2, 3}, {1, 2}).empty());
  EXPECT_TRUE(t.Observe(2000, {1, 2, 3}, {1, 2}).empty());
  EXPECT_EQ(t.Observe(3000, {1, 2, 3}, {1, 2}), std::vector<uint32_t>{3});
  // Became known in time: never reported.
  EXPECT_TRUE(t.Observe(4000, {4}, {}).empty());
  EXPECT_TRUE(t.Observe(5000, {4}, {4}).empty());
  EXPECT_TRUE(t.Observe(9000, {4}, {4}).empty());
  EXPECT_TRUE(health::OlderThanInitialContact(100, 200));
  EXPECT_FALSE(health::OlderThanInitialContact(300, 200));
  EXPECT_FALSE(health::OlderThanInitialContact(100, 0));
}

class AgentHealthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pki_ = TestPki::Make();
    dir_ = testing::TempDir("health");
    ike_ = std::make_unique<FakeIke>(xfrm_);
    AgentOptions o;
    o.host = "host-a";
    o.data_dir = dir_;
    o.probe_timeout_ms = 2000;
    o.unknown_sa_grace_ms = 3000;
    agent_ = std::make_unique<Agent>(o, xfrm_, *ike_, MakeCaVerifier(pki_->authority->CertificatePem()), clock_,
                                     &prober_, &metrics_);
    ASSERT_TRUE(agent_->Start().ok());
    ASSERT_TRUE(agent_->HandleBundle(pki_->Sign(StandardBundle(1))).applied());
    agent_->Tick();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  ChildSaView Child() { return ike_->Sa("a--b")->children.at(0); }
  void SetCounters(uint32_t spi_in, uint32_t spi_out, uint64_t in, uint64_t out) {
    kernel::SaCounters ci, co;
    ci.packets = in;
    ci.bytes = in * 100;
    co.packets = out;
    co.bytes = out * 100;
    ASSERT_TRUE(xfrm_.SetCounters(testing::Sid(kernel::IpAddress::MustParse("192.0.2.10"), spi_in), ci).ok());
    ASSERT_TRUE(xfrm_.SetCounters(testing::Sid(kernel::IpAddress::MustParse("192.0.2.11"), spi_out), co).ok());
  }
  std::unique_ptr<TestPki> pki_;
  std::filesystem::path dir_;
  FakeClock clock_;
  kernel::FakeXfrm xfrm_;
  std::unique_ptr<FakeIke> ike_;
  FakeProber prober_;
  ipfleet::Metrics metrics_;
  std::unique_ptr<Agent> agent_;
};

TEST_F(AgentHealthTest, DeadChildSaWithLiveIkeSaIsDetectedAndRenegotiated) {
  const auto old = Child();
  uint64_t out = 0;
  bool renegotiated = false;
  for (int i = 0; i < 20 && !renegotiated; ++i) {
    clock_.Advance(500);
    out += 5;
    SetCounters(old.spi_in, old.spi_out, 0, out);  // IKE_SA still answers: liveness not failed
    agent_->Tick();
    renegotiated = Child().spi_in != old.spi_in;
  }
  ASSERT_TRUE(renegotiated) << "stale CHILD_SA was not replaced";
  ASSERT_EQ(prober_.sent.size(), 1u);
  EXPECT_EQ(prober_.sent[0].first, "198.51.100.10");
  EXPECT_EQ(prober_.sent[0].second, "198.51.100.11");
  auto rep = agent_->BuildHealth(true);
  ASSERT_EQ(rep.forced_size(), 1);
  EXPECT_EQ(rep.forced(0).reason(), "stale-child-sa");
  EXPECT_EQ(rep.forced(0).tunnel(), "a--b");
  EXPECT_EQ(rep.forced_renegotiations_total(), 1u);
  EXPECT_EQ(rep.tunnels(0).forced_renegotiations(), 1u);
  EXPECT_TRUE(rep.tunnels(0).up());
  EXPECT_EQ(metrics_.Get("ipfleet_agent_forced_renegotiations_total", {{"reason", "stale-child-sa"}}), 1);
  EXPECT_EQ(agent_->BuildHealth(true).forced_size(), 0) << "forced list is since the previous report";
  // Within twice the liveness interval (5 s) from the moment inbound stopped.
  EXPECT_LE(clock_.ms - 1'000'000, 10'000);
}

TEST_F(AgentHealthTest, ChildRepairThatDoesNotComeUpEscalatesToTheIkeSa) {
  // The peer lost everything: a new CHILD_SA on the old IKE_SA cannot be negotiated.
  const auto old = Child();
  ike_->fail_initiate = true;
  uint64_t out = 0;
  for (int i = 0; i < 16; ++i) {
    clock_.Advance(500);
    out += 5;
    if (ike_->Sa("a--b") && !ike_->Sa("a--b")->children.empty()) SetCounters(old.spi_in, old.spi_out, 0, out);
    agent_->Tick();
  }
  EXPECT_NE(std::find(ike_->log.begin(), ike_->log.end(), "delete_child:a--b"), ike_->log.end());
  EXPECT_EQ(std::find(ike_->log.begin(), ike_->log.end(), "delete_ike:a--b"), ike_->log.end()) << "escalated too early";
  ike_->fail_initiate = false;
  for (int i = 0; i < 8; ++i) {
    clock_.Advance(500);
    agent_->Tick();
  }
  // Initiate succeeded again only after the whole IKE_SA was dropped... or earlier; either way the
  // escalation ran once the 3 s passed without an SA pair.
  EXPECT_NE(std::find(ike_->log.begin(), ike_->log.end(), "delete_ike:a--b"), ike_->log.end());
}

TEST_F(AgentHealthTest, OneWayTrafficWithAnsweredProbeIsNotRenegotiated) {
  const auto c = Child();
  prober_.answer = true;
  uint64_t out = 0;
  for (int i = 0; i < 60; ++i) {
    clock_.Advance(500);
    out += 5;
    SetCounters(c.spi_in, c.spi_out, 0, out);
    agent_->Tick();
  }
  EXPECT_GE(prober_.sent.size(), 2u);
  EXPECT_EQ(Child().spi_in, c.spi_in);
  EXPECT_EQ(agent_->BuildHealth(true).forced_size(), 0);
  EXPECT_EQ(agent_->forced_total(), 0u);
}

TEST_F(AgentHealthTest, StaleReportedWhileProbing) {
  const auto c = Child();
  uint64_t out = 0;
  for (int i = 0; i < 11; ++i) {
    clock_.Advance(500);
    out += 5;
    SetCounters(c.spi_in, c.spi_out, 3, out);
    agent_->Tick();
  }
  ASSERT_EQ(prober_.sent.size(), 1u);
  auto rep = agent_->BuildHealth(false);
  ASSERT_EQ(rep.tunnels(0).child_sas_size(), 1);
  EXPECT_TRUE(rep.tunnels(0).child_sas(0).stale());
  EXPECT_EQ(rep.tunnels(0).child_sas(0).stale_reason(), "no-inbound-traffic");
  EXPECT_EQ(rep.tunnels(0).child_sas(0).counters().packets_out(), out);
  EXPECT_EQ(rep.stale_sas(), 1u);
}

TEST_F(AgentHealthTest, IkeLivenessFailureForcesRenegotiation) {
  ike_->Sa("a--b")->liveness_failed = true;
  agent_->Tick();
  auto rep = agent_->BuildHealth(true);
  ASSERT_EQ(rep.forced_size(), 1);
  EXPECT_EQ(rep.forced(0).reason(), "ike-liveness-failed");
  EXPECT_FALSE(ike_->Sa("a--b")->liveness_failed) << "IKE_SA was not replaced";
  EXPECT_NE(std::find(ike_->log.begin(), ike_->log.end(), "delete_ike:a--b"), ike_->log.end());
}

TEST_F(AgentHealthTest, SaOlderThanPeerInitialContactIsReplaced) {
  const auto c = Child();
  ike_->Sa("a--b")->peer_initial_contact_unix = c.established_unix + 10;
  ike_->now_unix = c.established_unix + 20;
  agent_->Tick();
  auto rep = agent_->BuildHealth(true);
  ASSERT_EQ(rep.forced_size(), 1);
  EXPECT_EQ(rep.forced(0).reason(), "initial-contact");
  EXPECT_NE(Child().spi_in, c.spi_in);
}

// The peer restarted and sent INITIAL_CONTACT: the engine deleted the old CHILD_SA itself; the
// agent reports it as a forced renegotiation once, without repairing anything itself.
TEST_F(AgentHealthTest, SasDroppedByPeersInitialContactAreReportedOnce) {
  agent_->Tick();
  ike_->Sa("a--b")->dropped_by_initial_contact = 1;
  ike_->log.clear();
  agent_->Tick();
  agent_->Tick();
  auto rep = agent_->BuildHealth(true);
  ASSERT_EQ(rep.forced_size(), 1);
  EXPECT_EQ(rep.forced(0).reason(), "initial-contact");
  EXPECT_EQ(rep.forced(0).tunnel(), "a--b");
  EXPECT_TRUE(ike_->log.empty()) << "the engine already replaced the SAs; nothing to delete or initiate";
}

TEST_F(AgentHealthTest, OwnedKernelSaUnknownToIkeIsDeletedAfterGrace) {
  kernel::SaParams sa;
  sa.src = kernel::IpAddress::MustParse("192.0.2.11");
  sa.dst = kernel::IpAddress::MustParse("192.0.2.10");
  sa.spi = 0xdead0001;
  sa.reqid = 0x1F000010;
  sa.aead = kernel::AeadAlgo{"rfc4106(gcm(aes))", std::vector<uint8_t>(20, 3), 128};
  ASSERT_TRUE(xfrm_.AddSa(sa).ok());
  kernel::SaParams foreign = sa;
  foreign.spi = 0xf0f0f0f0;
  foreign.reqid = 7;
  xfrm_.InsertForeignSa(foreign);
  for (int i = 0; i < 3; ++i) {
    clock_.Advance(1000);
    agent_->Tick();
    EXPECT_TRUE(xfrm_.QuerySa(sa.id()).ok()) << "deleted before the grace period";
  }
  clock_.Advance(1000);
  agent_->Tick();
  EXPECT_FALSE(xfrm_.QuerySa(sa.id()).ok());
  EXPECT_TRUE(xfrm_.QuerySa(foreign.id()).ok()) << "a foreign SA was touched";
  auto rep = agent_->BuildHealth(true);
  ASSERT_EQ(rep.forced_size(), 1);
  EXPECT_EQ(rep.forced(0).reason(), "unknown-kernel-sa");
  EXPECT_EQ(rep.forced(0).tunnel(), "a--b");
}

std::string HttpGet(uint16_t port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return "";
  }
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n";
  (void)!write(fd, req.data(), req.size());
  std::string resp;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) resp.append(buf, n);
  close(fd);
  return resp;
}

TEST_F(AgentHealthTest, MetricsServedInPrometheusTextOnLoopback) {
  ike_->Sa("a--b")->liveness_failed = true;
  agent_->Tick();
  http::MetricsEndpoint server(metrics_, "127.0.0.1", 0);
  ASSERT_TRUE(server.Start().ok());
  ASSERT_NE(server.port(), 0);
  std::string resp = HttpGet(server.port(), "/metrics");
  EXPECT_NE(resp.find("HTTP/1.1 200 OK"), std::string::npos);
  EXPECT_NE(resp.find("text/plain; version=0.0.4"), std::string::npos);
  EXPECT_NE(resp.find("# TYPE ipfleet_agent_forced_renegotiations_total counter"), std::string::npos);
  EXPECT_NE(resp.find("ipfleet_agent_forced_renegotiations_total{reason=\"ike-liveness-failed\"} 1"), std::string::npos) << resp;
  EXPECT_NE(resp.find("ipfleet_agent_bundle_version 1"), std::string::npos);
  EXPECT_NE(resp.find("ipfleet_agent_tunnels 2"), std::string::npos);
  EXPECT_NE(HttpGet(server.port(), "/other").find("404"), std::string::npos);
  server.Stop();
  http::MetricsEndpoint open(metrics_, "0.0.0.0", 0);
  EXPECT_FALSE(open.Start().ok()) << "metrics must never listen on a routable address";
}

}  // namespace
}  // namespace ipfleet::agent
