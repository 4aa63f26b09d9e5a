// GET /metrics in the Prometheus text format, on a loopback-only plain HTTP server (the agent's
// and the controller's scrape endpoint; the controller also serves it on its dashboard, behind
// authentication).
#pragma once

#include <memory>
#include <string>

#include "ipfleet/common/http/server.h"
#include "ipfleet/common/metrics.h"

namespace ipfleet::http {

inline constexpr const char* kPrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

// Adds the /metrics route to `server`.
void AddMetricsRoute(httplib::Server& server, Metrics& metrics);

class MetricsEndpoint {
 public:
  // `address` must be a loopback address; port 0 picks a free port.
  MetricsEndpoint(Metrics& metrics, std::string address, int port);
  absl::Status Start() { return server_.Start(); }
  void Stop() { server_.Stop(); }
  int port() const { return server_.port(); }

 private:
  Server server_;
};

}  // namespace ipfleet::http
