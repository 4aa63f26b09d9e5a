// Probes through an SA: an ICMP echo from the tunnel's inner source address to the inner
// destination. The request leaves through the outbound SA (the policy captures it) and the
// reply can only come back through the inbound SA, so an answer proves both directions work.
#pragma once

#include <cstdint>
#include <map>
#include <memory>

#include "ipfleet/agent/sync/net.h"
#include "ipfleet/common/status.h"

namespace ipfleet::agent::health {

class Prober {
 public:
  virtual ~Prober() = default;
  // Sends one probe; returns its handle.
  virtual absl::StatusOr<uint64_t> Send(const IpAddress& source, const IpAddress& destination) = 0;
  // True once the reply to `handle` arrived. Never blocks.
  virtual bool Answered(uint64_t handle) = 0;
};

// ICMP / ICMPv6 echo over raw sockets (needs CAP_NET_RAW, which the agent has as root).
class IcmpProber : public Prober {
 public:
  IcmpProber();
  ~IcmpProber() override;
  absl::StatusOr<uint64_t> Send(const IpAddress& source, const IpAddress& destination) override;
  bool Answered(uint64_t handle) override;

 private:
  void Drain(int fd, bool v6);
  int fd4_ = -1, fd6_ = -1;
  uint16_t ident_;
  uint16_t next_seq_ = 1;
  std::map<uint16_t, bool> answered_;  // seq -> answered
};

}  // namespace ipfleet::agent::health
