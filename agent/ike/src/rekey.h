// Rekeying (RFC 7296 1.3.2, 1.3.3, 2.8, 2.18) and duplicate-SA resolution: the tasks for
// CREATE_CHILD_SA rekeys and the hooks the SA manager calls. Not installed.
//
// Make-before-break for a CHILD_SA rekey:
//   initiator: new inbound, then new outbound SA when the response arrives (the kernel sends on
//              the newest outbound SA), then DELETE of the old child; its inbound SA stays for
//              IkeConfig::rekey_grace for packets still in flight.
//   responder: new inbound SA before the response goes out; the new outbound SA is held back
//              until the peer's DELETE of the old child arrives (the peer can decrypt it by then).
// Collisions (both ends rekey the same SA) follow 2.8.1: the SA whose exchange carried the lowest
// of the four nonces is redundant and deleted by the end that created it; the other end's new SA
// takes over. The same rule settles two IKE_SAs of one tunnel started by both ends at once.
#pragma once

#include "internal.h"

namespace ipfleet::ike::internal {

std::unique_ptr<Task> NewChildRekey(bool initiator, uint64_t old_child_id, uint16_t dh_group = 0);
std::unique_ptr<Task> NewIkeRekey(bool initiator, uint16_t dh_group = 0);
// The responder's task for a CREATE_CHILD_SA request: IKE rekey, CHILD rekey or a new child.
std::unique_ptr<Task> NewCreateChildResponder(const std::vector<Payload>& in);

// Queue a rekey unless one is queued already or the SA was replaced. True when queued.
bool RequestChildRekey(IkeSa& sa, ChildSa& c);
bool RequestIkeRekey(IkeSa& sa);

// Timers (rekey/hard expiry with jitter, grace removal, held-back outbound fallback).
// True when an exchange was queued on `sa` (the caller sends it).
bool RekeyTick(IkeSa& sa, TimePoint now);
std::optional<TimePoint> RekeyDeadline(const IkeSa& sa);

// RemoveChild hook: installs the held-back outbound SA of a successor; a rekeyed child loses its
// outbound SA now and its inbound SA after the grace period. True when the child stays (retired).
bool RetireChild(IkeSa& sa, ChildSa& c);
// Destroy hook: the children of a rekeyed IKE_SA move to its successor first.
void HandOverBeforeDestroy(IkeSa& sa);
// Established hook: two IKE_SAs of one tunnel started by both ends at once (a mesh start) settle
// to one. True when an exchange was queued on some SA.
bool ResolveDuplicates(IkeSa& sa);

// 2.8.1: true when the lowest of the four nonces is one of a1/a2 (a's SA is redundant).
bool LowestNonceIn(ByteView a1, ByteView a2, ByteView b1, ByteView b2);
// The ESP proposals of a child config as configured, DH (PFS) included.
std::vector<Proposal> RekeyProposals(const PeerRuntime::Child& c);
// Moves the children (and queued requests) of `from` to `to`.
void MoveChildren(IkeSa& from, IkeSa& to);
// Installs a held-back outbound SA.
void ActivateOutbound(IkeSa& sa, ChildSa& c);

}  // namespace ipfleet::ike::internal
