// Three namespaces for NAT traversal interop: an inside host behind a masquerading router and an outside
// host (issue 7). The router does source NAT with nftables, so the outside host sees the inside one at
// the router's public address and a port the router chose.
//
//   inside: veth 192.0.2.1/24, lo 198.51.100.1/32, default via 192.0.2.254
//   nat:    192.0.2.254/24 | 203.0.113.254/24, ip_forward=1, nft masquerade out of the public side
//   outside: veth 203.0.113.2/24, lo 198.51.100.2/32 (no route back to 192.0.2.0/24: only NAT works)
#pragma once

#include <memory>
#include <string>

#include "harness/netns.h"
#include "ipfleet/common/status.h"

namespace ipfleet::interop {

class NatTriple {
 public:
  // Names unique to this process ("ipfi<pid>xn<k>{i,r,o}"), so NetnsPair's stale cleanup knows them.
  static absl::StatusOr<std::unique_ptr<NatTriple>> Create();
  ~NatTriple();
  NatTriple(const NatTriple&) = delete;
  NatTriple& operator=(const NatTriple&) = delete;

  const NetnsSide& inside() const { return inside_; }
  const NetnsSide& outside() const { return outside_; }
  const std::string& router_ns() const { return router_; }
  // The address the outside host sees the inside host at.
  std::string public_addr() const { return "203.0.113.254"; }
  // Packets the masquerade rule translated so far (nft counter in the router).
  absl::StatusOr<uint64_t> MasqueradedPackets() const;

 private:
  NatTriple() = default;
  NetnsSide inside_, outside_;
  std::string router_;
  bool created_[3] = {false, false, false};
};

}  // namespace ipfleet::interop
