// Reconnect delays: exponential growth with full jitter, so a fleet that lost its controller
// does not come back in lock-step.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

namespace ipfleet::agent {

class Backoff {
 public:
  struct Options {
    std::chrono::milliseconds initial{500};
    std::chrono::milliseconds max{30000};
    double multiplier = 2.0;
  };
  explicit Backoff(Options o, uint64_t seed = std::random_device{}());

  // The delay before the next attempt: uniform in [ceiling/2, ceiling], ceiling growing
  // geometrically up to max.
  std::chrono::milliseconds Next();
  void Reset() { attempt_ = 0; }
  int attempt() const { return attempt_; }

 private:
  Options o_;
  std::mt19937_64 rng_;
  int attempt_ = 0;
};

}  // namespace ipfleet::agent
