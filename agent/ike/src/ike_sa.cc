// IKE_SA state helpers: keys, message sealing/opening, and the pure selection logic
// (proposals, traffic selectors) the tasks share.
#include <absl/strings/str_cat.h>
#include <absl/strings/str_join.h>
#include <openssl/rand.h>

#include <algorithm>
#include <map>
#include <set>

#include "internal.h"

namespace ipfleet::ike::internal {

Bytes RandomBytes(size_t n) {
  Bytes b(n);
  if (RAND_bytes(b.data(), static_cast<int>(n)) != 1) std::abort();  // no safe way on without randomness
  return b;
}
uint32_t ReadBe32(const Bytes& b) {
  return b.size() == 4 ? (uint32_t{b[0]} << 24 | uint32_t{b[1]} << 16 | uint32_t{b[2]} << 8 | b[3]) : 0;
}
Bytes Be32(uint32_t v) { return Bytes{uint8_t(v >> 24), uint8_t(v >> 16), uint8_t(v >> 8), uint8_t(v)}; }

const PeerRuntime::Child* PeerRuntime::FindChild(const std::string& name) const {
  for (const auto& c : children)
    if (c.cfg.name == name) return &c;
  return nullptr;
}
const PeerRuntime::Child* PeerRuntime::FindChildByReqid(uint32_t reqid) const {
  for (const auto& c : children)
    if (c.reqid == reqid) return &c;
  return nullptr;
}

const Payload* FindPayload(const std::vector<Payload>& in, PayloadType t) {
  for (const auto& p : in)
    if (p.type == t) return &p;
  return nullptr;
}
const NotifyPayload* FindNotify(const std::vector<Payload>& in, NotifyType t) {
  for (const auto& p : in)
    if (auto* n = std::get_if<NotifyPayload>(&p.body); n && n->type == static_cast<uint16_t>(t)) return n;
  return nullptr;
}
const NotifyPayload* FindErrorNotify(const std::vector<Payload>& in) {
  for (const auto& p : in)
    if (auto* n = std::get_if<NotifyPayload>(&p.body); n && IsErrorNotify(n->type)) return n;
  return nullptr;
}

IkeSa::IkeSa(Services& s, uint64_t i, std::shared_ptr<const PeerRuntime> p, bool init, Endpoint l, Endpoint r)
    : svc(s), id(i), peer(std::move(p)), initiator(init), local(l), remote(r) {
  created = last_heard = svc.now();
}

std::string IkeSa::log_prefix() const {
  char spis[64];
  snprintf(spis, sizeof spis, "%016llx_i %016llx_r", static_cast<unsigned long long>(spi_i),
           static_cast<unsigned long long>(spi_r));
  return absl::StrCat("tunnel=", peer->cfg.name, " ike=", id, " spis=", spis, " peer=", remote.ToString());
}

std::string IkeSa::suite() const { return proposal ? ProposalSuiteName(*proposal) : ""; }

ChildSa* IkeSa::FindChild(uint64_t cid) {
  for (auto& c : children)
    if (c->id == cid) return c.get();
  return nullptr;
}
ChildSa* IkeSa::FindChildBySpiOut(uint32_t spi) {
  for (auto& c : children)
    if (c->spi_out == spi) return c.get();
  return nullptr;
}

absl::Status IkeSa::DeriveKeys(ByteView shared) {
  uint16_t key_bits = 0;
  auto encr_id = TransformId(*proposal, TransformType::kEncr, &key_bits);
  auto prf_id = TransformId(*proposal, TransformType::kPrf);
  auto integ_id = TransformId(*proposal, TransformType::kInteg).value_or(integ::kNone);
  if (!encr_id || !prf_id) return absl::InvalidArgumentError("IKE proposal lacks ENCR or PRF");
  IPFLEET_ASSIGN_OR_RETURN(Prf p, Prf::FromTransform(*prf_id));
  IPFLEET_ASSIGN_OR_RETURN(SkCipher c, SkCipher::Create(*encr_id, key_bits, integ_id));
  prf = p;
  cipher = c;
  IkeKeyLengths lens{c.encr_key_len(), c.integ_key_len(), p.key_len()};
  IPFLEET_ASSIGN_OR_RETURN(IkeKeys k, DeriveIkeKeys(p, lens, ni, nr, shared, spi_i, spi_r));
  keys = std::make_unique<IkeKeys>(std::move(k));
  return absl::OkStatus();
}

absl::StatusOr<Bytes> IkeSa::Seal(ExchangeType type, uint32_t mid, bool response, const std::vector<Payload>& payloads) {
  Header h;
  h.spi_i = spi_i;
  // RFC 7296 2.6: a refused IKE_SA_INIT (error notify) is answered with SPIr zero.
  h.spi_r = spi_r;
  h.exchange = type;
  h.flags = (initiator ? kFlagInitiator : 0) | (response ? kFlagResponse : 0);
  h.message_id = mid;
  if (type == ExchangeType::kIkeSaInit) {
    Message m{h, payloads};
    return EncodeMessage(m);
  }
  if (!keys || !cipher) return absl::FailedPreconditionError("no keys for an encrypted exchange");
  Bytes chain = EncodeChain(payloads);
  PayloadType first = payloads.empty() ? PayloadType::kNone : payloads.front().type;
  return cipher->Protect(h, first, chain, initiator ? keys->sk_ei : keys->sk_er, initiator ? keys->sk_ai : keys->sk_ar);
}

absl::StatusOr<std::vector<Payload>> IkeSa::Open(const Message& msg, ByteView datagram) {
  if (msg.header.exchange == ExchangeType::kIkeSaInit) return msg.payloads;
  if (!keys || !cipher) return absl::FailedPreconditionError("encrypted message before keys exist");
  if (msg.payloads.size() != 1 || msg.payloads[0].type != PayloadType::kSk)
    return absl::InvalidArgumentError(absl::StrCat(ExchangeName(msg.header.exchange), " without (only) an SK payload"));
  const auto& sk = std::get<SkPayload>(msg.payloads[0].body);
  IPFLEET_ASSIGN_OR_RETURN(Bytes plain, cipher->Unprotect(datagram, sk.body.size(), initiator ? keys->sk_er : keys->sk_ei,
                                                          initiator ? keys->sk_ar : keys->sk_ai));
  auto r = DecodeChain(sk.first_inner, plain);
  Wipe(plain);
  return r;
}

// ---- Proposals -----------------------------------------------------------------------------------

std::optional<uint16_t> TransformId(const Proposal& p, TransformType t, uint16_t* key_bits) {
  for (const auto& x : p.transforms)
    if (x.type == t) {
      if (key_bits) *key_bits = x.key_length().value_or(0);
      return x.id;
    }
  return std::nullopt;
}

namespace {
// Types that carry meaning; INTEG/DH "NONE" (id 0) are the same as absent (RFC 7296 3.3.3).
std::set<TransformType> TypesOf(const Proposal& p) {
  std::set<TransformType> s;
  for (const auto& t : p.transforms)
    if (!((t.type == TransformType::kInteg || t.type == TransformType::kDh) && t.id == 0)) s.insert(t.type);
  return s;
}
bool SameTransform(const Transform& a, const Transform& b) {
  return a.type == b.type && a.id == b.id && a.key_length() == b.key_length();
}
}  // namespace

std::optional<Proposal> SelectProposal(const std::vector<Proposal>& offered, const std::vector<Proposal>& ours) {
  for (const auto& p : offered) {
    for (const auto& q : ours) {
      if (p.protocol != q.protocol) continue;
      auto types = TypesOf(q);
      if (TypesOf(p) != types) continue;
      Proposal out{p.number, p.protocol, p.spi, {}};
      bool ok = true;
      for (TransformType t : types) {
        const Transform* pick = nullptr;
        for (const auto& a : p.transforms) {
          if (a.type != t) continue;
          for (const auto& b : q.transforms)
            if (SameTransform(a, b)) { pick = &a; break; }
          if (pick) break;
        }
        if (!pick) { ok = false; break; }
        out.transforms.push_back(MakeTransform(pick->type, pick->id, pick->key_length().value_or(0)));
      }
      if (ok) return out;
    }
  }
  return std::nullopt;
}

std::string DescribeMismatch(const std::vector<Proposal>& offered, const std::vector<Proposal>& ours) {
  std::map<TransformType, std::set<std::string>> theirs_by_type, ours_by_type;
  std::vector<std::string> no_match, details;
  for (const auto& p : offered)
    for (const auto& t : p.transforms)
      if (TypesOf(Proposal{1, p.protocol, {}, {t}}).size()) theirs_by_type[t.type].insert(TransformName(t));
  for (const auto& q : ours)
    for (const auto& t : q.transforms)
      if (TypesOf(Proposal{1, q.protocol, {}, {t}}).size()) ours_by_type[t.type].insert(TransformName(t));
  std::set<TransformType> all;
  for (auto& [t, _] : theirs_by_type) all.insert(t);
  for (auto& [t, _] : ours_by_type) all.insert(t);
  for (TransformType t : all) {
    const auto& a = theirs_by_type[t];
    const auto& b = ours_by_type[t];
    bool common = std::any_of(a.begin(), a.end(), [&](const std::string& x) { return b.count(x); });
    if (!common) {
      no_match.push_back(TransformTypeName(t));
      details.push_back(absl::StrCat(TransformTypeName(t), "_offered=", a.empty() ? "none" : absl::StrJoin(a, ","),
                                     " ", TransformTypeName(t), "_ours=", b.empty() ? "none" : absl::StrJoin(b, ",")));
    }
  }
  if (no_match.empty()) return "no_match=combination (every type matches somewhere, but no single proposal pair does)";
  return absl::StrCat("no_match=", absl::StrJoin(no_match, ","), " ", absl::StrJoin(details, " "));
}

bool ProposalAcceptable(const Proposal& chosen, const std::vector<Proposal>& ours) {
  for (const auto& q : ours) {
    if (q.protocol != chosen.protocol || TypesOf(q) != TypesOf(chosen)) continue;
    bool ok = true;
    for (const auto& t : chosen.transforms) {
      if ((t.type == TransformType::kInteg || t.type == TransformType::kDh) && t.id == 0) continue;
      bool found = std::any_of(q.transforms.begin(), q.transforms.end(), [&](const Transform& b) { return SameTransform(t, b); });
      int count = std::count_if(chosen.transforms.begin(), chosen.transforms.end(), [&](const Transform& x) { return x.type == t.type; });
      if (!found || count != 1) { ok = false; break; }
    }
    if (ok) return true;
  }
  return false;
}

// ---- Traffic selectors ---------------------------------------------------------------------------

TrafficSelector ToTs(const TsConfig& c) {
  TrafficSelector ts;
  const auto& a = c.prefix.address;
  size_t n = a.is_v4() ? 4 : 16;
  ts.type = a.is_v4() ? TsType::kIpv4AddrRange : TsType::kIpv6AddrRange;
  ts.ip_protocol = c.proto;
  ts.start_port = c.port_lo;
  ts.end_port = c.port_hi;
  ts.start_addr.assign(a.bytes.begin(), a.bytes.begin() + n);
  ts.end_addr = ts.start_addr;
  for (size_t bit = c.prefix.length; bit < n * 8; ++bit) {
    ts.start_addr[bit / 8] &= ~(0x80 >> (bit % 8));
    ts.end_addr[bit / 8] |= (0x80 >> (bit % 8));
  }
  return ts;
}

std::vector<TrafficSelector> ConfiguredTs(const std::vector<TsConfig>& cfg, const kernel::IpAddress& host) {
  std::vector<TrafficSelector> out;
  for (const auto& c : cfg) out.push_back(ToTs(c));
  if (out.empty()) {
    TsConfig h;
    h.prefix.address = host;
    h.prefix.length = host.max_prefix();
    out.push_back(ToTs(h));
  }
  return out;
}

std::vector<TrafficSelector> NarrowTs(const std::vector<TrafficSelector>& offered, const std::vector<TrafficSelector>& allowed) {
  std::vector<TrafficSelector> out;
  for (const auto& a : offered)
    for (const auto& b : allowed) {
      if (a.type != b.type) continue;
      if (a.ip_protocol && b.ip_protocol && a.ip_protocol != b.ip_protocol) continue;
      TrafficSelector r;
      r.type = a.type;
      r.ip_protocol = a.ip_protocol ? a.ip_protocol : b.ip_protocol;
      r.start_port = std::max(a.start_port, b.start_port);
      r.end_port = std::min(a.end_port, b.end_port);
      r.start_addr = std::max(a.start_addr, b.start_addr);
      r.end_addr = std::min(a.end_addr, b.end_addr);
      if (r.start_port > r.end_port || r.start_addr > r.end_addr) continue;
      if (std::find(out.begin(), out.end(), r) == out.end()) out.push_back(r);
    }
  return out;
}

bool TsSubset(const std::vector<TrafficSelector>& sub, const std::vector<TrafficSelector>& super) {
  for (const auto& s : sub) {
    bool inside = std::any_of(super.begin(), super.end(), [&](const TrafficSelector& p) {
      return p.type == s.type && (p.ip_protocol == 0 || p.ip_protocol == s.ip_protocol) && s.start_port >= p.start_port &&
             s.end_port <= p.end_port && s.start_addr >= p.start_addr && s.end_addr <= p.end_addr;
    });
    if (!inside) return false;
  }
  return !sub.empty();
}

std::string TsToString(const TrafficSelector& ts) {
  kernel::IpAddress a, b;
  a.family = b.family = ts.type == TsType::kIpv4AddrRange ? kernel::IpAddress::Family::kV4 : kernel::IpAddress::Family::kV6;
  std::copy(ts.start_addr.begin(), ts.start_addr.end(), a.bytes.begin());
  std::copy(ts.end_addr.begin(), ts.end_addr.end(), b.bytes.begin());
  // Print as a prefix when the range is one.
  int bits = static_cast<int>(ts.start_addr.size() * 8), len = 0;
  while (len < bits && ((ts.start_addr[len / 8] ^ ts.end_addr[len / 8]) & (0x80 >> (len % 8))) == 0) ++len;
  bool cidr = true;
  for (int i = len; i < bits; ++i) {
    bool s = ts.start_addr[i / 8] & (0x80 >> (i % 8)), e = ts.end_addr[i / 8] & (0x80 >> (i % 8));
    if (s || !e) { cidr = false; break; }
  }
  std::string out = cidr ? absl::StrCat(a.ToString(), "/", len) : absl::StrCat(a.ToString(), "..", b.ToString());
  if (ts.ip_protocol || ts.start_port != 0 || ts.end_port != 0xffff) {
    absl::StrAppend(&out, "[", ts.ip_protocol);
    if (ts.start_port == ts.end_port) absl::StrAppend(&out, "/", ts.start_port);
    else if (ts.start_port != 0 || ts.end_port != 0xffff) absl::StrAppend(&out, "/", ts.start_port, "-", ts.end_port);
    out += "]";
  }
  return out;
}

}  // namespace ipfleet::ike::internal
