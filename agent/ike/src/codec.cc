// RFC 7296 section 3 codec. Reading goes through Reader, which refuses every read past its end,
// so no decoder indexes raw memory.
#include "ipfleet/ike/codec.h"

#include <absl/strings/cord.h>
#include <absl/strings/str_cat.h>

namespace ipfleet::ike {
namespace {

constexpr char kCriticalUrl[] = "ipfleet.ike/unsupported-critical";
constexpr char kVersionUrl[] = "ipfleet.ike/invalid-major-version";

absl::Status Syntax(const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("ike decode: ", what));
}

class Reader {
 public:
  explicit Reader(ByteView d) : d_(d) {}
  size_t left() const { return d_.size() - pos_; }
  bool U8(uint8_t& v) {
    if (left() < 1) return false;
    v = d_[pos_++];
    return true;
  }
  bool U16(uint16_t& v) {
    if (left() < 2) return false;
    v = static_cast<uint16_t>(d_[pos_] << 8 | d_[pos_ + 1]);
    pos_ += 2;
    return true;
  }
  bool U32(uint32_t& v) {
    if (left() < 4) return false;
    v = static_cast<uint32_t>(d_[pos_]) << 24 | static_cast<uint32_t>(d_[pos_ + 1]) << 16 |
        static_cast<uint32_t>(d_[pos_ + 2]) << 8 | d_[pos_ + 3];
    pos_ += 4;
    return true;
  }
  bool U64(uint64_t& v) {
    uint32_t hi, lo;
    if (!U32(hi) || !U32(lo)) return false;
    v = static_cast<uint64_t>(hi) << 32 | lo;
    return true;
  }
  bool Take(size_t n, ByteView& out) {
    if (left() < n) return false;
    out = d_.subspan(pos_, n);
    pos_ += n;
    return true;
  }
  bool Skip(size_t n) {
    ByteView unused;
    return Take(n, unused);
  }
  Bytes Rest() {
    Bytes b(d_.begin() + pos_, d_.end());
    pos_ = d_.size();
    return b;
  }

 private:
  ByteView d_;
  size_t pos_ = 0;
};

void Put8(Bytes& o, uint8_t v) { o.push_back(v); }
void Put16(Bytes& o, uint16_t v) {
  o.push_back(v >> 8);
  o.push_back(v & 0xff);
}
void Put32(Bytes& o, uint32_t v) {
  Put16(o, v >> 16);
  Put16(o, v & 0xffff);
}
void Put64(Bytes& o, uint64_t v) {
  Put32(o, v >> 32);
  Put32(o, v & 0xffffffff);
}
void PutBytes(Bytes& o, ByteView b) { o.insert(o.end(), b.begin(), b.end()); }
void Patch16(Bytes& o, size_t at, size_t v) {
  o[at] = (v >> 8) & 0xff;
  o[at + 1] = v & 0xff;
}

absl::StatusOr<Transform> DecodeTransform(ByteView body) {
  Reader r(body);
  Transform t;
  uint8_t type, reserved;
  uint16_t id;
  if (!r.U8(type) || !r.U8(reserved) || !r.U16(id)) return Syntax("transform too short");
  t.type = static_cast<TransformType>(type);
  t.id = id;
  while (r.left() > 0) {
    uint16_t af_type, v;
    if (!r.U16(af_type) || !r.U16(v)) return Syntax("transform attribute truncated");
    Attribute a;
    a.type = af_type & 0x7fff;
    a.tv = af_type & 0x8000;
    if (a.tv) {
      a.value = v;
    } else {
      ByteView val;
      if (!r.Take(v, val)) return Syntax("transform TLV attribute length exceeds transform");
      a.tlv_value.assign(val.begin(), val.end());
    }
    t.attributes.push_back(std::move(a));
  }
  return t;
}

absl::StatusOr<Proposal> DecodeProposal(ByteView body, bool& more) {
  (void)more;
  Reader r(body);
  Proposal p;
  uint8_t proto, spi_size, num_transforms;
  if (!r.U8(p.number) || !r.U8(proto) || !r.U8(spi_size) || !r.U8(num_transforms))
    return Syntax("proposal too short");
  p.protocol = static_cast<ProtocolId>(proto);
  ByteView spi;
  if (!r.Take(spi_size, spi)) return Syntax("proposal SPI exceeds proposal");
  p.spi.assign(spi.begin(), spi.end());
  for (int i = 0; i < num_transforms; ++i) {
    uint8_t last, reserved;
    uint16_t len;
    if (!r.U8(last) || !r.U8(reserved) || !r.U16(len)) return Syntax("transform header truncated");
    if (last != 0 && last != 3) return Syntax("transform substructure type not 0/3");
    if (len < 8) return Syntax("transform length < 8");
    ByteView tb;
    if (!r.Take(len - 4, tb)) return Syntax("transform length exceeds proposal");
    IPFLEET_ASSIGN_OR_RETURN(Transform t, DecodeTransform(tb));
    p.transforms.push_back(std::move(t));
    bool is_last = (i == num_transforms - 1);
    if ((last == 0) != is_last) return Syntax("transform 'last' flag disagrees with transform count");
  }
  if (r.left() != 0) return Syntax("proposal has trailing bytes after its transforms");
  return p;
}

absl::StatusOr<SaPayload> DecodeSa(ByteView body) {
  Reader r(body);
  SaPayload sa;
  bool done = false;
  while (!done) {
    uint8_t last, reserved;
    uint16_t len;
    if (!r.U8(last) || !r.U8(reserved) || !r.U16(len)) return Syntax("proposal header truncated");
    if (last != 0 && last != 2) return Syntax("proposal substructure type not 0/2");
    if (len < 8) return Syntax("proposal length < 8");
    ByteView pb;
    if (!r.Take(len - 4, pb)) return Syntax("proposal length exceeds SA payload");
    bool more = last == 2;
    IPFLEET_ASSIGN_OR_RETURN(Proposal p, DecodeProposal(pb, more));
    uint8_t expected = sa.proposals.empty() ? 1 : sa.proposals.back().number;
    if (p.number != expected && p.number != expected + 1) return Syntax("proposal numbers not sequential");
    if (sa.proposals.empty() && p.number != 1) return Syntax("first proposal number is not 1");
    sa.proposals.push_back(std::move(p));
    done = !more;
  }
  if (r.left() != 0) return Syntax("SA payload has bytes after the last proposal");
  return sa;
}

absl::StatusOr<TsPayload> DecodeTs(ByteView body) {
  Reader r(body);
  TsPayload ts;
  uint8_t count;
  if (!r.U8(count) || !r.Skip(3)) return Syntax("TS payload too short");
  if (count == 0) return Syntax("TS payload with zero selectors");
  for (int i = 0; i < count; ++i) {
    TrafficSelector s;
    uint8_t type;
    uint16_t len;
    if (!r.U8(type) || !r.U8(s.ip_protocol) || !r.U16(len)) return Syntax("traffic selector truncated");
    size_t alen;
    if (type == static_cast<uint8_t>(TsType::kIpv4AddrRange)) {
      alen = 4;
    } else if (type == static_cast<uint8_t>(TsType::kIpv6AddrRange)) {
      alen = 16;
    } else {
      return Syntax(absl::StrCat("unknown traffic selector type ", type));
    }
    if (len != 8 + 2 * alen) return Syntax("traffic selector length does not match its type");
    s.type = static_cast<TsType>(type);
    ByteView a, b;
    if (!r.U16(s.start_port) || !r.U16(s.end_port) || !r.Take(alen, a) || !r.Take(alen, b))
      return Syntax("traffic selector exceeds TS payload");
    s.start_addr.assign(a.begin(), a.end());
    s.end_addr.assign(b.begin(), b.end());
    ts.selectors.push_back(std::move(s));
  }
  if (r.left() != 0) return Syntax("TS payload has trailing bytes");
  return ts;
}

absl::StatusOr<PayloadBody> DecodeBody(PayloadType type, bool critical, uint8_t raw_type, ByteView body) {
  Reader r(body);
  switch (type) {
    case PayloadType::kSa:
      return DecodeSa(body);
    case PayloadType::kKe: {
      KePayload ke;
      if (!r.U16(ke.group) || !r.Skip(2)) return Syntax("KE payload too short");
      ke.data = r.Rest();
      if (ke.data.empty()) return Syntax("KE payload without key exchange data");
      return ke;
    }
    case PayloadType::kIdi:
    case PayloadType::kIdr: {
      IdPayload id;
      uint8_t t;
      if (!r.U8(t) || !r.Skip(3)) return Syntax("ID payload too short");
      id.type = static_cast<IdType>(t);
      id.data = r.Rest();
      if (id.data.empty()) return Syntax("ID payload without identification data");
      return id;
    }
    case PayloadType::kCert:
    case PayloadType::kCertReq: {
      uint8_t enc;
      if (!r.U8(enc)) return Syntax("CERT/CERTREQ payload too short");
      if (type == PayloadType::kCert) {
        CertPayload c{static_cast<CertEncoding>(enc), r.Rest()};
        return c;
      }
      CertReqPayload c{static_cast<CertEncoding>(enc), r.Rest()};
      return c;
    }
    case PayloadType::kAuth: {
      AuthPayload a;
      uint8_t m;
      if (!r.U8(m) || !r.Skip(3)) return Syntax("AUTH payload too short");
      a.method = static_cast<AuthMethod>(m);
      a.data = r.Rest();
      if (a.data.empty()) return Syntax("AUTH payload without data");
      return a;
    }
    case PayloadType::kNonce: {
      NoncePayload n{r.Rest()};
      if (n.data.size() < 16 || n.data.size() > 256) return Syntax("nonce length outside 16..256");
      return n;
    }
    case PayloadType::kNotify: {
      NotifyPayload n;
      uint8_t proto, spi_size;
      if (!r.U8(proto) || !r.U8(spi_size) || !r.U16(n.type)) return Syntax("Notify payload too short");
      n.protocol = static_cast<ProtocolId>(proto);
      ByteView spi;
      if (!r.Take(spi_size, spi)) return Syntax("Notify SPI exceeds payload");
      n.spi.assign(spi.begin(), spi.end());
      n.data = r.Rest();
      return n;
    }
    case PayloadType::kDelete: {
      DeletePayload d;
      uint8_t proto;
      uint16_t num;
      if (!r.U8(proto) || !r.U8(d.spi_size) || !r.U16(num)) return Syntax("Delete payload too short");
      d.protocol = static_cast<ProtocolId>(proto);
      if (d.protocol == ProtocolId::kIke && (d.spi_size != 0 || num != 0))
        return Syntax("IKE Delete with SPIs");
      if ((d.protocol == ProtocolId::kEsp || d.protocol == ProtocolId::kAh) && d.spi_size != 4)
        return Syntax("ESP/AH Delete with SPI size != 4");
      for (int i = 0; i < num; ++i) {
        ByteView spi;
        if (!r.Take(d.spi_size, spi)) return Syntax("Delete SPI count exceeds payload");
        d.spis.emplace_back(spi.begin(), spi.end());
      }
      if (r.left() != 0) return Syntax("Delete payload has trailing bytes");
      return d;
    }
    case PayloadType::kVendorId:
      return VendorIdPayload{r.Rest()};
    case PayloadType::kTsi:
    case PayloadType::kTsr:
      return DecodeTs(body);
    default: {
      if (critical) {
        absl::Status s = absl::UnimplementedError(
            absl::StrCat("ike decode: unsupported critical payload type ", raw_type));
        s.SetPayload(kCriticalUrl, absl::Cord(std::string(1, static_cast<char>(raw_type))));
        return s;
      }
      return UnknownPayload{raw_type, critical, r.Rest()};
    }
  }
}

bool Known(uint8_t t) {
  return (t >= 33 && t <= 46);
}

}  // namespace

std::optional<uint16_t> Transform::key_length() const {
  for (const auto& a : attributes)
    if (a.type == kAttrKeyLength && a.tv) return a.value;
  return std::nullopt;
}

Transform MakeTransform(TransformType type, uint16_t id, uint16_t key_bits) {
  Transform t{type, id, {}};
  if (key_bits) t.attributes.push_back(Attribute{kAttrKeyLength, true, key_bits, {}});
  return t;
}

absl::StatusOr<Header> DecodeHeader(ByteView d) {
  Reader r(d);
  Header h;
  uint8_t np, ver, ex;
  if (!r.U64(h.spi_i) || !r.U64(h.spi_r) || !r.U8(np) || !r.U8(ver) || !r.U8(ex) || !r.U8(h.flags) ||
      !r.U32(h.message_id) || !r.U32(h.length))
    return Syntax("datagram shorter than the IKE header");
  h.next_payload = static_cast<PayloadType>(np);
  h.major_version = ver >> 4;
  h.minor_version = ver & 0x0f;
  h.exchange = static_cast<ExchangeType>(ex);
  if (h.major_version != 2) {
    absl::Status s = absl::InvalidArgumentError(absl::StrCat("ike decode: major version ", h.major_version));
    s.SetPayload(kVersionUrl, absl::Cord("1"));
    return s;
  }
  if (h.length != d.size()) return Syntax("header length does not match datagram size");
  if (h.spi_i == 0) return Syntax("initiator SPI is zero");
  return h;
}

absl::StatusOr<std::vector<Payload>> DecodeChain(PayloadType first, ByteView data) {
  std::vector<Payload> out;
  Reader r(data);
  uint8_t next = static_cast<uint8_t>(first);
  while (next != 0) {
    uint8_t np, flags;
    uint16_t len;
    if (!r.U8(np) || !r.U8(flags) || !r.U16(len)) return Syntax("generic payload header truncated");
    if (len < kGenericPayloadHeaderSize) return Syntax("payload length < 4");
    ByteView body;
    if (!r.Take(len - kGenericPayloadHeaderSize, body)) return Syntax("payload length exceeds message");
    Payload p;
    p.type = static_cast<PayloadType>(next);
    p.critical = flags & 0x80;
    if (next == static_cast<uint8_t>(PayloadType::kSk) || next == static_cast<uint8_t>(PayloadType::kSkf)) {
      // The SK payload must be last; its next-payload names the first inner payload.
      if (r.left() != 0) return Syntax("bytes after the Encrypted payload");
      p.body = SkPayload{static_cast<PayloadType>(np), Bytes(body.begin(), body.end())};
      out.push_back(std::move(p));
      return out;
    }
    PayloadType t = Known(next) ? static_cast<PayloadType>(next) : PayloadType::kNone;
    IPFLEET_ASSIGN_OR_RETURN(p.body, DecodeBody(t, p.critical, next, body));
    out.push_back(std::move(p));
    next = np;
    if (out.size() > 256) return Syntax("more than 256 payloads");
  }
  if (r.left() != 0) return Syntax("bytes after the last payload");
  return out;
}

absl::StatusOr<Message> DecodeMessage(ByteView d) {
  Message m;
  IPFLEET_ASSIGN_OR_RETURN(m.header, DecodeHeader(d));
  IPFLEET_ASSIGN_OR_RETURN(m.payloads, DecodeChain(m.header.next_payload, d.subspan(kHeaderSize)));
  return m;
}

std::optional<uint8_t> UnsupportedCriticalType(const absl::Status& s) {
  auto p = s.GetPayload(kCriticalUrl);
  if (!p || p->empty()) return std::nullopt;
  return static_cast<uint8_t>(std::string(*p)[0]);
}

bool IsInvalidMajorVersion(const absl::Status& s) { return s.GetPayload(kVersionUrl).has_value(); }

namespace {

void EncodeSa(const SaPayload& sa, Bytes& o) {
  for (size_t i = 0; i < sa.proposals.size(); ++i) {
    const Proposal& p = sa.proposals[i];
    size_t start = o.size();
    Put8(o, i + 1 == sa.proposals.size() ? 0 : 2);
    Put8(o, 0);
    Put16(o, 0);
    Put8(o, p.number);
    Put8(o, static_cast<uint8_t>(p.protocol));
    Put8(o, p.spi.size());
    Put8(o, p.transforms.size());
    PutBytes(o, p.spi);
    for (size_t j = 0; j < p.transforms.size(); ++j) {
      const Transform& t = p.transforms[j];
      size_t ts = o.size();
      Put8(o, j + 1 == p.transforms.size() ? 0 : 3);
      Put8(o, 0);
      Put16(o, 0);
      Put8(o, static_cast<uint8_t>(t.type));
      Put8(o, 0);
      Put16(o, t.id);
      for (const Attribute& a : t.attributes) {
        if (a.tv) {
          Put16(o, 0x8000 | a.type);
          Put16(o, a.value);
        } else {
          Put16(o, a.type & 0x7fff);
          Put16(o, a.tlv_value.size());
          PutBytes(o, a.tlv_value);
        }
      }
      Patch16(o, ts + 2, o.size() - ts);
    }
    Patch16(o, start + 2, o.size() - start);
  }
}

void EncodeTs(const TsPayload& ts, Bytes& o) {
  Put8(o, ts.selectors.size());
  Put8(o, 0);
  Put16(o, 0);
  for (const auto& s : ts.selectors) {
    Put8(o, static_cast<uint8_t>(s.type));
    Put8(o, s.ip_protocol);
    Put16(o, 8 + s.start_addr.size() + s.end_addr.size());
    Put16(o, s.start_port);
    Put16(o, s.end_port);
    PutBytes(o, s.start_addr);
    PutBytes(o, s.end_addr);
  }
}

struct BodyEncoder {
  Bytes& o;
  void operator()(const SaPayload& v) { EncodeSa(v, o); }
  void operator()(const KePayload& v) {
    Put16(o, v.group);
    Put16(o, 0);
    PutBytes(o, v.data);
  }
  void operator()(const IdPayload& v) { PutBytes(o, EncodeIdBody(v)); }
  void operator()(const CertPayload& v) {
    Put8(o, static_cast<uint8_t>(v.encoding));
    PutBytes(o, v.data);
  }
  void operator()(const CertReqPayload& v) {
    Put8(o, static_cast<uint8_t>(v.encoding));
    PutBytes(o, v.data);
  }
  void operator()(const AuthPayload& v) {
    Put8(o, static_cast<uint8_t>(v.method));
    Put8(o, 0);
    Put16(o, 0);
    PutBytes(o, v.data);
  }
  void operator()(const NoncePayload& v) { PutBytes(o, v.data); }
  void operator()(const NotifyPayload& v) {
    Put8(o, static_cast<uint8_t>(v.protocol));
    Put8(o, v.spi.size());
    Put16(o, v.type);
    PutBytes(o, v.spi);
    PutBytes(o, v.data);
  }
  void operator()(const DeletePayload& v) {
    Put8(o, static_cast<uint8_t>(v.protocol));
    Put8(o, v.spi_size);
    Put16(o, v.spis.size());
    for (const auto& s : v.spis) PutBytes(o, s);
  }
  void operator()(const VendorIdPayload& v) { PutBytes(o, v.data); }
  void operator()(const TsPayload& v) { EncodeTs(v, o); }
  void operator()(const SkPayload& v) { PutBytes(o, v.body); }
  void operator()(const UnknownPayload& v) { PutBytes(o, v.body); }
};

PayloadType NextOf(const Payload& p) {
  if (auto* sk = std::get_if<SkPayload>(&p.body)) return sk->first_inner;
  return PayloadType::kNone;
}

}  // namespace

Bytes EncodeIdBody(const IdPayload& id) {
  Bytes o;
  Put8(o, static_cast<uint8_t>(id.type));
  Put8(o, 0);
  Put16(o, 0);
  PutBytes(o, id.data);
  return o;
}

Bytes EncodeChain(const std::vector<Payload>& payloads) {
  Bytes o;
  for (size_t i = 0; i < payloads.size(); ++i) {
    const Payload& p = payloads[i];
    size_t start = o.size();
    PayloadType next = i + 1 < payloads.size() ? payloads[i + 1].type : NextOf(p);
    Put8(o, static_cast<uint8_t>(next));
    Put8(o, p.critical ? 0x80 : 0);
    Put16(o, 0);
    std::visit(BodyEncoder{o}, p.body);
    Patch16(o, start + 2, o.size() - start);
  }
  return o;
}

void AppendHeader(const Header& h, Bytes& o) {
  Put64(o, h.spi_i);
  Put64(o, h.spi_r);
  Put8(o, static_cast<uint8_t>(h.next_payload));
  Put8(o, static_cast<uint8_t>(h.major_version << 4 | h.minor_version));
  Put8(o, static_cast<uint8_t>(h.exchange));
  Put8(o, h.flags);
  Put32(o, h.message_id);
  Put32(o, h.length);
}

Bytes EncodeMessage(const Message& msg) {
  Bytes chain = EncodeChain(msg.payloads);
  Header h = msg.header;
  h.next_payload = msg.payloads.empty() ? PayloadType::kNone : msg.payloads.front().type;
  h.length = kHeaderSize + chain.size();
  Bytes o;
  o.reserve(h.length);
  AppendHeader(h, o);
  PutBytes(o, chain);
  return o;
}

Payload MakeNotify(NotifyType type, Bytes data, ProtocolId proto, Bytes spi) {
  Payload p;
  p.type = PayloadType::kNotify;
  p.body = NotifyPayload{proto, std::move(spi), static_cast<uint16_t>(type), std::move(data)};
  return p;
}

}  // namespace ipfleet::ike
