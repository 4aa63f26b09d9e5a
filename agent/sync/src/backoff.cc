#include "ipfleet/agent/sync/backoff.h"

#include <algorithm>
#include <cmath>

namespace ipfleet::agent {

Backoff::Backoff(Options o, uint64_t seed) : o_(o), rng_(seed) {}

std::chrono::milliseconds Backoff::Next() {
  double ceiling = static_cast<double>(o_.initial.count()) * std::pow(o_.multiplier, std::min(attempt_, 30));
  ceiling = std::min(ceiling, static_cast<double>(o_.max.count()));
  ++attempt_;
  std::uniform_real_distribution<double> dist(ceiling / 2, ceiling);
  return std::chrono::milliseconds(static_cast<int64_t>(dist(rng_)));
}

}  // namespace ipfleet::agent
