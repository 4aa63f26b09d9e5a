// A small metrics registry rendered in the Prometheus text exposition format (version 0.0.4).
// Used by the agent and the controller; served over HTTP by ipfleet/common/http (MetricsEndpoint,
// and the controller's dashboard).
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace ipfleet {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Metrics {
 public:
  enum class Type { kCounter, kGauge, kHistogram };
  // Declares a family once (help text and type); Set/Add on an undeclared family declare a gauge.
  // A histogram needs its bucket upper bounds (ascending; +Inf is implicit).
  void Declare(const std::string& name, Type type, const std::string& help, std::vector<double> buckets = {});
  void Set(const std::string& name, const Labels& labels, double value);
  void Add(const std::string& name, const Labels& labels, double delta);
  // One observation of a histogram family (declared with buckets).
  void Observe(const std::string& name, const Labels& labels, double value);
  // Drops every sample of a family (for gauges whose label sets change, e.g. per tunnel).
  void Clear(const std::string& name);
  double Get(const std::string& name, const Labels& labels) const;
  // A collector runs at the start of every Render: for values cheaper to compute when scraped
  // than to keep current (hosts by state, certificates expiring). It may call Set/Clear.
  void AddCollector(std::function<void(Metrics&)> collector);
  // Runs the collectors, then renders every family.
  std::string Render();

 private:
  struct HistogramSample {
    std::vector<uint64_t> counts;  // per bucket (not cumulative)
    uint64_t count = 0;
    double sum = 0;
  };
  struct Family {
    Type type = Type::kGauge;
    std::string help;
    std::vector<double> buckets;
    std::map<Labels, double> samples;
    std::map<Labels, HistogramSample> histograms;
  };
  mutable std::mutex mu_;
  std::map<std::string, Family> families_;
  std::mutex collectors_mu_;  // held while collectors run, so two scrapes do not interleave them
  std::vector<std::function<void(Metrics&)>> collectors_;
};

}  // namespace ipfleet
