#include "ipfleet/common/metrics.h"

#include <absl/strings/str_cat.h>

#include <algorithm>
#include <cmath>
#include <sstream>

namespace ipfleet {
namespace {

std::string Escape(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out;
}

std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return std::to_string(static_cast<long long>(v));
  std::ostringstream s;
  s.precision(12);
  s << v;
  return s.str();
}

// name{k="v",...} with an optional extra label (a histogram's "le").
void AppendSeries(std::string* out, const std::string& name, const Labels& labels, const std::string& extra_key = "",
                  const std::string& extra_value = "") {
  *out += name;
  if (labels.empty() && extra_key.empty()) return;
  *out += "{";
  bool first = true;
  for (const auto& [k, v] : labels) {
    absl::StrAppend(out, first ? "" : ",", k, "=\"", Escape(v), "\"");
    first = false;
  }
  if (!extra_key.empty()) absl::StrAppend(out, first ? "" : ",", extra_key, "=\"", extra_value, "\"");
  *out += "}";
}

const char* TypeName(Metrics::Type t) {
  switch (t) {
    case Metrics::Type::kCounter: return "counter";
    case Metrics::Type::kHistogram: return "histogram";
    default: return "gauge";
  }
}

}  // namespace

void Metrics::Declare(const std::string& name, Type type, const std::string& help, std::vector<double> buckets) {
  std::lock_guard lock(mu_);
  auto& f = families_[name];
  f.type = type;
  f.help = help;
  std::sort(buckets.begin(), buckets.end());
  f.buckets = std::move(buckets);
}

void Metrics::Set(const std::string& name, const Labels& labels, double value) {
  std::lock_guard lock(mu_);
  families_[name].samples[labels] = value;
}

void Metrics::Add(const std::string& name, const Labels& labels, double delta) {
  std::lock_guard lock(mu_);
  families_[name].samples[labels] += delta;
}

void Metrics::Observe(const std::string& name, const Labels& labels, double value) {
  std::lock_guard lock(mu_);
  Family& f = families_[name];
  HistogramSample& h = f.histograms[labels];
  h.counts.resize(f.buckets.size());
  auto it = std::lower_bound(f.buckets.begin(), f.buckets.end(), value);
  if (it != f.buckets.end()) ++h.counts[static_cast<size_t>(it - f.buckets.begin())];
  ++h.count;
  h.sum += value;
}

void Metrics::Clear(const std::string& name) {
  std::lock_guard lock(mu_);
  if (auto it = families_.find(name); it != families_.end()) {
    it->second.samples.clear();
    it->second.histograms.clear();
  }
}

double Metrics::Get(const std::string& name, const Labels& labels) const {
  std::lock_guard lock(mu_);
  auto it = families_.find(name);
  if (it == families_.end()) return 0;
  if (auto h = it->second.histograms.find(labels); h != it->second.histograms.end()) {
    return static_cast<double>(h->second.count);
  }
  auto s = it->second.samples.find(labels);
  return s == it->second.samples.end() ? 0 : s->second;
}

void Metrics::AddCollector(std::function<void(Metrics&)> collector) {
  std::lock_guard lock(collectors_mu_);
  collectors_.push_back(std::move(collector));
}

std::string Metrics::Render() {
  {
    std::lock_guard lock(collectors_mu_);
    for (const auto& c : collectors_) c(*this);
  }
  std::lock_guard lock(mu_);
  std::string out;
  for (const auto& [name, f] : families_) {
    if (!f.help.empty()) absl::StrAppend(&out, "# HELP ", name, " ", f.help, "\n");
    absl::StrAppend(&out, "# TYPE ", name, " ", TypeName(f.type), "\n");
    if (f.type == Type::kHistogram) {
      for (const auto& [labels, h] : f.histograms) {
        uint64_t cumulative = 0;
        for (size_t i = 0; i < f.buckets.size(); ++i) {
          cumulative += i < h.counts.size() ? h.counts[i] : 0;
          AppendSeries(&out, name + "_bucket", labels, "le", FormatValue(f.buckets[i]));
          absl::StrAppend(&out, " ", cumulative, "\n");
        }
        AppendSeries(&out, name + "_bucket", labels, "le", "+Inf");
        absl::StrAppend(&out, " ", h.count, "\n");
        AppendSeries(&out, name + "_sum", labels);
        absl::StrAppend(&out, " ", FormatValue(h.sum), "\n");
        AppendSeries(&out, name + "_count", labels);
        absl::StrAppend(&out, " ", h.count, "\n");
      }
      continue;
    }
    for (const auto& [labels, value] : f.samples) {
      AppendSeries(&out, name, labels);
      absl::StrAppend(&out, " ", FormatValue(value), "\n");
    }
  }
  return out;
}

}  // namespace ipfleet
