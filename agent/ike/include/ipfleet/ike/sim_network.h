// A simulated network and a fake clock for driving engines in one process: datagrams are
// delivered by destination address after a delay, and can be dropped, duplicated or reordered
// (seeded, so a failing run can be replayed). Used by the unit tests and the benchmark.
#pragma once

#include <functional>
#include <map>
#include <queue>
#include <random>

#include "ipfleet/ike/engine.h"

namespace ipfleet::ike {

class FakeClock : public Clock {
 public:
  TimePoint Now() const override { return now_; }
  void Set(TimePoint t) { now_ = t; }
  void Advance(Duration d) { now_ += d; }

 private:
  TimePoint now_ = TimePoint{} + std::chrono::hours(1);
};

class SimNetwork : public Network {
 public:
  struct Impairment {
    double drop = 0;       // probability a datagram is lost
    double duplicate = 0;  // probability it is delivered twice
    double reorder = 0;    // probability it gets an extra delay (overtaken by later ones)
    Duration delay{1};
    Duration reorder_delay{30};
  };
  // Return true to drop this datagram (targeted losses in tests).
  using Filter = std::function<bool(const Endpoint& from, const Endpoint& to, const Bytes& data)>;
  using Tap = std::function<void(const Endpoint& from, const Endpoint& to, const Bytes& data)>;

  explicit SimNetwork(FakeClock& clock, uint64_t seed = 1) : clock_(clock), rng_(seed) {}

  void Attach(const kernel::IpAddress& addr, Engine* engine) { engines_[addr] = engine; }
  void Detach(const kernel::IpAddress& addr) { engines_.erase(addr); }
  void SetImpairment(const Impairment& i) { imp_ = i; }
  void SetFilter(Filter f) { filter_ = std::move(f); }
  void SetTap(Tap t) { tap_ = std::move(t); }
  // A middlebox on the path: may rewrite source/destination (NAT) or return false to drop.
  using Nat = std::function<bool(Endpoint& from, Endpoint& to)>;
  void SetNat(Nat n) { nat_ = std::move(n); }
  // Datagrams whose IP size (payload + IP/UDP headers, + the 4-byte non-ESP marker on port
  // 4500) exceeds the MTU are dropped, as a path without fragmentation would. 0 = no limit.
  void SetMtu(size_t mtu) { mtu_ = mtu; }
  uint64_t mtu_dropped() const { return mtu_dropped_; }
  static size_t IpSize(const Endpoint& from, const Endpoint& to, size_t payload);

  void Send(const Endpoint& local, const Endpoint& remote, Bytes datagram) override;

  // Delivers datagrams and runs engine timers in simulated time until `done` holds or `limit`
  // of simulated time has passed. Returns done().
  bool RunUntil(const std::function<bool()>& done, Duration limit);
  // Runs for exactly `d` of simulated time.
  void RunFor(Duration d) { RunUntil([] { return false; }, d); }

  uint64_t sent() const { return sent_; }
  uint64_t dropped() const { return dropped_; }

 private:
  struct InFlight {
    TimePoint at;
    uint64_t seq;
    Endpoint from, to;
    Bytes data;
    bool operator>(const InFlight& o) const { return at != o.at ? at > o.at : seq > o.seq; }
  };
  void Enqueue(const Endpoint& from, const Endpoint& to, const Bytes& data, Duration delay);

  FakeClock& clock_;
  std::mt19937_64 rng_;
  Impairment imp_;
  Filter filter_;
  Tap tap_;
  std::map<kernel::IpAddress, Engine*> engines_;
  std::priority_queue<InFlight, std::vector<InFlight>, std::greater<>> queue_;
  uint64_t seq_ = 0, sent_ = 0, dropped_ = 0;
  Nat nat_;
  size_t mtu_ = 0;
  uint64_t mtu_dropped_ = 0;
};

}  // namespace ipfleet::ike
