#include "nl_codec.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/udp.h>
#include <linux/xfrm.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include <absl/strings/str_cat.h>
#include <absl/strings/str_format.h>

#include "internal.h"

namespace ipfleet::kernel::nl {
namespace {

constexpr uint64_t kInf = XFRM_INF;

// Netlink only guarantees 4-byte alignment, but several XFRM structs hold u64 fields: copy them
// in and out instead of pointing into the message.
template <typename T>
T Load(const void* p) {
  T t;
  std::memcpy(&t, p, sizeof t);
  return t;
}

// ---- model -> kernel structs ------------------------------------------------------------------
uint16_t Af(IpAddress::Family f) {
  switch (f) {
    case IpAddress::Family::kV4: return AF_INET;
    case IpAddress::Family::kV6: return AF_INET6;
    case IpAddress::Family::kUnspec: break;
  }
  return AF_UNSPEC;
}

void PutAddr(const IpAddress& a, xfrm_address_t* out) {
  std::memset(out, 0, sizeof *out);
  std::memcpy(out, a.bytes.data(), a.is_v4() ? 4 : (a.is_v6() ? 16 : 0));
}

uint64_t Limit(uint64_t v) { return v == 0 ? kInf : v; }

void PutLifetime(const Lifetime& l, xfrm_lifetime_cfg* c) {
  c->soft_byte_limit = Limit(l.soft_bytes);
  c->hard_byte_limit = Limit(l.hard_bytes);
  c->soft_packet_limit = Limit(l.soft_packets);
  c->hard_packet_limit = Limit(l.hard_packets);
  c->soft_add_expires_seconds = l.soft_add_seconds;
  c->hard_add_expires_seconds = l.hard_add_seconds;
  c->soft_use_expires_seconds = l.soft_use_seconds;
  c->hard_use_expires_seconds = l.hard_use_seconds;
}

void PutSelector(const Selector& s, xfrm_selector* out) {
  std::memset(out, 0, sizeof *out);
  PutAddr(s.dst.address, &out->daddr);
  PutAddr(s.src.address, &out->saddr);
  out->family = Af(s.src.address.family);
  out->prefixlen_d = s.dst.length;
  out->prefixlen_s = s.src.length;
  out->proto = s.proto;
  if (s.dst_port != 0) {
    out->dport = htons(s.dst_port);
    out->dport_mask = 0xffff;
  }
  if (s.src_port != 0) {
    out->sport = htons(s.src_port);
    out->sport_mask = 0xffff;
  }
}

// ---- kernel structs -> model ------------------------------------------------------------------
IpAddress::Family FamilyOf(uint16_t af) {
  if (af == AF_INET) return IpAddress::Family::kV4;
  if (af == AF_INET6) return IpAddress::Family::kV6;
  return IpAddress::Family::kUnspec;
}

IpAddress GetAddr(const xfrm_address_t& a, uint16_t af) {
  IpAddress out;
  out.family = FamilyOf(af);
  std::memcpy(out.bytes.data(), &a, out.is_v4() ? 4 : (out.is_v6() ? 16 : 0));
  return out;
}

uint64_t Unlimit(uint64_t v) { return v == kInf ? 0 : v; }

Lifetime GetLifetime(const xfrm_lifetime_cfg& c) {
  Lifetime l;
  l.soft_bytes = Unlimit(c.soft_byte_limit);
  l.hard_bytes = Unlimit(c.hard_byte_limit);
  l.soft_packets = Unlimit(c.soft_packet_limit);
  l.hard_packets = Unlimit(c.hard_packet_limit);
  l.soft_add_seconds = c.soft_add_expires_seconds;
  l.hard_add_seconds = c.hard_add_expires_seconds;
  l.soft_use_seconds = c.soft_use_expires_seconds;
  l.hard_use_seconds = c.hard_use_expires_seconds;
  return l;
}

Selector GetSelector(const xfrm_selector& s) {
  Selector out;
  out.src.address = GetAddr(s.saddr, s.family);
  out.dst.address = GetAddr(s.daddr, s.family);
  out.src.length = s.prefixlen_s;
  out.dst.length = s.prefixlen_d;
  out.proto = s.proto;
  out.src_port = s.sport_mask != 0 ? ntohs(s.sport) : 0;
  out.dst_port = s.dport_mask != 0 ? ntohs(s.dport) : 0;
  return out;
}

bool SelectorIsAny(const xfrm_selector& s) {
  static const xfrm_address_t zero{};
  return s.prefixlen_d == 0 && s.prefixlen_s == 0 && s.proto == 0 && s.dport_mask == 0 &&
         s.sport_mask == 0 && std::memcmp(&s.daddr, &zero, sizeof zero) == 0 &&
         std::memcmp(&s.saddr, &zero, sizeof zero) == 0;
}

// ---- building ----------------------------------------------------------------------------------
absl::Status NoRoom() { return absl::ResourceExhaustedError("message does not fit"); }

// Starts a message at buf with a fixed header of `extra` bytes; null when it does not fit.
nlmsghdr* Start(void* buf, size_t cap, uint16_t type, uint16_t flags, uint32_t seq, size_t extra) {
  if (cap < MNL_NLMSG_HDRLEN + MNL_ALIGN(extra)) return nullptr;
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = flags;
  nlh->nlmsg_seq = seq;
  mnl_nlmsg_put_extra_header(nlh, extra);
  return nlh;
}

// Wipes key copies when they go out of scope.
struct Scratch {
  std::vector<uint8_t> bytes;
  explicit Scratch(size_t n) : bytes(n, 0) {}
  ~Scratch() { explicit_bzero(bytes.data(), bytes.size()); }
};

bool PutMark(nlmsghdr* nlh, size_t cap, const Mark& m) {
  if (m.value == 0 && m.mask == 0) return true;
  xfrm_mark xm{m.value, m.mask};
  return mnl_attr_put_check(nlh, cap, XFRMA_MARK, sizeof xm, &xm);
}

absl::StatusOr<size_t> BuildSa(const SaParams& sa, uint16_t type, uint32_t seq, void* buf,
                               size_t cap) {
  const char* op = MessageName(type);
  if (auto s = internal::ValidateSa(sa, op); !s.ok()) return s;
  nlmsghdr* nlh = Start(buf, cap, type, NLM_F_REQUEST | NLM_F_ACK, seq, sizeof(xfrm_usersa_info));
  if (nlh == nullptr) return NoRoom();
  xfrm_usersa_info header{};
  xfrm_usersa_info* info = &header;
  info->family = Af(sa.src.family);
  if (sa.selector) {
    PutSelector(*sa.selector, &info->sel);
  } else {
    info->sel.family = info->family;
  }
  PutAddr(sa.dst, &info->id.daddr);
  info->id.spi = htonl(sa.spi);
  info->id.proto = static_cast<uint8_t>(sa.proto);
  PutAddr(sa.src, &info->saddr);
  PutLifetime(sa.lifetime, &info->lft);
  info->reqid = sa.reqid;
  info->mode = sa.mode == Mode::kTunnel ? XFRM_MODE_TUNNEL : XFRM_MODE_TRANSPORT;
  if (sa.esn) info->flags |= XFRM_STATE_ESN;
  if (!(sa.esn || sa.replay_window > 32)) info->replay_window = static_cast<uint8_t>(sa.replay_window);
  std::memcpy(mnl_nlmsg_get_payload(nlh), &header, sizeof header);

  bool ok = true;
  // Windows above 32 packets and ESN need the bitmap form; the kernel then wants
  // replay_window 0 in the fixed header.
  if (sa.esn || sa.replay_window > 32) {
    uint32_t words = (sa.replay_window + 31) / 32;
    size_t len = sizeof(xfrm_replay_state_esn) + words * sizeof(uint32_t);
    Scratch rs(len);
    auto* r = reinterpret_cast<xfrm_replay_state_esn*>(rs.bytes.data());
    r->bmp_len = words;
    r->replay_window = sa.replay_window;
    ok = ok && mnl_attr_put_check(nlh, cap, XFRMA_REPLAY_ESN_VAL, len, r);
  }
  auto name_ok = [](const std::string& n) { return !n.empty() && n.size() < 64; };
  if (sa.aead) {
    if (!name_ok(sa.aead->name)) return absl::InvalidArgumentError(absl::StrCat(op, " ", sa.id().ToString(), ": bad aead name"));
    Scratch a(sizeof(xfrm_algo_aead) + sa.aead->key.size());
    auto* x = reinterpret_cast<xfrm_algo_aead*>(a.bytes.data());
    std::memcpy(x->alg_name, sa.aead->name.data(), sa.aead->name.size());
    x->alg_key_len = static_cast<unsigned>(sa.aead->key.size() * 8);
    x->alg_icv_len = sa.aead->icv_bits;
    std::memcpy(x->alg_key, sa.aead->key.data(), sa.aead->key.size());
    ok = ok && mnl_attr_put_check(nlh, cap, XFRMA_ALG_AEAD, a.bytes.size(), x);
  }
  if (sa.crypt) {
    if (!name_ok(sa.crypt->name)) return absl::InvalidArgumentError(absl::StrCat(op, " ", sa.id().ToString(), ": bad crypt name"));
    Scratch a(sizeof(xfrm_algo) + sa.crypt->key.size());
    auto* x = reinterpret_cast<xfrm_algo*>(a.bytes.data());
    std::memcpy(x->alg_name, sa.crypt->name.data(), sa.crypt->name.size());
    x->alg_key_len = static_cast<unsigned>(sa.crypt->key.size() * 8);
    std::memcpy(x->alg_key, sa.crypt->key.data(), sa.crypt->key.size());
    ok = ok && mnl_attr_put_check(nlh, cap, XFRMA_ALG_CRYPT, a.bytes.size(), x);
  }
  if (sa.auth) {
    if (!name_ok(sa.auth->name)) return absl::InvalidArgumentError(absl::StrCat(op, " ", sa.id().ToString(), ": bad auth name"));
    Scratch a(sizeof(xfrm_algo_auth) + sa.auth->key.size());
    auto* x = reinterpret_cast<xfrm_algo_auth*>(a.bytes.data());
    std::memcpy(x->alg_name, sa.auth->name.data(), sa.auth->name.size());
    x->alg_key_len = static_cast<unsigned>(sa.auth->key.size() * 8);
    x->alg_trunc_len = sa.auth->trunc_bits != 0 ? sa.auth->trunc_bits
                                                : internal::DefaultTruncBits(sa.auth->name);
    std::memcpy(x->alg_key, sa.auth->key.data(), sa.auth->key.size());
    ok = ok && mnl_attr_put_check(nlh, cap, XFRMA_ALG_AUTH_TRUNC, a.bytes.size(), x);
  }
  if (sa.encap) {
    xfrm_encap_tmpl e{};
    e.encap_type = UDP_ENCAP_ESPINUDP;
    e.encap_sport = htons(sa.encap->src_port);
    e.encap_dport = htons(sa.encap->dst_port);
    ok = ok && mnl_attr_put_check(nlh, cap, XFRMA_ENCAP, sizeof e, &e);
  }
  ok = ok && PutMark(nlh, cap, sa.mark);
  if (!ok) return NoRoom();
  return nlh->nlmsg_len;
}

absl::StatusOr<size_t> BuildDelSa(const SaId& id, uint32_t seq, void* buf, size_t cap,
                                  uint16_t type, uint16_t flags) {
  if (id.dst.family == IpAddress::Family::kUnspec) {
    return absl::InvalidArgumentError(absl::StrCat(MessageName(type), " ", id.ToString(),
                                                   ": no destination address"));
  }
  nlmsghdr* nlh = Start(buf, cap, type, flags, seq, sizeof(xfrm_usersa_id));
  if (nlh == nullptr) return NoRoom();
  auto* x = static_cast<xfrm_usersa_id*>(mnl_nlmsg_get_payload(nlh));
  PutAddr(id.dst, &x->daddr);
  x->spi = htonl(id.spi);
  x->family = Af(id.dst.family);
  x->proto = static_cast<uint8_t>(id.proto);
  if (!PutMark(nlh, cap, id.mark)) return NoRoom();
  return nlh->nlmsg_len;
}

absl::StatusOr<size_t> BuildPolicy(const PolicyParams& p, uint16_t type, uint32_t seq,
                                   void* buf, size_t cap) {
  const char* op = MessageName(type);
  if (auto s = internal::ValidatePolicy(p, op); !s.ok()) return s;
  nlmsghdr* nlh = Start(buf, cap, type, NLM_F_REQUEST | NLM_F_ACK, seq,
                        sizeof(xfrm_userpolicy_info));
  if (nlh == nullptr) return NoRoom();
  xfrm_userpolicy_info header{};
  xfrm_userpolicy_info* info = &header;
  PutSelector(p.selector, &info->sel);
  PutLifetime(p.lifetime, &info->lft);
  info->priority = p.priority;
  info->index = p.index;
  info->dir = static_cast<uint8_t>(p.dir);
  info->action = p.action == PolicyAction::kBlock ? XFRM_POLICY_BLOCK : XFRM_POLICY_ALLOW;
  info->share = XFRM_SHARE_ANY;
  std::memcpy(mnl_nlmsg_get_payload(nlh), &header, sizeof header);
  bool ok = true;
  if (!p.templates.empty()) {
    std::vector<xfrm_user_tmpl> t(p.templates.size());
    for (size_t i = 0; i < t.size(); ++i) {
      const auto& in = p.templates[i];
      std::memset(&t[i], 0, sizeof t[i]);
      bool endpoints = in.dst.family != IpAddress::Family::kUnspec;
      t[i].family = endpoints ? Af(in.dst.family) : info->sel.family;
      if (endpoints) {
        PutAddr(in.dst, &t[i].id.daddr);
        PutAddr(in.src, &t[i].saddr);
      }
      t[i].id.spi = htonl(in.spi);
      t[i].id.proto = static_cast<uint8_t>(in.proto);
      t[i].reqid = in.reqid;
      t[i].mode = in.mode == Mode::kTunnel ? XFRM_MODE_TUNNEL : XFRM_MODE_TRANSPORT;
      t[i].share = XFRM_SHARE_ANY;
      t[i].optional = in.optional ? 1 : 0;
      t[i].aalgos = t[i].ealgos = t[i].calgos = ~0u;  // any algorithm
    }
    ok = mnl_attr_put_check(nlh, cap, XFRMA_TMPL, t.size() * sizeof t[0], t.data());
  }
  ok = ok && PutMark(nlh, cap, p.mark);
  if (!ok) return NoRoom();
  return nlh->nlmsg_len;
}

absl::StatusOr<size_t> BuildDelPolicy(const PolicyId& id, uint32_t seq, void* buf, size_t cap) {
  if (id.selector.src.address.family == IpAddress::Family::kUnspec) {
    return absl::InvalidArgumentError(
        absl::StrCat("XFRM_MSG_DELPOLICY ", id.ToString(), ": selector without family"));
  }
  nlmsghdr* nlh = Start(buf, cap, XFRM_MSG_DELPOLICY, NLM_F_REQUEST | NLM_F_ACK, seq,
                        sizeof(xfrm_userpolicy_id));
  if (nlh == nullptr) return NoRoom();
  auto* x = static_cast<xfrm_userpolicy_id*>(mnl_nlmsg_get_payload(nlh));
  PutSelector(id.selector, &x->sel);
  x->dir = static_cast<uint8_t>(id.dir);
  if (!PutMark(nlh, cap, id.mark)) return NoRoom();
  return nlh->nlmsg_len;
}

// ---- parsing: one validating callback per attribute ---------------------------------------------
struct Attrs {
  const nlattr* tb[XFRMA_MAX + 1] = {};
};

// Minimum payload of each attribute this layer reads; variable ones are checked further below.
size_t MinLen(uint16_t type) {
  switch (type) {
    case XFRMA_ALG_AUTH:
    case XFRMA_ALG_CRYPT:
    case XFRMA_ALG_COMP: return sizeof(xfrm_algo);
    case XFRMA_ALG_AUTH_TRUNC: return sizeof(xfrm_algo_auth);
    case XFRMA_ALG_AEAD: return sizeof(xfrm_algo_aead);
    case XFRMA_ENCAP: return sizeof(xfrm_encap_tmpl);
    case XFRMA_TMPL: return sizeof(xfrm_user_tmpl);
    case XFRMA_MARK: return sizeof(xfrm_mark);
    case XFRMA_REPLAY_ESN_VAL: return sizeof(xfrm_replay_state_esn);
    case XFRMA_POLICY_TYPE: return sizeof(xfrm_userpolicy_type);
    case XFRMA_LASTUSED: return sizeof(uint64_t);
    default: return 0;
  }
}

int AttrCb(const nlattr* attr, void* data) {
  auto* a = static_cast<Attrs*>(data);
  uint16_t type = mnl_attr_get_type(attr);
  if (mnl_attr_type_valid(attr, XFRMA_MAX) < 0) return MNL_CB_OK;  // newer kernel: skip
  size_t len = mnl_attr_get_payload_len(attr);
  if (len < MinLen(type)) {
    errno = EBADMSG;
    return MNL_CB_ERROR;
  }
  const void* p = mnl_attr_get_payload(attr);
  switch (type) {
    case XFRMA_ALG_CRYPT:
    case XFRMA_ALG_AUTH:
      if (len < sizeof(xfrm_algo) + (static_cast<const xfrm_algo*>(p)->alg_key_len + 7) / 8) {
        errno = EBADMSG;
        return MNL_CB_ERROR;
      }
      break;
    case XFRMA_ALG_AUTH_TRUNC:
      if (len < sizeof(xfrm_algo_auth) + (static_cast<const xfrm_algo_auth*>(p)->alg_key_len + 7) / 8) {
        errno = EBADMSG;
        return MNL_CB_ERROR;
      }
      break;
    case XFRMA_ALG_AEAD:
      if (len < sizeof(xfrm_algo_aead) + (static_cast<const xfrm_algo_aead*>(p)->alg_key_len + 7) / 8) {
        errno = EBADMSG;
        return MNL_CB_ERROR;
      }
      break;
    case XFRMA_TMPL:
      if (len % sizeof(xfrm_user_tmpl) != 0) {
        errno = EBADMSG;
        return MNL_CB_ERROR;
      }
      break;
    default:
      break;
  }
  a->tb[type] = attr;
  return MNL_CB_OK;
}

absl::Status ParseAttrs(const nlmsghdr* nlh, size_t fixed, Attrs* out, const char* what) {
  if (nlh->nlmsg_len < MNL_NLMSG_HDRLEN + fixed) {
    return absl::DataLossError(absl::StrCat(what, ": message shorter than its header"));
  }
  if (mnl_attr_parse(nlh, fixed, AttrCb, out) < 0) {
    return absl::DataLossError(absl::StrCat(what, ": malformed attribute: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

std::string AlgName(const char* name) { return std::string(name, strnlen(name, 64)); }

template <typename T>
std::vector<uint8_t> AlgKey(const T* x) {
  const auto* k = reinterpret_cast<const uint8_t*>(x->alg_key);
  return std::vector<uint8_t>(k, k + (x->alg_key_len + 7) / 8);
}

Mark GetMark(const Attrs& a) {
  if (a.tb[XFRMA_MARK] == nullptr) return {};
  const auto* m = static_cast<const xfrm_mark*>(mnl_attr_get_payload(a.tb[XFRMA_MARK]));
  return Mark{m->v, m->m};
}

SaState SaFromInfo(const xfrm_usersa_info& info, const Attrs& a) {
  SaState st;
  SaParams& sa = st.params;
  sa.src = GetAddr(info.saddr, info.family);
  sa.dst = GetAddr(info.id.daddr, info.family);
  sa.spi = ntohl(info.id.spi);
  sa.proto = info.id.proto == IPPROTO_AH ? IpsecProto::kAh : IpsecProto::kEsp;
  sa.mode = info.mode == XFRM_MODE_TUNNEL ? Mode::kTunnel : Mode::kTransport;
  sa.reqid = info.reqid;
  sa.esn = (info.flags & XFRM_STATE_ESN) != 0;
  sa.replay_window = info.replay_window;
  if (a.tb[XFRMA_REPLAY_ESN_VAL] != nullptr) {
    const auto* r = static_cast<const xfrm_replay_state_esn*>(
        mnl_attr_get_payload(a.tb[XFRMA_REPLAY_ESN_VAL]));
    sa.replay_window = r->replay_window;
  }
  sa.lifetime = GetLifetime(info.lft);
  if (!SelectorIsAny(info.sel)) sa.selector = GetSelector(info.sel);
  if (const nlattr* at = a.tb[XFRMA_ALG_AEAD]) {
    const auto* x = static_cast<const xfrm_algo_aead*>(mnl_attr_get_payload(at));
    sa.aead = AeadAlgo{AlgName(x->alg_name), AlgKey(x), x->alg_icv_len};
  }
  if (const nlattr* at = a.tb[XFRMA_ALG_CRYPT]) {
    const auto* x = static_cast<const xfrm_algo*>(mnl_attr_get_payload(at));
    sa.crypt = CryptAlgo{AlgName(x->alg_name), AlgKey(x)};
  }
  if (const nlattr* at = a.tb[XFRMA_ALG_AUTH_TRUNC]) {
    const auto* x = static_cast<const xfrm_algo_auth*>(mnl_attr_get_payload(at));
    sa.auth = AuthAlgo{AlgName(x->alg_name), AlgKey(x), x->alg_trunc_len};
  } else if (const nlattr* at2 = a.tb[XFRMA_ALG_AUTH]) {
    const auto* x = static_cast<const xfrm_algo*>(mnl_attr_get_payload(at2));
    sa.auth = AuthAlgo{AlgName(x->alg_name), AlgKey(x), 0};
  }
  if (const nlattr* at = a.tb[XFRMA_ENCAP]) {
    const auto* e = static_cast<const xfrm_encap_tmpl*>(mnl_attr_get_payload(at));
    sa.encap = NatTEncap{ntohs(e->encap_sport), ntohs(e->encap_dport)};
  }
  sa.mark = GetMark(a);
  st.counters.bytes = info.curlft.bytes;
  st.counters.packets = info.curlft.packets;
  st.counters.add_time = info.curlft.add_time;
  st.counters.use_time = info.curlft.use_time;
  st.counters.replay_window_failures = info.stats.replay_window;
  st.counters.replay_failures = info.stats.replay;
  st.counters.integrity_failures = info.stats.integrity_failed;
  return st;
}

std::vector<PolicyTemplate> GetTemplates(const Attrs& a) {
  std::vector<PolicyTemplate> out;
  const nlattr* at = a.tb[XFRMA_TMPL];
  if (at == nullptr) return out;
  size_t n = mnl_attr_get_payload_len(at) / sizeof(xfrm_user_tmpl);
  const auto* t = static_cast<const xfrm_user_tmpl*>(mnl_attr_get_payload(at));
  for (size_t i = 0; i < n; ++i) {
    PolicyTemplate pt;
    static const xfrm_address_t zero{};
    bool endpoints = std::memcmp(&t[i].id.daddr, &zero, sizeof zero) != 0 ||
                     std::memcmp(&t[i].saddr, &zero, sizeof zero) != 0;
    if (endpoints) {
      pt.dst = GetAddr(t[i].id.daddr, t[i].family);
      pt.src = GetAddr(t[i].saddr, t[i].family);
    }
    pt.spi = ntohl(t[i].id.spi);
    pt.proto = t[i].id.proto == IPPROTO_AH ? IpsecProto::kAh : IpsecProto::kEsp;
    pt.mode = t[i].mode == XFRM_MODE_TUNNEL ? Mode::kTunnel : Mode::kTransport;
    pt.reqid = t[i].reqid;
    pt.optional = t[i].optional != 0;
    out.push_back(pt);
  }
  return out;
}

PolicyState PolicyFromInfo(const xfrm_userpolicy_info& info, const Attrs& a) {
  PolicyState st;
  PolicyParams& p = st.params;
  p.selector = GetSelector(info.sel);
  p.dir = static_cast<Direction>(info.dir % 3);
  p.action = info.action == XFRM_POLICY_BLOCK ? PolicyAction::kBlock : PolicyAction::kAllow;
  p.priority = info.priority;
  p.index = info.index;
  p.lifetime = GetLifetime(info.lft);
  p.templates = GetTemplates(a);
  p.mark = GetMark(a);
  st.add_time = info.curlft.add_time;
  st.use_time = info.curlft.use_time;
  return st;
}

}  // namespace

const char* MessageName(uint16_t type) {
  switch (type) {
    case XFRM_MSG_NEWSA: return "XFRM_MSG_NEWSA";
    case XFRM_MSG_UPDSA: return "XFRM_MSG_UPDSA";
    case XFRM_MSG_DELSA: return "XFRM_MSG_DELSA";
    case XFRM_MSG_GETSA: return "XFRM_MSG_GETSA";
    case XFRM_MSG_NEWPOLICY: return "XFRM_MSG_NEWPOLICY";
    case XFRM_MSG_UPDPOLICY: return "XFRM_MSG_UPDPOLICY";
    case XFRM_MSG_DELPOLICY: return "XFRM_MSG_DELPOLICY";
    case XFRM_MSG_GETPOLICY: return "XFRM_MSG_GETPOLICY";
    case XFRM_MSG_ALLOCSPI: return "XFRM_MSG_ALLOCSPI";
    case XFRM_MSG_ACQUIRE: return "XFRM_MSG_ACQUIRE";
    case XFRM_MSG_EXPIRE: return "XFRM_MSG_EXPIRE";
    case XFRM_MSG_POLEXPIRE: return "XFRM_MSG_POLEXPIRE";
    default: return "XFRM_MSG_?";
  }
}

std::string DescribeOp(const BatchOp& op) {
  return std::visit(
      [](const auto& o) -> std::string {
        using T = std::decay_t<decltype(o)>;
        if constexpr (std::is_same_v<T, AddSa>) return absl::StrCat("XFRM_MSG_NEWSA ", o.sa.id().ToString());
        if constexpr (std::is_same_v<T, UpdateSa>) return absl::StrCat("XFRM_MSG_UPDSA ", o.sa.id().ToString());
        if constexpr (std::is_same_v<T, DeleteSa>) return absl::StrCat("XFRM_MSG_DELSA ", o.id.ToString());
        if constexpr (std::is_same_v<T, AddPolicy>) return absl::StrCat("XFRM_MSG_NEWPOLICY ", o.policy.id().ToString());
        if constexpr (std::is_same_v<T, UpdatePolicy>) return absl::StrCat("XFRM_MSG_UPDPOLICY ", o.policy.id().ToString());
        if constexpr (std::is_same_v<T, DeletePolicy>) return absl::StrCat("XFRM_MSG_DELPOLICY ", o.id.ToString());
      },
      op);
}

absl::StatusOr<size_t> BuildOp(const BatchOp& op, uint32_t seq, void* buf, size_t cap) {
  return std::visit(
      [&](const auto& o) -> absl::StatusOr<size_t> {
        using T = std::decay_t<decltype(o)>;
        if constexpr (std::is_same_v<T, AddSa>) return BuildSa(o.sa, XFRM_MSG_NEWSA, seq, buf, cap);
        if constexpr (std::is_same_v<T, UpdateSa>) return BuildSa(o.sa, XFRM_MSG_UPDSA, seq, buf, cap);
        if constexpr (std::is_same_v<T, DeleteSa>)
          return BuildDelSa(o.id, seq, buf, cap, XFRM_MSG_DELSA, NLM_F_REQUEST | NLM_F_ACK);
        if constexpr (std::is_same_v<T, AddPolicy>)
          return BuildPolicy(o.policy, XFRM_MSG_NEWPOLICY, seq, buf, cap);
        if constexpr (std::is_same_v<T, UpdatePolicy>)
          return BuildPolicy(o.policy, XFRM_MSG_UPDPOLICY, seq, buf, cap);
        if constexpr (std::is_same_v<T, DeletePolicy>) return BuildDelPolicy(o.id, seq, buf, cap);
      },
      op);
}

absl::StatusOr<size_t> BuildAllocSpi(const SpiRequest& r, uint32_t seq, void* buf, size_t cap) {
  if (r.src.family == IpAddress::Family::kUnspec || r.src.family != r.dst.family ||
      r.min_spi > r.max_spi) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "XFRM_MSG_ALLOCSPI dst=%s range=0x%x-0x%x: bad request", r.dst.ToString(), r.min_spi,
        r.max_spi));
  }
  nlmsghdr* nlh = Start(buf, cap, XFRM_MSG_ALLOCSPI, NLM_F_REQUEST, seq, sizeof(xfrm_userspi_info));
  if (nlh == nullptr) return NoRoom();
  xfrm_userspi_info header{};
  xfrm_userspi_info* x = &header;
  x->info.family = Af(r.src.family);
  x->info.sel.family = x->info.family;
  PutAddr(r.dst, &x->info.id.daddr);
  PutAddr(r.src, &x->info.saddr);
  x->info.id.proto = static_cast<uint8_t>(r.proto);
  x->info.reqid = r.reqid;
  x->info.mode = r.mode == Mode::kTunnel ? XFRM_MODE_TUNNEL : XFRM_MODE_TRANSPORT;
  PutLifetime(Lifetime{}, &x->info.lft);
  x->min = r.min_spi;
  x->max = r.max_spi;
  std::memcpy(mnl_nlmsg_get_payload(nlh), &header, sizeof header);
  if (!PutMark(nlh, cap, r.mark)) return NoRoom();
  return nlh->nlmsg_len;
}

absl::StatusOr<size_t> BuildGetSa(const SaId& id, uint32_t seq, void* buf, size_t cap) {
  return BuildDelSa(id, seq, buf, cap, XFRM_MSG_GETSA, NLM_F_REQUEST);
}

absl::StatusOr<size_t> BuildDump(uint16_t type, uint32_t seq, void* buf, size_t cap) {
  nlmsghdr* nlh = Start(buf, cap, type, NLM_F_REQUEST | NLM_F_DUMP, seq, 0);
  if (nlh == nullptr) return NoRoom();
  return nlh->nlmsg_len;
}

absl::StatusOr<SaState> ParseSa(const nlmsghdr* nlh) {
  if (nlh->nlmsg_type != XFRM_MSG_NEWSA && nlh->nlmsg_type != XFRM_MSG_UPDSA) {
    return absl::DataLossError(absl::StrCat("ParseSa: unexpected message type ", nlh->nlmsg_type));
  }
  Attrs a;
  if (auto s = ParseAttrs(nlh, sizeof(xfrm_usersa_info), &a, "XFRM_MSG_NEWSA"); !s.ok()) return s;
  return SaFromInfo(Load<xfrm_usersa_info>(mnl_nlmsg_get_payload(nlh)), a);
}

absl::StatusOr<PolicyState> ParsePolicy(const nlmsghdr* nlh) {
  if (nlh->nlmsg_type != XFRM_MSG_NEWPOLICY && nlh->nlmsg_type != XFRM_MSG_UPDPOLICY) {
    return absl::DataLossError(absl::StrCat("ParsePolicy: unexpected message type ", nlh->nlmsg_type));
  }
  Attrs a;
  if (auto s = ParseAttrs(nlh, sizeof(xfrm_userpolicy_info), &a, "XFRM_MSG_NEWPOLICY"); !s.ok()) {
    return s;
  }
  return PolicyFromInfo(Load<xfrm_userpolicy_info>(mnl_nlmsg_get_payload(nlh)), a);
}

absl::StatusOr<XfrmEvent> ParseEvent(const nlmsghdr* nlh) {
  Attrs a;
  switch (nlh->nlmsg_type) {
    case XFRM_MSG_ACQUIRE: {
      if (auto s = ParseAttrs(nlh, sizeof(xfrm_user_acquire), &a, "XFRM_MSG_ACQUIRE"); !s.ok()) return s;
      const auto loaded = Load<xfrm_user_acquire>(mnl_nlmsg_get_payload(nlh));
      const auto* x = &loaded;
      AcquireEvent ev;
      ev.selector = GetSelector(x->sel);
      ev.policy_index = x->policy.index;
      ev.dir = static_cast<Direction>(x->policy.dir % 3);
      ev.seq = x->seq;
      auto templates = GetTemplates(a);
      for (const auto& t : templates) {
        if (static_cast<uint8_t>(t.proto) == x->id.proto) {
          ev.templ = t;
          break;
        }
      }
      ev.templ.proto = x->id.proto == IPPROTO_AH ? IpsecProto::kAh : IpsecProto::kEsp;
      uint16_t af = x->policy.sel.family != 0 ? x->policy.sel.family : x->sel.family;
      ev.templ.dst = GetAddr(x->id.daddr, af);
      ev.templ.src = GetAddr(x->saddr, af);
      return XfrmEvent(ev);
    }
    case XFRM_MSG_EXPIRE: {
      if (auto s = ParseAttrs(nlh, sizeof(xfrm_user_expire), &a, "XFRM_MSG_EXPIRE"); !s.ok()) return s;
      const auto loaded = Load<xfrm_user_expire>(mnl_nlmsg_get_payload(nlh));
      const auto* x = &loaded;
      SaState st = SaFromInfo(x->state, a);
      ExpireEvent ev;
      ev.id = st.params.id();
      ev.src = st.params.src;
      ev.reqid = st.params.reqid;
      ev.hard = x->hard != 0;
      ev.counters = st.counters;
      return XfrmEvent(ev);
    }
    case XFRM_MSG_POLEXPIRE: {
      if (auto s = ParseAttrs(nlh, sizeof(xfrm_user_polexpire), &a, "XFRM_MSG_POLEXPIRE"); !s.ok()) return s;
      const auto loaded = Load<xfrm_user_polexpire>(mnl_nlmsg_get_payload(nlh));
      const auto* x = &loaded;
      PolicyState st = PolicyFromInfo(x->pol, a);
      PolicyExpireEvent ev;
      ev.id = st.params.id();
      ev.index = st.params.index;
      ev.hard = x->hard != 0;
      return XfrmEvent(ev);
    }
    default:
      return absl::UnimplementedError(absl::StrCat("not an XFRM event: type ", nlh->nlmsg_type));
  }
}

bool MessageOk(const nlmsghdr* nlh, int left) {
  return left >= static_cast<int>(sizeof(nlmsghdr)) && nlh->nlmsg_len <= static_cast<uint32_t>(left) &&
         mnl_nlmsg_ok(nlh, left);
}

absl::Status ErrnoStatus(int err, const std::string& message) {
  std::string text = absl::StrCat(message, ": ", std::strerror(err));
  switch (err) {
    case EEXIST: return absl::AlreadyExistsError(text);
    case ENOENT:
    case ESRCH: return absl::NotFoundError(text);
    case EINVAL:
    case ERANGE:
    case EAFNOSUPPORT: return absl::InvalidArgumentError(text);
    case EPERM:
    case EACCES: return absl::PermissionDeniedError(text);
    case ENOBUFS:
    case ENOMEM:
    case ENOSPC: return absl::ResourceExhaustedError(text);
    case EPROTONOSUPPORT:
    case ENOSYS:
    case EOPNOTSUPP: return absl::UnimplementedError(text);
    case EAGAIN:
    case EBUSY: return absl::UnavailableError(text);
    case ETIMEDOUT: return absl::DeadlineExceededError(text);
    default: return absl::InternalError(text);
  }
}

}  // namespace ipfleet::kernel::nl
