// IKE fragmentation (RFC 7383): negotiation in IKE_SA_INIT, splitting sealed messages into SKF
// datagrams on the way out, and bounded reassembly of authenticated fragments on the way in.
#include <absl/strings/str_cat.h>

#include "natfrag.h"

namespace ipfleet::ike::internal {
namespace {

uint16_t Be16(const Bytes& b, size_t at) { return static_cast<uint16_t>(b[at] << 8 | b[at + 1]); }

// IKEV2_FRAGMENTATION_SUPPORTED (RFC 7383 2.3): the initiator offers it, the responder answers
// it only when offered; both must have sent it before either fragments.
class IkeFrag : public Task {
 public:
  IkeFrag(bool initiator, bool enabled) : Task(initiator), enabled_(enabled) {}
  const char* name() const override { return "ike_frag"; }
  absl::Status Build(IkeSa& sa, Exchange& ex, std::vector<Payload>& out) override {
    if (ex.fatal_notify || !enabled_ || (!initiator_ && !sa.frag_supported)) return absl::OkStatus();
    out.push_back(MakeNotify(NotifyType::kIkev2FragmentationSupported));
    return absl::OkStatus();
  }
  absl::Status Process(IkeSa& sa, Exchange&, const std::vector<Payload>& in) override {
    sa.frag_supported = enabled_ && FindNotify(in, NotifyType::kIkev2FragmentationSupported) != nullptr;
    return absl::OkStatus();
  }

 private:
  bool enabled_;
};

}  // namespace

std::unique_ptr<Task> NewIkeFrag(bool initiator, bool enabled) { return std::make_unique<IkeFrag>(initiator, enabled); }

std::vector<Bytes> FragmentForSend(IkeSa& sa, const Bytes& packet, size_t fragment_size) {
  // On the wire: IP and UDP headers, plus the non-ESP marker on the NAT-T port (RFC 7383 2.5.1
  // sizes fragments so the whole IP datagram fits).
  size_t overhead = (sa.remote.addr.is_v4() ? 20 : 40) + 8 + (sa.local.port == kNatTPort ? 4 : 0);
  if (!sa.frag_supported || !sa.keys || !sa.cipher || packet.size() + overhead <= fragment_size ||
      packet.size() <= kHeaderSize + kGenericPayloadHeaderSize)
    return {packet};
  auto h = DecodeHeader(packet);
  // Only encrypted messages are fragmented; IKE_SA_INIT never is (RFC 7383 2.5).
  if (!h.ok() || h->next_payload != PayloadType::kSk || h->exchange == ExchangeType::kIkeSaInit) return {packet};
  size_t limit = fragment_size > overhead ? fragment_size - overhead : 0;
  size_t chunk = sa.cipher->MaxFragmentChunk(limit);
  const Bytes& ek = sa.initiator ? sa.keys->sk_ei : sa.keys->sk_er;
  const Bytes& ak = sa.initiator ? sa.keys->sk_ai : sa.keys->sk_ar;
  auto first = static_cast<PayloadType>(packet[kHeaderSize]);
  // The message was sealed as one SK payload (and is cached/retransmitted that way); recover its
  // inner chain with our own keys and seal it again piecewise.
  auto inner = sa.cipher->Unprotect(packet, packet.size() - kHeaderSize - kGenericPayloadHeaderSize, ek, ak);
  if (chunk == 0 || !inner.ok()) {
    spdlog::warn("fragment_failed {} size={} fragment_size={} reason=\"{}\"", sa.log_prefix(), packet.size(), fragment_size,
                 inner.ok() ? "fragment size too small" : Msg(inner.status()));
    return {packet};
  }
  size_t total = std::max<size_t>(1, (inner->size() + chunk - 1) / chunk);
  if (total > kMaxFragments) {
    spdlog::warn("fragment_failed {} size={} reason=\"more than {} fragments\"", sa.log_prefix(), packet.size(), kMaxFragments);
    Wipe(*inner);
    return {packet};
  }
  std::vector<Bytes> out;
  for (size_t i = 0; i < total; ++i) {
    size_t off = i * chunk, len = std::min(chunk, inner->size() - off);
    auto f = sa.cipher->ProtectFragment(*h, first, static_cast<uint16_t>(i + 1), static_cast<uint16_t>(total),
                                        ByteView(inner->data() + off, len), ek, ak);
    if (!f.ok()) {
      spdlog::warn("fragment_failed {} reason=\"{}\"", sa.log_prefix(), Msg(f.status()));
      Wipe(*inner);
      return {packet};
    }
    out.push_back(std::move(*f));
  }
  Wipe(*inner);
  spdlog::debug("fragmented {} mid={} size={} fragments={}", sa.log_prefix(), h->message_id, packet.size(), total);
  return out;
}

FragmentResult AcceptFragment(IkeSa& sa, const Message& msg, ByteView datagram, TimePoint now) {
  auto drop = [](std::string why) {
    FragmentResult r;
    r.kind = FragmentResult::kDropped;
    r.why = std::move(why);
    return r;
  };
  const Header& h = msg.header;
  if (!sa.keys || !sa.cipher) return drop("fragment before keys exist");
  if (!sa.frag_supported) return drop("fragment although fragmentation was not negotiated");
  const auto& skf = std::get<SkPayload>(msg.payloads[0].body);
  if (skf.body.size() < 4) return drop("SKF payload too short");
  uint16_t number = Be16(skf.body, 0), total = Be16(skf.body, 2);
  if (number == 0 || total == 0 || number > total || total > kMaxFragments) return drop("bad fragment numbering");
  bool response = h.is_response();
  bool retransmitted = false;
  // Window checks first: no crypto work for fragments of messages we would not take anyway.
  if (!response) {
    retransmitted = sa.cached_mid && h.message_id == *sa.cached_mid;
    if (!retransmitted && h.message_id != sa.peer_next_mid) return drop("fragment message ID outside the window");
  } else if (!sa.outstanding || h.message_id != sa.outstanding->mid) {
    return drop("fragment of a response to no outstanding request");
  }
  // RFC 7383 2.6: each fragment is authenticated before it is kept, so only the peer can make
  // us hold memory, and at most one message's worth per SA.
  const Bytes& ek = sa.initiator ? sa.keys->sk_er : sa.keys->sk_ei;
  const Bytes& ak = sa.initiator ? sa.keys->sk_ar : sa.keys->sk_ai;
  auto plain = sa.cipher->Unprotect(datagram, skf.body.size() - 4, ek, ak);
  if (!plain.ok()) return drop(absl::StrCat("fragment failed verification: ", Msg(plain.status())));
  if (retransmitted) {
    // RFC 7383 2.6.1: a retransmitted request is answered once, on its first fragment.
    if (number != 1) return FragmentResult{FragmentResult::kStored, {}, ""};
    return FragmentResult{FragmentResult::kRetransmittedRequest, {}, ""};
  }
  if (plain->empty()) return drop("empty fragment");
  auto& r = sa.reassembly;
  if (r && (r->mid != h.message_id || r->response != response)) r.reset();
  if (r && total != r->total) {
    // RFC 7383 2.6: more fragments than before means the sender shrank them; start over. Fewer
    // is a stale retransmission.
    if (total < r->total) return drop("fragment of an older, coarser split");
    r.reset();
  }
  if (!r) {
    r.emplace();
    r->mid = h.message_id;
    r->response = response;
    r->total = total;
    r->parts.resize(total);
    r->started = now;
  }
  if (!r->parts[number - 1].empty()) return FragmentResult{FragmentResult::kStored, {}, ""};  // duplicate
  if (r->bytes + plain->size() > kMaxReassemblyBytes) {
    r.reset();
    return drop("reassembled message too large");
  }
  if (number == 1) r->first = skf.first_inner;
  r->bytes += plain->size();
  r->parts[number - 1] = std::move(*plain);
  if (++r->have < r->total) return FragmentResult{FragmentResult::kStored, {}, ""};
  Bytes whole;
  whole.reserve(r->bytes);
  for (auto& p : r->parts) {
    whole.insert(whole.end(), p.begin(), p.end());
    Wipe(p);
  }
  PayloadType first = r->first;
  r.reset();
  auto chain = DecodeChain(first, whole);
  Wipe(whole);
  if (!chain.ok()) return drop(absl::StrCat("reassembled message undecodable: ", Msg(chain.status())));
  spdlog::debug("reassembled {} mid={} fragments={}", sa.log_prefix(), h.message_id, total);
  return FragmentResult{FragmentResult::kComplete, std::move(*chain), ""};
}

std::optional<TimePoint> ReassemblyDeadline(const IkeSa& sa, Duration timeout) {
  if (!sa.reassembly) return std::nullopt;
  return sa.reassembly->started + timeout;
}

void ExpireReassembly(IkeSa& sa, TimePoint now, Duration timeout) {
  if (!sa.reassembly || now < sa.reassembly->started + timeout) return;
  spdlog::info("reassembly_expired {} mid={} have={}/{}", sa.log_prefix(), sa.reassembly->mid, sa.reassembly->have,
               sa.reassembly->total);
  for (auto& p : sa.reassembly->parts) Wipe(p);
  sa.reassembly.reset();
}

}  // namespace ipfleet::ike::internal
