// Discrete-event delivery for SimNetwork.
#include "ipfleet/ike/sim_network.h"

namespace ipfleet::ike {

void SimNetwork::Enqueue(const Endpoint& from, const Endpoint& to, const Bytes& data, Duration delay) {
  queue_.push(InFlight{clock_.Now() + delay, seq_++, from, to, data});
}

size_t SimNetwork::IpSize(const Endpoint& from, const Endpoint& to, size_t payload) {
  bool marker = (from.port == 4500 || to.port == 4500) && payload != 1;  // 1 byte: NAT keepalive
  return payload + (from.addr.is_v4() ? 20 : 40) + 8 + (marker ? 4 : 0);
}

void SimNetwork::Send(const Endpoint& in_local, const Endpoint& in_remote, Bytes datagram) {
  ++sent_;
  Endpoint local = in_local, remote = in_remote;
  if (mtu_ && IpSize(local, remote, datagram.size()) > mtu_) {
    ++mtu_dropped_;
    ++dropped_;
    return;
  }
  if (nat_ && !nat_(local, remote)) {
    ++dropped_;
    return;
  }
  if (tap_) tap_(local, remote, datagram);
  std::uniform_real_distribution<double> u(0, 1);
  if ((filter_ && filter_(local, remote, datagram)) || u(rng_) < imp_.drop) {
    ++dropped_;
    return;
  }
  Duration d = imp_.delay + (u(rng_) < imp_.reorder ? imp_.reorder_delay : Duration{0});
  Enqueue(local, remote, datagram, d);
  if (u(rng_) < imp_.duplicate) Enqueue(local, remote, datagram, d + Duration{2});
}

bool SimNetwork::RunUntil(const std::function<bool()>& done, Duration limit) {
  TimePoint end = clock_.Now() + limit;
  while (!done()) {
    std::optional<TimePoint> next;
    if (!queue_.empty()) next = queue_.top().at;
    for (auto& [addr, e] : engines_)
      if (auto d = e->NextDeadline(); d && (!next || *d < *next)) next = d;
    if (!next || *next > end) {
      clock_.Set(end);
      for (auto& [addr, e] : engines_) e->Tick();
      return done();
    }
    // A deadline that Tick() cannot clear must not spin the loop at one instant.
    if (*next > clock_.Now()) clock_.Set(*next);
    else if (queue_.empty() || queue_.top().at > clock_.Now()) clock_.Advance(Duration{1});
    while (!queue_.empty() && queue_.top().at <= clock_.Now()) {
      InFlight f = queue_.top();
      queue_.pop();
      auto it = engines_.find(f.to.addr);
      if (it != engines_.end()) it->second->OnDatagram(f.to, f.from, f.data);
    }
    for (auto& [addr, e] : engines_) e->Tick();
  }
  return true;
}

}  // namespace ipfleet::ike
