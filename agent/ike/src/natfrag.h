// NAT traversal (nat.cc), IKE fragmentation (fragments.cc) and DoS admission with cookies
// (cookies.cc): the pieces the SA manager calls at its edges. Internal, not installed.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "internal.h"

namespace ipfleet::ike::internal {

// ---- NAT traversal (RFC 3948, RFC 7296 2.23) -------------------------------------------------------
inline constexpr uint16_t kNatTPort = 4500;
// RFC 3948 2.3: a NAT-keepalive is one octet 0xFF sent on the NAT-T port.
inline bool IsNatKeepalive(ByteView d) { return d.size() == 1 && d[0] == 0xff; }
inline Bytes NatKeepalive() { return Bytes{0xff}; }
// Initiator after an IKE_SA_INIT that detected a NAT: move both ends to UDP 4500 (the transport
// then prefixes the non-ESP marker).
void SwitchToNatT(IkeSa& sa);
// An authenticated message arrived from (local, remote). Updates the SA's endpoints when the RFC
// allows it (peer behind a NAT, or its move to 4500); returns true when something changed.
bool FollowPeer(IkeSa& sa, const Endpoint& local, const Endpoint& remote, bool request);
// When the next keepalive is due (only the side behind a NAT sends them), or nullopt.
std::optional<TimePoint> NextKeepalive(const IkeSa& sa, Duration interval);

// ---- IKE fragmentation (RFC 7383) --------------------------------------------------------------------
inline bool IsFragmentMessage(const Message& m) {
  return m.payloads.size() == 1 && m.payloads[0].type == PayloadType::kSkf;
}
// The datagrams that carry `packet` (a sealed message of this SA): the packet itself, or its SKF
// fragments when fragmentation was negotiated and the packet exceeds `fragment_size` on the wire.
std::vector<Bytes> FragmentForSend(IkeSa& sa, const Bytes& packet, size_t fragment_size);
struct FragmentResult {
  enum Kind { kStored, kDropped, kRetransmittedRequest, kComplete } kind = kDropped;
  std::vector<Payload> payloads;  // kComplete: the reassembled, decoded inner chain
  std::string why;                // kDropped
};
// Verifies and keeps one SKF datagram (memory bounded per SA: one message, kMaxFragments,
// kMaxReassemblyBytes); returns the whole message when it is complete.
FragmentResult AcceptFragment(IkeSa& sa, const Message& msg, ByteView datagram, TimePoint now);
inline constexpr size_t kMaxFragments = 64;
inline constexpr size_t kMaxReassemblyBytes = 64 * 1024;
std::optional<TimePoint> ReassemblyDeadline(const IkeSa& sa, Duration timeout);
void ExpireReassembly(IkeSa& sa, TimePoint now, Duration timeout);

// ---- DoS admission of IKE_SA_INIT (RFC 7296 2.6) -------------------------------------------------
class Admission {
 public:
  struct Verdict {
    bool accept = false;
    Bytes reply;      // a stateless IKE_SA_INIT response carrying N(COOKIE), when one is due
    const char* why = "";
  };
  // Decides on a new IKE_SA_INIT request (no state exists for it yet). half_open: responder SAs
  // not yet authenticated in total / from this remote address.
  Verdict Check(const IkeConfig& cfg, const Message& request, const Endpoint& remote, size_t half_open,
                size_t half_open_from_peer, TimePoint now);
  uint64_t cookies_sent() const { return cookies_sent_; }
  uint64_t cookies_rejected() const { return cookies_rejected_; }

 private:
  struct Secret {
    uint32_t version = 0;
    std::array<uint8_t, 32> key{};
  };
  void Rotate(const IkeConfig& cfg, TimePoint now);
  Bytes Make(const Secret& s, const Message& req, const Endpoint& remote) const;
  std::optional<Secret> current_, previous_;
  TimePoint rotated_{};
  uint64_t cookies_sent_ = 0, cookies_rejected_ = 0;
};
// Initiator: the responder asked for a COOKIE; keeps it for the retried IKE_SA_INIT. False when
// the cookie is malformed or the responder keeps asking (bounded rounds).
bool TakeCookie(IkeSa& sa, const std::vector<Payload>& in);

}  // namespace ipfleet::ike::internal
