// NAT traversal (RFC 7296 2.23, RFC 3948): port switch, following a NATed peer, keepalives.
// Detection itself (NAT_DETECTION_*_IP hashes) is the ike_natd task in tasks/ike_init.cc.
#include "natfrag.h"

namespace ipfleet::ike::internal {

void SwitchToNatT(IkeSa& sa) {
  // RFC 7296 2.23: once a NAT is detected the initiator continues on 4500 for source and
  // destination, and all later IKE messages carry the non-ESP marker there (RFC 3948 2.2).
  if (sa.local.port == kNatTPort && sa.remote.port == kNatTPort) return;
  if (sa.local.port == 500) sa.local.port = kNatTPort;
  if (sa.remote.port == 500) sa.remote.port = kNatTPort;
  spdlog::info("nat_t_switch {} local={} remote_behind_nat={} local_behind_nat={}", sa.log_prefix(),
               sa.local.ToString(), sa.nat_remote, sa.nat_local);
}

bool FollowPeer(IkeSa& sa, const Endpoint& local, const Endpoint& remote, bool request) {
  if (sa.local == local && sa.remote == remote) return false;
  // RFC 7296 2.23: the end that is not behind a NAT sends to where the last valid authenticated
  // packet came from; the end behind the NAT does not do this dynamic update. A peer moving to
  // 4500 after detection is followed in any case (the responder learns of the switch this way).
  // Requests are answered where they came from anyway (2.11), so the SA follows those too, as
  // before; responses only move it when the peer is behind a NAT.
  bool port_switch = remote.port == kNatTPort && sa.remote.port != kNatTPort;
  if (!request && !(sa.nat_remote && !sa.nat_local) && !port_switch) return false;
  spdlog::info("peer_endpoint_changed {} new_remote={} new_local={}", sa.log_prefix(), remote.ToString(), local.ToString());
  sa.remote = remote;
  sa.local = local;
  return true;
}

std::optional<TimePoint> NextKeepalive(const IkeSa& sa, Duration interval) {
  if (interval.count() <= 0 || !sa.nat_local || sa.state != IkeState::kEstablished) return std::nullopt;
  return sa.last_sent + interval;
}

}  // namespace ipfleet::ike::internal
