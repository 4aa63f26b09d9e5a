// A small metrics registry rendered in the Prometheus text exposition format (version 0.0.4),
// and a loopback-only HTTP endpoint serving it at /metrics.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "ipfleet/common/status.h"

namespace ipfleet::agent::health {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Metrics {
 public:
  enum class Type { kCounter, kGauge };
  // Declares a family once (help text and type); Set/Add on an undeclared family declare a gauge.
  void Declare(const std::string& name, Type type, const std::string& help);
  void Set(const std::string& name, const Labels& labels, double value);
  void Add(const std::string& name, const Labels& labels, double delta);
  // Drops every sample of a family (for gauges whose label sets change, e.g. per tunnel).
  void Clear(const std::string& name);
  double Get(const std::string& name, const Labels& labels) const;
  std::string Render() const;

 private:
  struct Family {
    Type type = Type::kGauge;
    std::string help;
    std::map<Labels, double> samples;
  };
  mutable std::mutex mu_;
  std::map<std::string, Family> families_;
};

// Serves GET /metrics on 127.0.0.1 (or ::1). Port 0 picks a free port (see port()).
class MetricsServer {
 public:
  MetricsServer(const Metrics& metrics, std::string bind_address, uint16_t port);
  ~MetricsServer();
  absl::Status Start();
  void Stop();
  uint16_t port() const { return port_; }

 private:
  void Loop();
  void Serve(int fd);
  const Metrics& metrics_;
  std::string bind_;
  uint16_t port_;
  int listen_fd_ = -1;
  int wake_fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace ipfleet::agent::health
