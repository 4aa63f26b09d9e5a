// DoS admission for IKE_SA_INIT (RFC 7296 2.6): half-open limits, and above a threshold a
// stateless COOKIE = <secret version> | HMAC-SHA256(secret, Ni | IPi | SPIi). The secret is
// random and rotated; the previous one stays valid for one period so a cookie handed out just
// before a rotation still works. Nothing is allocated per request before the cookie checks out.
#include <absl/strings/str_cat.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "natfrag.h"

namespace ipfleet::ike::internal {
namespace {

const NotifyPayload* CookieOf(const Message& m) {
  for (const auto& p : m.payloads)
    if (auto* n = std::get_if<NotifyPayload>(&p.body); n && n->type == static_cast<uint16_t>(NotifyType::kCookie)) return n;
  return nullptr;
}

class IkeCookie : public Task {
 public:
  using Task::Task;
  const char* name() const override { return "ike_cookie"; }
  absl::Status Build(IkeSa& sa, Exchange&, std::vector<Payload>& out) override {
    // RFC 7296 2.6: the COOKIE notify is the first payload of the retried request.
    if (initiator_ && !sa.cookie.empty()) out.insert(out.begin(), MakeNotify(NotifyType::kCookie, sa.cookie));
    return absl::OkStatus();
  }
  absl::Status Process(IkeSa&, Exchange&, const std::vector<Payload>&) override { return absl::OkStatus(); }
};

}  // namespace

std::unique_ptr<Task> NewIkeCookie(bool initiator) { return std::make_unique<IkeCookie>(initiator); }

bool TakeCookie(IkeSa& sa, const std::vector<Payload>& in) {
  const NotifyPayload* n = FindNotify(in, NotifyType::kCookie);
  // RFC 7296 3.10.1: 1 to 64 octets. A responder asking again and again is not answered forever.
  if (!n || n->data.empty() || n->data.size() > 64 || ++sa.cookie_rounds > 3) return false;
  sa.cookie = n->data;
  spdlog::info("cookie_received {} round={}", sa.log_prefix(), sa.cookie_rounds);
  return true;
}

void Admission::Rotate(const IkeConfig& cfg, TimePoint now) {
  if (current_ && now - rotated_ < cfg.cookie_secret_lifetime) return;
  previous_ = current_;
  Secret s;
  s.version = current_ ? current_->version + 1 : 1;
  if (RAND_bytes(s.key.data(), static_cast<int>(s.key.size())) != 1) std::abort();  // no safe way on
  current_ = s;
  rotated_ = now;
}

Bytes Admission::Make(const Secret& s, const Message& req, const Endpoint& remote) const {
  Bytes in;
  if (auto* no = req.Get<NoncePayload>(PayloadType::kNonce)) in = no->data;
  in.insert(in.end(), remote.addr.bytes.begin(), remote.addr.bytes.begin() + (remote.addr.is_v4() ? 4 : 16));
  for (int sh = 56; sh >= 0; sh -= 8) in.push_back(static_cast<uint8_t>(req.header.spi_i >> sh));
  auto mac = Hmac(HashAlg::kSha256, ByteView(s.key.data(), s.key.size()), in);
  Bytes out = Be32(s.version);
  if (mac.ok()) out.insert(out.end(), mac->begin(), mac->end());
  return out;
}

Admission::Verdict Admission::Check(const IkeConfig& cfg, const Message& req, const Endpoint& remote, size_t half_open,
                                    size_t half_open_from_peer, TimePoint now) {
  if (half_open >= cfg.half_open_max) return {false, {}, "global half-open limit reached"};
  bool need_cookie = half_open >= cfg.cookie_threshold;
  if (need_cookie) {
    Rotate(cfg, now);
    if (!req.Get<NoncePayload>(PayloadType::kNonce)) return {false, {}, "IKE_SA_INIT without nonce"};
    bool valid = false;
    if (const NotifyPayload* c = CookieOf(req); c && c->data.size() >= 4) {
      uint32_t version = ReadBe32(Bytes(c->data.begin(), c->data.begin() + 4));
      for (const auto& s : {current_, previous_})
        if (s && s->version == version) {
          Bytes want = Make(*s, req, remote);
          valid = want.size() == c->data.size() && CRYPTO_memcmp(want.data(), c->data.data(), want.size()) == 0;
        }
      if (!valid) ++cookies_rejected_;
    }
    if (!valid) {
      // Stateless answer: same SPIi, SPIr zero, only N(COOKIE).
      Message m;
      m.header = req.header;
      m.header.spi_r = 0;
      m.header.flags = kFlagResponse;
      m.payloads.push_back(MakeNotify(NotifyType::kCookie, Make(*current_, req, remote)));
      ++cookies_sent_;
      return {false, EncodeMessage(m), "cookie required"};
    }
  }
  // Checked after the cookie when cookies are on, so a spoofed flood cannot use up a real
  // peer's share (it cannot return cookies sent to that address).
  if (half_open_from_peer >= cfg.half_open_per_peer) return {false, {}, "per-peer half-open limit reached"};
  return {true, {}, ""};
}

}  // namespace ipfleet::ike::internal
