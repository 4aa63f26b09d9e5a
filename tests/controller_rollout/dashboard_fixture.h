// The controller fixture with the dashboard (HTTPS on loopback, port 0) and the plain /metrics
// endpoint, plus simulated agents rolled out as one mesh: the common ground of the dashboard tests
// (inproc, browser, netns).
#pragma once

#include <httplib.h>

#include <functional>
#include <string>

#include "controller_fixture.h"

namespace ipfleet::testing {

class DashboardFixture : public ControllerFixture {
 protected:
  // The controller with the dashboard and the plain /metrics endpoint on loopback (port 0).
  void StartController(const std::function<void(controller::ServeOptions&)>& customize = {}) {
    ControllerFixture::StartController([&](controller::ServeOptions& o) {
      o.dashboard = "127.0.0.1:0";
      o.metrics_listen = "127.0.0.1:0";
      if (customize) customize(o);
    });
  }

  // Three agents (h1..h3) in one mesh, rolled out and acknowledged.
  void RollOutMesh() {
    for (int i = 1; i <= 3; ++i) AddAgent("h" + std::to_string(i), "192.0.2." + std::to_string(i), {{"role", "web"}});
    ASSERT_TRUE(WaitFor([&] { return ConnectedCount() == 3; })) << "agents did not connect";
    v1::ApplyRequest apply;
    apply.set_file_name("fleet.yaml");
    apply.set_fleet_yaml(R"(version: 1
hosts:
  h1: {labels: {role: web}, subnets: [198.51.100.1/32]}
  h2: {labels: {role: web}, subnets: [198.51.100.2/32]}
  h3: {labels: {role: web}, subnets: [198.51.100.3/32]}
meshes:
  - {name: web, select: {role: web}}
)");
    v1::ApplyResponse applied;
    grpc::Status st = admin_->Apply(Ctx().get(), apply, &applied);
    ASSERT_TRUE(st.ok()) << st.error_message();
    v1::StartRolloutRequest start;
    start.set_wave_timeout_seconds(30);
    v1::RolloutStatus r;
    st = admin_->StartRollout(Ctx().get(), start, &r);
    ASSERT_TRUE(st.ok()) << st.error_message();
    ASSERT_TRUE(WaitFor([&] {
      v1::GetRolloutRequest g;
      v1::RolloutStatus now;
      return admin_->GetRollout(Ctx().get(), g, &now).ok() && now.state() == v1::ROLLOUT_STATE_SUCCEEDED;
    })) << "rollout did not succeed";
  }

  int ConnectedCount() {
    v1::FleetStatusResponse resp;
    if (!admin_->FleetStatus(Ctx().get(), v1::FleetStatusRequest(), &resp).ok()) return -1;
    int n = 0;
    for (const auto& h : resp.hosts()) n += h.connected();
    return n;
  }

  // A health report from `agent`: every tunnel of its bundle up (one ESP SA pair with made-up
  // SPIs) except `down_tunnel`.
  void ReportHealth(FakeAgent& agent, const std::string& down_tunnel = "") {
    v1::HealthReport r;
    int n = 0;
    for (const auto& t : agent.applied_tunnels()) {
      v1::TunnelHealth* th = r.add_tunnels();
      th->set_tunnel(t);
      th->set_up(t != down_tunnel);
      if (t == down_tunnel) {
        th->set_last_error("simulated: peer unreachable");
        continue;
      }
      v1::ChildSaStatus* c = th->add_child_sas();
      c->set_state(v1::SA_STATE_ESTABLISHED);
      c->set_spi_in(SpiFor(agent.name(), n, true));
      c->set_spi_out(SpiFor(agent.name(), n, false));
      c->mutable_counters()->set_packets_in(10 + n);
      c->mutable_counters()->set_packets_out(20 + n);
      ++n;
    }
    ASSERT_TRUE(agent.SendHealth(r));
  }

  static std::string SpiFor(const std::string& host, int n, bool in) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%c%c%06x", in ? 'c' : 'd', host.back(), n);
    return buf;
  }

  // An HTTPS client for the dashboard (the controller's certificate is from the fleet CA).
  std::unique_ptr<httplib::SSLClient> DashboardClient() {
    auto c = std::make_unique<httplib::SSLClient>("127.0.0.1", controller_->dashboard_port());
    c->enable_server_certificate_verification(false);
    c->set_connection_timeout(5, 0);
    c->set_read_timeout(10, 0);
    return c;
  }

  std::string DashboardUrl() const { return "https://127.0.0.1:" + std::to_string(controller_->dashboard_port()); }

  std::string NewDashboardToken() {
    v1::CreateDashboardTokenResponse resp;
    grpc::Status st = admin_->CreateDashboardToken(Ctx().get(), v1::CreateDashboardTokenRequest(), &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp.token();
  }
};

}  // namespace ipfleet::testing
