#include "ipfleet/common/http/metrics_endpoint.h"

namespace ipfleet::http {
namespace {

ServerOptions MetricsOptions(std::string address, int port) {
  ServerOptions o;
  o.address = std::move(address);
  o.port = port;
  // /metrics exposes SA counters and tunnel names and has no authentication: loopback only.
  o.loopback_only = true;
  o.workers = 4;
  o.name = "metrics";
  return o;
}

}  // namespace

void AddMetricsRoute(httplib::Server& server, Metrics& metrics) {
  server.Get("/metrics", [&metrics](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics.Render(), kPrometheusContentType);
  });
}

MetricsEndpoint::MetricsEndpoint(Metrics& metrics, std::string address, int port)
    : server_(MetricsOptions(std::move(address), port)) {
  AddMetricsRoute(server_.routes(), metrics);
  server_.routes().set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.status == 404) res.set_content("only /metrics is served here\n", "text/plain");
  });
}

}  // namespace ipfleet::http
