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

namespace {

void WipeKeys(kernel::SaParams& p) {
  if (p.aead) Wipe(p.aead->key);
  if (p.crypt) Wipe(p.crypt->key);
  if (p.auth) Wipe(p.auth->key);
}

// The kernel's UDP encapsulation of this IKE_SA's CHILD_SAs follows the IKE endpoints after a NAT re-map
// (RFC 3948: ESP goes to the port the peer's IKE came from), or ESP would keep going to the stale mapping.
// XFRM_MSG_UPDSA changes an existing SA's encapsulation in place (the SPI and keys stay); its full
// parameters, keys included, come back from QuerySa and are wiped after. Only ports: a new peer address
// would change the outbound SA's identity (and the policies' templates), which this does not do.
void FollowPeerEsp(IkeSa& sa, const Endpoint& old_local, const Endpoint& old_remote) {
  if (!sa.nat_detected) return;
  if (old_remote.addr != sa.remote.addr || old_local.addr != sa.local.addr) {
    spdlog::warn("esp_endpoint_not_followed {} reason=\"address changed, only NAT port re-maps are followed\"",
                 sa.log_prefix());
    return;
  }
  const kernel::NatTEncap out_ports{sa.local.port, sa.remote.port}, in_ports{sa.remote.port, sa.local.port};
  for (auto& c : sa.children) {
    if (c->pending_out && c->pending_out->encap) c->pending_out->encap = out_ports;  // installed later as is
    if (c->state != ChildState::kInstalled) continue;
    for (bool inbound : {true, false}) {
      kernel::SaId id{inbound ? sa.local.addr : sa.remote.addr, inbound ? c->spi_in : c->spi_out,
                      kernel::IpsecProto::kEsp, {}};
      auto st = sa.svc.xfrm().QuerySa(id);
      if (!st.ok()) continue;  // e.g. an outbound SA still held back (make-before-break)
      kernel::SaParams p = std::move(st->params);
      const kernel::NatTEncap& want = inbound ? in_ports : out_ports;
      if (p.encap && *p.encap != want) {
        p.encap = want;
        absl::Status u = sa.svc.xfrm().UpdateSa(p);
        spdlog::info("esp_encap_followed {} child={} spi={:08x} dir={} sport={} dport={} ok={}", sa.log_prefix(),
                     c->id, id.spi, inbound ? "in" : "out", want.src_port, want.dst_port, u.ok());
        if (!u.ok()) spdlog::warn("esp_encap_update_failed {} reason=\"{}\"", sa.log_prefix(), Msg(u));
      }
      WipeKeys(p);
    }
  }
}

}  // namespace

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
  const Endpoint old_local = sa.local, old_remote = sa.remote;
  sa.remote = remote;
  sa.local = local;
  FollowPeerEsp(sa, old_local, old_remote);
  return true;
}

std::optional<TimePoint> NextKeepalive(const IkeSa& sa, Duration interval) {
  if (interval.count() <= 0 || !sa.nat_local || sa.state != IkeState::kEstablished) return std::nullopt;
  return sa.last_sent + interval;
}

}  // namespace ipfleet::ike::internal
