// Time as an injectable dependency so tests drive health and command deadlines.
#pragma once

#include <chrono>
#include <cstdint>

namespace ipfleet::agent {

class Clock {
 public:
  virtual ~Clock() = default;
  // Milliseconds on a monotonic scale (deadlines, intervals).
  virtual int64_t NowMs() = 0;
  // Wall-clock seconds since the epoch (reports).
  virtual int64_t NowUnix() = 0;
};

class SystemClock : public Clock {
 public:
  int64_t NowMs() override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  int64_t NowUnix() override {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  }
};

}  // namespace ipfleet::agent
