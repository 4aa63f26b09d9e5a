#include "ipfleet/agent/sync/translate.h"

#include <netinet/in.h>

#include <absl/strings/str_cat.h>

#include "ipfleet/v1/types.pb.h"

namespace ipfleet::agent {
namespace {


absl::StatusOr<Selector> ToSelector(const v1::TrafficSelector& ts, const std::string& where) {
  Selector s;
  if (ts.cidr().empty()) {
    s.prefix = Prefix{};  // any (family 0, length 0)
  } else {
    auto p = ParsePrefix(ts.cidr());
    if (!p.ok()) return absl::InvalidArgumentError(absl::StrCat(where, ": cidr: ", p.status().message()));
    s.prefix = *p;
  }
  if (ts.protocol() > 255) return absl::InvalidArgumentError(absl::StrCat(where, ": protocol > 255"));
  s.protocol = static_cast<uint8_t>(ts.protocol());
  uint32_t from = ts.port_from(), to = ts.port_to();
  if (from == 0 && to == 0) to = 65535;
  if (from > 65535 || to > 65535 || from > to) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": bad port range ", from, "-", to));
  }
  s.port_from = static_cast<uint16_t>(from);
  s.port_to = static_cast<uint16_t>(to);
  return s;
}

std::vector<std::string> List(const google::protobuf::RepeatedPtrField<std::string>& f) {
  return {f.begin(), f.end()};
}

LifetimeConfig ToLifetime(const v1::Lifetimes& l) {
  return LifetimeConfig{l.rekey_seconds(), l.hard_seconds(), l.soft_bytes(), l.hard_bytes(),
                        l.soft_packets(),  l.hard_packets(), l.jitter_percent()};
}

absl::StatusOr<StaticSaKey> ToStaticKey(const v1::StaticSaKeys& k, const std::string& where) {
  if (k.spi() < 256) return absl::InvalidArgumentError(absl::StrCat(where, ": SPI must be >= 256"));
  if (k.encryption_key().empty()) return absl::InvalidArgumentError(absl::StrCat(where, ": empty encryption key"));
  return StaticSaKey{k.spi(), k.encryption_key(), k.integrity_key()};
}

absl::StatusOr<TunnelConfig> ToTunnel(const v1::TunnelSpec& t, const std::string& host) {
  TunnelConfig c;
  c.name = t.name();
  const std::string where = absl::StrCat("tunnel ", t.name());
  if (c.name.empty()) return absl::InvalidArgumentError("tunnel without a name");
  c.transport = t.mode() == v1::TUNNEL_MODE_TRANSPORT;
  c.local_host = host;
  c.remote_is_external = t.remote().kind_case() == v1::Endpoint::kExternalPeer;
  c.remote_name = c.remote_is_external ? t.remote().external_peer() : t.remote().host();
  auto la = ParseIp(t.local().address());
  if (!la.ok()) return absl::InvalidArgumentError(absl::StrCat(where, ": local.address: ", la.status().message()));
  auto ra = ParseIp(t.remote().address());
  if (!ra.ok()) return absl::InvalidArgumentError(absl::StrCat(where, ": remote.address: ", ra.status().message()));
  if (la->family != ra->family) return absl::InvalidArgumentError(absl::StrCat(where, ": address families differ"));
  c.local_address = *la;
  c.remote_address = *ra;
  c.local_identity = t.local().identity();
  c.remote_identity = t.remote().identity();
  for (const auto& s : t.local().subnets()) {
    IPFLEET_ASSIGN_OR_RETURN(auto sel, ToSelector(s, where + ": local.subnets"));
    c.local_subnets.push_back(sel);
  }
  for (const auto& s : t.remote().subnets()) {
    IPFLEET_ASSIGN_OR_RETURN(auto sel, ToSelector(s, where + ": remote.subnets"));
    c.remote_subnets.push_back(sel);
  }
  // Host-to-host tunnels without subnets protect the outer addresses themselves.
  if (c.local_subnets.empty()) c.local_subnets.push_back(Selector{Prefix{c.local_address, static_cast<uint8_t>(c.local_address.family == AF_INET ? 32 : 128)}});
  if (c.remote_subnets.empty()) c.remote_subnets.push_back(Selector{Prefix{c.remote_address, static_cast<uint8_t>(c.remote_address.family == AF_INET ? 32 : 128)}});

  const auto& p = t.proposal();
  c.proposal.name = p.name();
  c.proposal.ike_encryption = List(p.ike().encryption());
  c.proposal.ike_integrity = List(p.ike().integrity());
  c.proposal.ike_prf = List(p.ike().prf());
  c.proposal.ike_dh_groups = List(p.ike().dh_groups());
  c.proposal.esp_encryption = List(p.esp().encryption());
  c.proposal.esp_integrity = List(p.esp().integrity());
  c.proposal.esn = p.esp().esn();
  c.proposal.pfs = p.pfs();
  c.proposal.pfs_groups = List(p.pfs_groups());
  c.proposal.ike_lifetime = ToLifetime(p.ike_lifetime());
  c.proposal.child_lifetime = ToLifetime(p.child_lifetime());

  switch (t.auth()) {
    case v1::AUTH_METHOD_PSK:
      c.auth = AuthKind::kPsk;
      if (t.psk().empty()) return absl::InvalidArgumentError(absl::StrCat(where, ": PSK auth without a key"));
      c.psk = t.psk();
      break;
    case v1::AUTH_METHOD_STATIC: {
      c.auth = AuthKind::kStatic;
      if (!t.has_static_keys()) return absl::InvalidArgumentError(absl::StrCat(where, ": static auth without keys"));
      StaticKeysConfig k;
      IPFLEET_ASSIGN_OR_RETURN(k.outbound, ToStaticKey(t.static_keys().outbound(), where + ": static_keys.outbound"));
      IPFLEET_ASSIGN_OR_RETURN(k.inbound, ToStaticKey(t.static_keys().inbound(), where + ": static_keys.inbound"));
      if (c.proposal.esp_encryption.empty()) return absl::InvalidArgumentError(absl::StrCat(where, ": static tunnel needs an ESP cipher"));
      k.key_generation = t.static_keys().key_generation();
      c.static_keys = k;
      break;
    }
    default:
      c.auth = AuthKind::kCertificate;
  }
  if (t.has_dpd()) {
    if (t.dpd().interval_seconds()) c.dpd_interval_seconds = t.dpd().interval_seconds();
    if (t.dpd().max_retries()) c.dpd_max_retries = t.dpd().max_retries();
    if (t.dpd().stale_child_seconds()) c.stale_child_seconds = t.dpd().stale_child_seconds();
  }
  switch (t.start_action()) {
    case v1::START_ACTION_TRAP: c.start = StartKind::kTrap; break;
    case v1::START_ACTION_NONE: c.start = StartKind::kNone; break;
    default: c.start = StartKind::kStart;
  }
  c.reqid = t.reqid();
  c.initiator = t.initiator();
  if (!t.probe_source().empty() && !t.probe_destination().empty()) {
    auto ps = ParseIp(t.probe_source());
    auto pd = ParseIp(t.probe_destination());
    if (ps.ok() && pd.ok()) {
      c.probe_source = *ps;
      c.probe_destination = *pd;
    }
  }
  return c;
}

}  // namespace

std::string Selector::ToString() const {
  std::string s = prefix.address.empty() ? "any" : prefix.ToString();
  if (protocol) absl::StrAppend(&s, " proto ", protocol);
  if (port_from != 0 || port_to != 65535) absl::StrAppend(&s, " ports ", port_from, "-", port_to);
  return s;
}

absl::StatusOr<DesiredState> TranslateBundle(const v1::PolicyBundle& b) {
  DesiredState d;
  d.host = b.host();
  d.version = b.version();
  d.generation = b.generation();
  d.ca_chain_pem = List(b.ca_chain());
  d.crl_pem = b.crl();
  d.controller_address = b.controller_address();
  for (const auto& t : b.tunnels()) {
    IPFLEET_ASSIGN_OR_RETURN(auto c, ToTunnel(t, b.host()));
    for (const auto& other : d.tunnels) {
      if (other.name == c.name) return absl::InvalidArgumentError(absl::StrCat("duplicate tunnel ", c.name));
    }
    d.tunnels.push_back(std::move(c));
  }
  for (const auto& r : b.bypass()) {
    BypassConfig bc;
    bc.reason = r.reason();
    IPFLEET_ASSIGN_OR_RETURN(bc.remote, ToSelector(r.remote(), "bypass " + r.reason() + ": remote"));
    IPFLEET_ASSIGN_OR_RETURN(bc.local, ToSelector(r.local(), "bypass " + r.reason() + ": local"));
    bc.allow = r.action() != v1::BYPASS_ACTION_BLOCK;
    bc.priority = r.priority();
    d.bypass.push_back(std::move(bc));
  }
  return d;
}

}  // namespace ipfleet::agent
