// CHILD_SA <-> kernel: SPI allocation, SA and policy installation through the Xfrm interface.
// The only place that knows the kernel's algorithm names.
#include <absl/strings/str_cat.h>

#include "internal.h"

namespace ipfleet::ike::internal {
namespace {

struct EspAlgs {
  std::optional<kernel::AeadAlgo> aead;
  std::optional<kernel::CryptAlgo> crypt;
  std::optional<kernel::AuthAlgo> auth;
  size_t encr_len = 0, integ_len = 0;
  bool esn = false;
};

absl::StatusOr<EspAlgs> Algs(const Proposal& p) {
  EspAlgs a;
  uint16_t bits = 0;
  auto encr_id = TransformId(p, TransformType::kEncr, &bits);
  auto integ_id = TransformId(p, TransformType::kInteg).value_or(integ::kNone);
  a.esn = TransformId(p, TransformType::kEsn).value_or(esn::kNo) == esn::kYes;
  if (!encr_id) return absl::InvalidArgumentError("ESP proposal without ENCR");
  IPFLEET_ASSIGN_OR_RETURN(a.encr_len, EncrKeyLen(*encr_id, bits));
  IPFLEET_ASSIGN_OR_RETURN(a.integ_len, IntegKeyLen(integ_id));
  if (*encr_id == encr::kAesGcm16) {
    a.aead = kernel::AeadAlgo{"rfc4106(gcm(aes))", {}, 128};
  } else {
    a.crypt = kernel::CryptAlgo{"cbc(aes)", {}};
    switch (integ_id) {
      case integ::kHmacSha256_128: a.auth = kernel::AuthAlgo{"hmac(sha256)", {}, 128}; break;
      case integ::kHmacSha384_192: a.auth = kernel::AuthAlgo{"hmac(sha384)", {}, 192}; break;
      case integ::kHmacSha512_256: a.auth = kernel::AuthAlgo{"hmac(sha512)", {}, 256}; break;
      default: return absl::InvalidArgumentError("AES-CBC ESP without HMAC-SHA2 integrity");
    }
  }
  return a;
}

// A TS range as a kernel prefix (the smallest prefix covering it; IKE ranges from configs are prefixes).
kernel::IpPrefix ToPrefix(const TrafficSelector& ts) {
  kernel::IpPrefix p;
  p.address.family = ts.type == TsType::kIpv4AddrRange ? kernel::IpAddress::Family::kV4 : kernel::IpAddress::Family::kV6;
  int bits = static_cast<int>(ts.start_addr.size() * 8), len = 0;
  while (len < bits && ((ts.start_addr[len / 8] ^ ts.end_addr[len / 8]) & (0x80 >> (len % 8))) == 0) ++len;
  std::copy(ts.start_addr.begin(), ts.start_addr.end(), p.address.bytes.begin());
  for (int i = len; i < bits; ++i) p.address.bytes[i / 8] &= ~(0x80 >> (i % 8));
  p.length = static_cast<uint8_t>(len);
  return p;
}

kernel::Selector ToSelector(const TrafficSelector& src, const TrafficSelector& dst) {
  kernel::Selector s;
  s.src = ToPrefix(src);
  s.dst = ToPrefix(dst);
  s.proto = src.ip_protocol ? src.ip_protocol : dst.ip_protocol;
  s.src_port = src.start_port == src.end_port ? src.start_port : 0;
  s.dst_port = dst.start_port == dst.end_port ? dst.start_port : 0;
  return s;
}

std::vector<kernel::PolicyParams> Policies(const Endpoint& local, const Endpoint& remote, kernel::Mode mode,
                                          uint32_t reqid, const std::vector<TrafficSelector>& l,
                                          const std::vector<TrafficSelector>& r) {
  std::vector<kernel::PolicyParams> out;
  for (const auto& lt : l)
    for (const auto& rt : r) {
      if (lt.type != rt.type) continue;
      for (kernel::Direction dir : {kernel::Direction::kOut, kernel::Direction::kIn, kernel::Direction::kFwd}) {
        if (dir == kernel::Direction::kFwd && mode == kernel::Mode::kTransport) continue;
        bool out_dir = dir == kernel::Direction::kOut;
        kernel::PolicyParams p;
        p.selector = out_dir ? ToSelector(lt, rt) : ToSelector(rt, lt);
        p.dir = dir;
        p.priority = 0x2000 - (p.selector.src.length + p.selector.dst.length);  // more specific first
        kernel::PolicyTemplate t;
        if (mode == kernel::Mode::kTunnel) {
          t.src = out_dir ? local.addr : remote.addr;
          t.dst = out_dir ? remote.addr : local.addr;
        }
        t.mode = mode;
        t.reqid = reqid;
        p.templates.push_back(t);
        out.push_back(p);
      }
    }
  return out;
}

}  // namespace

absl::StatusOr<size_t> EspKeymatLen(const Proposal& p) {
  IPFLEET_ASSIGN_OR_RETURN(EspAlgs a, Algs(p));
  return 2 * (a.encr_len + a.integ_len);
}

absl::Status AllocInboundSpi(IkeSa& sa, ChildSa& child) {
  kernel::SpiRequest req;
  req.src = sa.remote.addr;
  req.dst = sa.local.addr;
  req.reqid = child.cfg->reqid;
  req.mode = child.cfg->cfg.mode;
  IPFLEET_ASSIGN_OR_RETURN(child.spi_in, sa.svc.xfrm().AllocSpi(req));
  child.spi_allocated = true;
  return absl::OkStatus();
}

absl::Status InstallChild(IkeSa& sa, ChildSa& child, ByteView keymat, kernel::SaParams* defer_out) {
  IPFLEET_ASSIGN_OR_RETURN(EspAlgs a, Algs(child.proposal));
  if (keymat.size() != 2 * (a.encr_len + a.integ_len)) return absl::InternalError("KEYMAT length mismatch");
  // RFC 7296 2.17: initiator->responder keys first (encryption, then integrity).
  ByteView i2r_e = keymat.subspan(0, a.encr_len), i2r_a = keymat.subspan(a.encr_len, a.integ_len);
  ByteView r2i_e = keymat.subspan(a.encr_len + a.integ_len, a.encr_len),
           r2i_a = keymat.subspan(2 * a.encr_len + a.integ_len, a.integ_len);
  // "Initiator" here is the initiator of the exchange that created the child; callers pass
  // keymat already ordered so that the first half is our outbound direction when we initiated.
  auto make = [&](bool inbound, ByteView e, ByteView au) {
    kernel::SaParams p;
    p.src = inbound ? sa.remote.addr : sa.local.addr;
    p.dst = inbound ? sa.local.addr : sa.remote.addr;
    p.spi = inbound ? child.spi_in : child.spi_out;
    p.mode = child.mode;
    p.reqid = child.cfg->reqid;
    p.esn = a.esn;
    p.replay_window = inbound ? 32 : 0;
    if (sa.nat_detected)  // RFC 3948: ESP in UDP on the IKE ports (4500 after the switch)
      p.encap = kernel::NatTEncap{inbound ? sa.remote.port : sa.local.port, inbound ? sa.local.port : sa.remote.port};
    p.lifetime = KernelLifetime(child.cfg->cfg);
    if (a.aead) p.aead = kernel::AeadAlgo{a.aead->name, Bytes(e.begin(), e.end()), 128};
    if (a.crypt) p.crypt = kernel::CryptAlgo{a.crypt->name, Bytes(e.begin(), e.end())};
    if (a.auth) p.auth = kernel::AuthAlgo{a.auth->name, Bytes(au.begin(), au.end()), a.auth->trunc_bits};
    return p;
  };
  // The caller orders keymat so that the first half holds our outbound keys.
  kernel::SaParams out = make(false, i2r_e, i2r_a);
  kernel::SaParams in = make(true, r2i_e, r2i_a);
  kernel::Xfrm& x = sa.svc.xfrm();
  // The inbound SPI was allocated as a larval state: UpdateSa completes it.
  absl::Status s = child.spi_allocated ? x.UpdateSa(in) : x.AddSa(in);
  if (!s.ok()) return absl::Status(s.code(), absl::StrCat("install inbound SA: ", s.message()));
  if (defer_out) {
    *defer_out = out;  // installed later by the rekey logic (make-before-break)
    out = kernel::SaParams{};
  } else {
    s = x.AddSa(out);
  }
  if (!s.ok()) {
    (void)x.DeleteSa(in.id());
    return absl::Status(s.code(), absl::StrCat("install outbound SA: ", s.message()));
  }
  child.sas_installed = true;
  Wipe(in.aead ? in.aead->key : in.crypt->key);
  if (out.aead || out.crypt) Wipe(out.aead ? out.aead->key : out.crypt->key);
  for (auto& p : Policies(sa.local, sa.remote, child.mode, child.cfg->reqid, child.ts_local, child.ts_remote)) {
    absl::Status ps = x.UpdatePolicy(p);
    if (!ps.ok()) return absl::Status(ps.code(), absl::StrCat("install policy ", p.id().ToString(), ": ", ps.message()));
    child.policies.push_back(p.id());
  }
  return absl::OkStatus();
}

void UninstallChild(IkeSa& sa, ChildSa& child) {
  kernel::Xfrm& x = sa.svc.xfrm();
  if (child.spi_allocated || child.sas_installed) {
    kernel::SaId in{sa.local.addr, child.spi_in, kernel::IpsecProto::kEsp, {}};
    if (auto s = x.DeleteSa(in); !s.ok() && !absl::IsNotFound(s))
      spdlog::warn("child_uninstall_failed {} child={} sa=in reason=\"{}\"", sa.log_prefix(), child.id, std::string(s.message()));
  }
  if (child.sas_installed) {
    kernel::SaId out{sa.remote.addr, child.spi_out, kernel::IpsecProto::kEsp, {}};
    if (auto s = x.DeleteSa(out); !s.ok() && !absl::IsNotFound(s))
      spdlog::warn("child_uninstall_failed {} child={} sa=out reason=\"{}\"", sa.log_prefix(), child.id, std::string(s.message()));
  }
  // Another CHILD_SA of the same config (a rekeyed successor, or a duplicate IKE_SA's child
  // during a mesh start) still needs the policies; trap policies stay so that the traffic is
  // dropped, not sent in the clear, and the kernel keeps raising ACQUIREs for this child.
  if (!sa.svc.PoliciesInUse(child))
    for (const auto& id : child.policies)
      if (!sa.svc.Trapped(id)) (void)x.DeletePolicy(id);
  child.sas_installed = false;
  child.spi_allocated = false;
  child.policies.clear();
}

std::vector<kernel::PolicyParams> TrapPolicies(const PeerRuntime& peer, const PeerRuntime::Child& child) {
  Endpoint local{peer.cfg.local_addr, peer.cfg.local_port}, remote{peer.cfg.remote_addr, peer.cfg.remote_port};
  auto l = ConfiguredTs(child.cfg.local_ts, local.addr);
  auto r = ConfiguredTs(child.cfg.remote_ts, remote.addr);
  return Policies(local, remote, child.cfg.mode, child.reqid, l, r);
}

}  // namespace ipfleet::ike::internal
