#include "run.h"

#include <signal.h>

#include <chrono>
#include <ctime>

#include <absl/strings/str_cat.h>
#include <absl/strings/str_join.h>
#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>
#ifdef IPFLEET_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "ipfleet/common/http/metrics_endpoint.h"
#include "ipfleet/agent/health/prober.h"
#include "ipfleet/agent/sync/agent.h"
#include "ipfleet/agent/sync/ike_adapter.h"
#include "ipfleet/agent/sync/session.h"
#include "ipfleet/agent/sync/verifier.h"
#include "ipfleet/ca/cert.h"
#include "ipfleet/ca/csr.h"
#include "ipfleet/ca/keys.h"
#include "ipfleet/common/files.h"
#include "ipfleet/kernel/fake_xfrm.h"
#include "ipfleet/kernel/netlink_xfrm.h"

namespace ipfleet::agent::daemon {
namespace {

std::string ReadOr(const Path& p) {
  auto s = files::Read(p);
  return s.ok() ? *s : std::string();
}

absl::StatusOr<std::unique_ptr<kernel::Xfrm>> NewKernel(bool fake) {
  if (fake) return std::unique_ptr<kernel::Xfrm>(std::make_unique<kernel::FakeXfrm>());
  return kernel::NewNetlinkXfrm();
}

// Generates the next key (kept as host.key.next until the certificate arrives) and its CSR.
absl::StatusOr<std::string> MakeRenewalCsr(const Path& dir, const std::string& host) {
  IPFLEET_ASSIGN_OR_RETURN(ossl::PKey key, ca::GenerateKey(ca::KeyType::kEcdsaP256));
  IPFLEET_RETURN_IF_ERROR(ca::SavePrivateKey(PendingKey(dir), key.get()));
  return ca::MakeCsrPem(key.get(), host);
}

}  // namespace

int Run(const RunOptions& o) {
  auto cfg = LoadConfig(o.data_dir);
  if (!cfg.ok()) {
    spdlog::error("event=start_failed error=\"{}\"", std::string(cfg.status().message()));
    return 2;
  }
  const std::string ca_pem = ReadOr(CaCert(o.data_dir));
  if (ca_pem.empty()) {
    spdlog::error("event=start_failed error=\"no pinned CA in {}\"", CaCert(o.data_dir).string());
    return 2;
  }
  // Signals are taken synchronously by the main loop (sigtimedwait); block them for every thread.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  auto agent_xfrm = NewKernel(o.fake_kernel);
  auto engine_xfrm = NewKernel(o.fake_kernel);
  if (!agent_xfrm.ok() || !engine_xfrm.ok()) {
    spdlog::error("event=start_failed error=\"kernel: {}\"",
                  std::string((agent_xfrm.ok() ? engine_xfrm.status() : agent_xfrm.status()).message()));
    return 2;
  }
  const Path dir = o.data_dir;
  EngineAdapter ike(**engine_xfrm, [dir] { return HostCredentials{ReadOr(HostCert(dir)), ReadOr(HostKey(dir))}; },
                    o.ike_port);
  if (absl::Status s = ike.Start(); !s.ok()) {
    spdlog::error("event=start_failed error=\"ike: {}\"", std::string(s.message()));
    return 2;
  }

  AgentOptions ao;
  ao.host = cfg->host;
  ao.data_dir = dir;
  for (const std::string& controller : cfg->controllers) {  // every replica's path stays open
    std::string chost;
    uint16_t cport = 0;
    if (SplitHostPort(controller, &chost, &cport, 7443).ok()) {
      if (auto ip = ParseIp(chost); ip.ok()) ao.controller_endpoints.push_back({*ip, cport});
    }
  }
  ipfleet::Metrics metrics;
  health::IcmpProber prober;
  SystemClock clock;
  Agent agent(ao, **agent_xfrm, ike, MakeCaVerifier(ca_pem), clock, &prober, &metrics);
  if (absl::Status s = agent.Start(); !s.ok()) {
    spdlog::error("event=start_failed error=\"{}\"", std::string(s.message()));
    return 2;
  }

  std::unique_ptr<http::MetricsEndpoint> metrics_server;
  if (o.metrics_port >= 0) {
    metrics_server = std::make_unique<http::MetricsEndpoint>(metrics, o.metrics_address, o.metrics_port);
    if (absl::Status s = metrics_server->Start(); !s.ok()) {
      spdlog::error("event=metrics_failed error=\"{}\"", std::string(s.message()));
      return 2;
    }
  }

  SessionOptions so;
  so.targets = cfg->controllers;
  so.tls_server_name = cfg->tls_server_name;
  so.health_interval_ms = int64_t{o.health_interval_seconds} * 1000;
  so.credentials = [dir] {
    grpc::SslCredentialsOptions tls;
    tls.pem_root_certs = ReadOr(CaCert(dir));
    tls.pem_cert_chain = ReadOr(HostCert(dir));
    tls.pem_private_key = ReadOr(HostKey(dir));
    return grpc::SslCredentials(tls);
  };
  so.cert_serial = [dir] {
    auto info = ca::InspectCertificatePem(ReadOr(HostCert(dir)));
    return info.ok() ? info->serial_hex : std::string();
  };
  SessionClient session(so, agent);
  metrics.Declare("ipfleet_agent_session_connected", ipfleet::Metrics::Type::kGauge, "1 while the controller session is up.");
  session.on_renewal = [&session, dir](const v1::CertificateRenewal& r) {
    if (!r.error().empty()) {
      spdlog::error("event=renewal_refused error=\"{}\"", r.error());
      return;
    }
    auto next = ca::LoadPrivateKey(PendingKey(dir));
    auto cert = ca::ParseCertificatePem(r.certificate_pem());
    if (!next.ok() || !cert.ok() || X509_check_private_key(cert->get(), next->get()) != 1) {
      spdlog::error("event=renewal_mismatch error=\"certificate does not match the pending key\"");
      return;
    }
    // Certificate first, then the key: a crash in between leaves the old pair or host.key.next.
    if (!files::WriteAtomic(HostCert(dir), r.certificate_pem(), 0644).ok() ||
        !ca::SavePrivateKey(HostKey(dir), next->get()).ok()) {
      spdlog::error("event=renewal_store_failed");
      return;
    }
    std::error_code ec;
    std::filesystem::remove(PendingKey(dir), ec);
    spdlog::info("event=certificate_renewed");
    session.Reconnect();  // the next stream uses the new certificate
  };
  auto request_renewal = [&session, dir, host = cfg->host]() -> absl::Status {
    IPFLEET_ASSIGN_OR_RETURN(std::string csr, MakeRenewalCsr(dir, host));
    v1::AgentMessage m;
    m.mutable_renewal()->set_csr_pem(csr);
    session.Send(m);
    spdlog::info("event=renewal_requested");
    return absl::OkStatus();
  };
  agent.set_reenroll_hook(request_renewal);
  session.Start();
#ifdef IPFLEET_HAVE_SYSTEMD
  sd_notify(0, "READY=1");
#endif
  spdlog::info("event=agent_running host={} controller={} metrics_port={} kernel={}", cfg->host, absl::StrJoin(cfg->controllers, ","),
               metrics_server ? metrics_server->port() : 0, o.fake_kernel ? "fake" : "netlink");

  (void)files::EnsureDir(dir / "status", 0700);
  auto last_renew_check = std::chrono::steady_clock::now() - std::chrono::hours(1);
  for (;;) {
    timespec ts{1, 0};
    int sig = sigtimedwait(&sigs, nullptr, &ts);
    if (sig == SIGTERM || sig == SIGINT) {
      spdlog::info("event=agent_stopping signal={}", sig);
      break;
    }
    metrics.Set("ipfleet_agent_session_connected", {}, session.connected() ? 1 : 0);
    // The local view for `ipfleet-agent status` / `sas`.
    (void)files::WriteAtomic(HealthFile(dir), agent.BuildHealth(false).SerializeAsString(), 0600);
    // Renew when a third of the validity is left (checked every 10 minutes).
    auto now = std::chrono::steady_clock::now();
    if (now - last_renew_check > std::chrono::minutes(10)) {
      last_renew_check = now;
      auto info = ca::InspectCertificatePem(ReadOr(HostCert(dir)));
      if (info.ok()) {
        auto total = info->not_after - info->not_before;
        if (std::chrono::system_clock::now() > info->not_after - total / 3 && session.connected()) {
          if (absl::Status s = request_renewal(); !s.ok()) spdlog::error("event=renewal_failed error=\"{}\"", std::string(s.message()));
        }
      }
    }
  }
#ifdef IPFLEET_HAVE_SYSTEMD
  sd_notify(0, "STOPPING=1");
#endif
  session.Stop();
  if (metrics_server) metrics_server->Stop();
  ike.Stop();
  return 0;
}

}  // namespace ipfleet::agent::daemon
