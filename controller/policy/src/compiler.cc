#include <absl/strings/string_view.h>
#include "ipfleet/policy/compiler.h"

#include <sys/socket.h>

#include <algorithm>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include <absl/container/flat_hash_map.h>
#include <absl/container/flat_hash_set.h>

#include <absl/strings/str_cat.h>
#include <absl/strings/str_join.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include "internal.h"

namespace ipfleet::policy {
namespace {

using internal::ControllerPath;

// Where a host is an end of a tunnel: the index into the resolved tunnels, and which end.
struct TunnelEndRef {
  uint32_t index;
  bool is_a;
};

struct HostView {
  const Host* host;
  std::vector<Prefix> addresses;
  std::vector<Prefix> subnets;
  std::vector<TunnelEndRef> tunnels;  // in tunnel-name order
};

struct PeerView {
  const ExternalPeer* peer;
  Prefix address;
  std::vector<Prefix> subnets;
};

// One resolved end of a tunnel: outer address, identity and protected selectors.
struct End {
  std::string name;
  bool external = false;
  Prefix outer;
  std::string identity;
  std::vector<Prefix> selectors;
};

// A tunnel after pass 1: both ends resolved in canonical orientation (a is a host; the lower name
// when both are), everything its two specs need.
struct ResolvedTunnel {
  const Tunnel* tunnel;
  const v1::Proposal* proposal;
  End a, b;
  uint32_t reqid;
  std::optional<StaticKeyMaterial> keys;
};

std::string AddressOnly(const Prefix& p) { return p.AddressToString(); }

absl::StatusOr<std::vector<Prefix>> ParseAll(const std::vector<std::string>& texts, absl::string_view what) {
  std::vector<Prefix> out;
  for (const std::string& t : texts) {
    auto p = ParsePrefix(t);
    if (!p.ok()) return absl::InvalidArgumentError(absl::StrCat(what, ": ", p.status().message()));
    out.push_back(*p);
  }
  return out;
}

// FNV-1a: a stable hash so a tunnel keeps its reqid when others come and go.
uint32_t Fnv1a(absl::string_view s) {
  uint32_t h = 2166136261u;
  for (unsigned char c : s) {
    h ^= c;
    h *= 16777619u;
  }
  return h;
}

class Compiler {
 public:
  Compiler(const InventorySnapshot& snap, KeySource& keys) : snap_(snap), keys_(keys) {}

  // Pass 1 resolves and checks every tunnel (all errors surface here, before any bundle is handed
  // out); pass 2 builds the bundles one host at a time, in host-name order.
  absl::StatusOr<std::map<std::string, StaticKeyMaterial>> Run(BundleSink sink) {
    hosts_.reserve(snap_.hosts.size());
    IPFLEET_RETURN_IF_ERROR(Index());
    IPFLEET_ASSIGN_OR_RETURN(bypass_, internal::BuildBypass(snap_, controller_));
    // Sorted by name so reqid probing, bundle order and key draws never depend on input order.
    std::vector<const Tunnel*> tunnels;
    for (const Tunnel& t : snap_.tunnels) tunnels.push_back(&t);
    std::sort(tunnels.begin(), tunnels.end(), [](const Tunnel* x, const Tunnel* y) { return x->name < y->name; });
    used_reqids_.reserve(tunnels.size());
    for (size_t i = 0; i + 1 < tunnels.size(); ++i) {
      if (tunnels[i]->name == tunnels[i + 1]->name) {
        return absl::InvalidArgumentError(absl::StrCat("tunnel name \"", tunnels[i]->name, "\" is used twice (",
                                                       tunnels[i]->origin, ", ", tunnels[i + 1]->origin, ")"));
      }
    }
    resolved_.reserve(tunnels.size());
    for (const Tunnel* t : tunnels) IPFLEET_RETURN_IF_ERROR(ResolveTunnel(*t));

    std::vector<const std::string*> names;
    names.reserve(hosts_.size());
    for (const auto& [name, view] : hosts_) names.push_back(&name);
    std::sort(names.begin(), names.end(), [](const std::string* x, const std::string* y) { return *x < *y; });
    v1::PolicyBundle b;  // reused: its repeated fields keep their capacity from host to host
    for (const std::string* name : names) {
      b.Clear();
      b.set_host(*name);
      b.set_generation(snap_.generation);
      b.set_created_unix(snap_.created_unix);
      b.set_controller_address(controller_text_);
      for (const v1::BypassRule& r : bypass_) *b.add_bypass() = r;
      for (const TunnelEndRef& ref : hosts_.at(*name).tunnels) {
        const ResolvedTunnel& rt = resolved_[ref.index];
        if (ref.is_a) {
          BuildSpec(rt, rt.a, rt.b, true, b.add_tunnels());
        } else {
          BuildSpec(rt, rt.b, rt.a, false, b.add_tunnels());
        }
      }
      IPFLEET_RETURN_IF_ERROR(sink(*name, b));
    }
    return std::move(static_keys_);
  }

 private:
  absl::Status Index() {
    for (const Host& h : snap_.hosts) {
      HostView v{&h, {}, {}, {}};
      IPFLEET_ASSIGN_OR_RETURN(v.addresses, ParseAll(h.addresses, absl::StrCat("host ", h.name, " address")));
      IPFLEET_ASSIGN_OR_RETURN(v.subnets, ParseAll(h.subnets, absl::StrCat("host ", h.name, " subnet")));
      if (!hosts_.emplace(h.name, std::move(v)).second) {
        return absl::InvalidArgumentError(absl::StrCat("host \"", h.name, "\" appears twice"));
      }
    }
    for (const ExternalPeer& p : snap_.external_peers) {
      if (hosts_.count(p.name)) {
        return absl::InvalidArgumentError(absl::StrCat("external peer \"", p.name, "\" has the name of a host"));
      }
      auto addr = HostPrefix(p.address);
      if (!addr.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("external peer ", p.name, ": ", addr.status().message()));
      }
      PeerView v{&p, *addr, {}};
      IPFLEET_ASSIGN_OR_RETURN(v.subnets, ParseAll(p.subnets, absl::StrCat("external peer ", p.name, " subnet")));
      if (!peers_.emplace(p.name, std::move(v)).second) {
        return absl::InvalidArgumentError(absl::StrCat("external peer \"", p.name, "\" appears twice"));
      }
    }
    if (snap_.controller.addresses.empty() || snap_.controller.port == 0 || snap_.controller.port > 65535) {
      return absl::InvalidArgumentError("the controller endpoint (address and port) must be known to compile bundles");
    }
    for (const std::string& a : snap_.controller.addresses) {
      auto p = HostPrefix(a);
      if (!p.ok()) return absl::InvalidArgumentError(absl::StrCat("controller address: ", p.status().message()));
      controller_.addresses.push_back(*p);
    }
    controller_.port = snap_.controller.port;
    const Prefix& first = controller_.addresses.front();
    controller_text_ = first.IsV6() ? absl::StrCat("[", AddressOnly(first), "]:", controller_.port)
                                    : absl::StrCat(AddressOnly(first), ":", controller_.port);
    return absl::OkStatus();
  }

  // Outer addresses of one end in the chosen family.
  std::vector<Prefix> Outer(const TunnelEnd& e, int family) const {
    std::vector<Prefix> out;
    if (e.external) {
      const PeerView& p = peers_.at(e.name);
      if (p.address.family == family) out.push_back(p.address);
    } else {
      for (const Prefix& a : hosts_.at(e.name).addresses) {
        if (a.family == family) out.push_back(a);
      }
    }
    return out;
  }

  absl::StatusOr<End> Resolve(const Tunnel& t, const TunnelEnd& e, int family) {
    End end;
    end.name = e.name;
    end.external = e.external;
    std::vector<Prefix> outer = Outer(e, family);
    if (outer.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("tunnel \"", t.name, "\": ", e.name, " has no ",
                                                     family == AF_INET ? "IPv4" : "IPv6", " address"));
    }
    end.outer = outer.front();
    if (e.external) {
      const ExternalPeer& p = *peers_.at(e.name).peer;
      end.identity = p.identity.empty() ? absl::StrCat("ip:", AddressOnly(end.outer)) : p.identity;
    } else {
      const Host& h = *hosts_.at(e.name).host;
      end.identity = h.dns_names.empty() ? absl::StrCat("ip:", AddressOnly(end.outer))
                                         : absl::StrCat("fqdn:", h.dns_names.front());
    }
    if (t.mode == v1::TUNNEL_MODE_TRANSPORT) {
      end.selectors = {end.outer};  // transport mode protects exactly the two hosts
    } else if (!e.subnets.empty()) {
      IPFLEET_ASSIGN_OR_RETURN(end.selectors,
                               ParseAll(e.subnets, absl::StrCat("tunnel ", t.name, " subnets of ", e.name)));
    } else if (e.external && !peers_.at(e.name).subnets.empty()) {
      end.selectors = peers_.at(e.name).subnets;
    } else if (!e.external && !hosts_.at(e.name).subnets.empty()) {
      end.selectors = hosts_.at(e.name).subnets;
    } else {
      end.selectors = {end.outer};
    }
    if (end.selectors.size() > 1) {  // the comparator formats both sides: skip the common single selector
      std::sort(end.selectors.begin(), end.selectors.end(),
                [](const Prefix& x, const Prefix& y) { return x.ToString() < y.ToString(); });
      end.selectors.erase(std::unique(end.selectors.begin(), end.selectors.end()), end.selectors.end());
    }
    return end;
  }

  // Refuses selectors that would send the agent's own controller traffic into the tunnel.
  absl::Status CheckControllerPath(const Tunnel& t, const End& local, const End& remote) const {
    for (const Prefix& sel : remote.selectors) {
      for (const Prefix& c : controller_.addresses) {
        if (sel.Contains(c)) {
          return absl::FailedPreconditionError(absl::StrCat(
              "tunnel \"", t.name, "\" (", t.origin, ") would capture the controller path: on host ", local.name,
              " the remote selector ", sel.ToString(), " (", remote.name, ") contains the controller address ",
              AddressOnly(c), " tcp/", controller_.port, "; narrow the subnets or keep the controller out of it"));
        }
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<uint32_t> AssignReqid(const std::string& name) {
    uint32_t slot = Fnv1a(name) % kReqidSpan;
    for (uint32_t i = 0; i < kReqidSpan; ++i) {
      uint32_t candidate = kReqidBase + (slot + i) % kReqidSpan;
      if (used_reqids_.insert(candidate).second) return candidate;
    }
    return absl::ResourceExhaustedError("no free reqid left in the agent's range");
  }

  void FillEndpoint(const End& e, v1::Endpoint* out) const {
    if (e.external) {
      out->set_external_peer(e.name);
    } else {
      out->set_host(e.name);
    }
    out->set_address(AddressOnly(e.outer));
    out->set_identity(e.identity);
    for (const Prefix& p : e.selectors) {
      v1::TrafficSelector* s = out->add_subnets();
      s->set_cidr(p.ToString());
      s->set_protocol(0);
      s->set_port_from(0);
      s->set_port_to(65535);
    }
  }

  absl::Status ResolveTunnel(const Tunnel& t) {
    // The ends in canonical orientation (set below); pointers, not a copy of the whole tunnel.
    const TunnelEnd* end_a = &t.a;
    const TunnelEnd* end_b = &t.b;
    auto known = [&](const TunnelEnd& e) { return e.external ? peers_.count(e.name) > 0 : hosts_.count(e.name) > 0; };
    for (const TunnelEnd* e : {&t.a, &t.b}) {
      if (!known(*e)) {
        return absl::InvalidArgumentError(absl::StrCat("tunnel \"", t.name, "\" (", t.origin, "): unknown ",
                                                       e->external ? "external peer" : "host", " \"", e->name, "\""));
      }
    }
    if (t.a.external && t.b.external) {
      return absl::InvalidArgumentError(absl::StrCat("tunnel \"", t.name, "\": both ends are external peers"));
    }
    if (!t.a.external && !t.b.external && t.a.name == t.b.name) {
      return absl::InvalidArgumentError(absl::StrCat("tunnel \"", t.name, "\": both ends are ", t.a.name));
    }
    // Canonical orientation: a is a host, and the lower-named one when both are.
    if (t.a.external || (!t.b.external && t.b.name < t.a.name)) std::swap(end_a, end_b);
    const TunnelEnd& ta = *end_a;
    const TunnelEnd& tb = *end_b;

    auto prop_it = snap_.proposals.find(t.proposal);
    if (prop_it == snap_.proposals.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("tunnel \"", t.name, "\" (", t.origin, "): unknown proposal \"", t.proposal, "\""));
    }
    const v1::Proposal& proposal = prop_it->second;

    if (t.auth == v1::AUTH_METHOD_STATIC && tb.external) {
      return absl::InvalidArgumentError(
          absl::StrCat("tunnel \"", t.name, "\": static keys need ipfleet hosts at both ends"));
    }
    if (t.auth == v1::AUTH_METHOD_PSK) {
      if (!tb.external || peers_.at(tb.name).peer->psk.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("tunnel \"", t.name, "\": PSK is only for external peers that have a psk set"));
      }
    }

    int family = 0;
    if (t.family == "ipv4") family = AF_INET;
    else if (t.family == "ipv6") family = AF_INET6;
    else if (!t.family.empty()) return absl::InvalidArgumentError(absl::StrCat("tunnel \"", t.name, "\": bad family"));
    else family = (!Outer(ta, AF_INET).empty() && !Outer(tb, AF_INET).empty()) ? AF_INET : AF_INET6;

    IPFLEET_ASSIGN_OR_RETURN(End a, Resolve(t, ta, family));
    IPFLEET_ASSIGN_OR_RETURN(End b, Resolve(t, tb, family));
    IPFLEET_RETURN_IF_ERROR(CheckControllerPath(t, a, b));
    if (!b.external) IPFLEET_RETURN_IF_ERROR(CheckControllerPath(t, b, a));
    IPFLEET_ASSIGN_OR_RETURN(uint32_t reqid, AssignReqid(t.name));

    std::optional<StaticKeyMaterial> material;
    if (t.auth == v1::AUTH_METHOD_STATIC) {
      IPFLEET_ASSIGN_OR_RETURN(internal::KeyLengths lengths, internal::StaticKeyLengths(proposal));
      auto old = snap_.static_keys.find(t.name);
      bool reuse = old != snap_.static_keys.end() && internal::KeysFit(old->second, lengths) &&
                   !(t.rotate_keys && old->second.key_generation < snap_.generation);
      if (reuse) {
        material = old->second;
      } else {
        IPFLEET_ASSIGN_OR_RETURN(material, internal::NewStaticKeys(lengths, snap_.generation, keys_));
      }
      static_keys_[t.name] = *material;
    }
    const uint32_t index = static_cast<uint32_t>(resolved_.size());
    hosts_.at(a.name).tunnels.push_back({index, true});
    if (!b.external) hosts_.at(b.name).tunnels.push_back({index, false});
    resolved_.push_back({&t, &proposal, std::move(a), std::move(b), reqid, std::move(material)});
    return absl::OkStatus();
  }

  // One spec per host end, built from the same proposal; the second is the mirror of the first.
  // With an external peer our host initiates; between hosts the lower name (end a) does.
  void BuildSpec(const ResolvedTunnel& rt, const End& local, const End& remote, bool local_is_a,
                 v1::TunnelSpec* spec) const {
    const Tunnel& t = *rt.tunnel;
    spec->set_name(t.name);
    spec->set_mode(t.mode);
    FillEndpoint(local, spec->mutable_local());
    FillEndpoint(remote, spec->mutable_remote());
    *spec->mutable_proposal() = *rt.proposal;
    spec->set_auth(t.auth);
    if (t.auth == v1::AUTH_METHOD_PSK) spec->set_psk(peers_.at(rt.b.name).peer->psk);
    *spec->mutable_dpd() = t.dpd;
    spec->set_start_action(t.start_action);
    if (rt.keys) {
      v1::StaticKeys* k = spec->mutable_static_keys();
      *k->mutable_outbound() = local_is_a ? rt.keys->a_to_b : rt.keys->b_to_a;
      *k->mutable_inbound() = local_is_a ? rt.keys->b_to_a : rt.keys->a_to_b;
      k->set_key_generation(rt.keys->key_generation);
    }
    spec->set_reqid(rt.reqid);
    spec->set_initiator(local_is_a);
  }

  const InventorySnapshot& snap_;
  KeySource& keys_;
  // Hashed, not ordered: looked up ~10 times per tunnel (45,000 tunnels at 10,000 hosts); nothing
  // depends on their order (bundles are a std::map, tunnels are sorted).
  absl::flat_hash_map<std::string, HostView> hosts_;
  absl::flat_hash_map<std::string, PeerView> peers_;
  ControllerPath controller_;
  std::string controller_text_;
  std::vector<v1::BypassRule> bypass_;
  absl::flat_hash_set<uint32_t> used_reqids_;  // open addressing: no node per tunnel
  std::vector<ResolvedTunnel> resolved_;       // in tunnel-name order
  std::map<std::string, StaticKeyMaterial> static_keys_;
};

}  // namespace

absl::StatusOr<std::map<std::string, StaticKeyMaterial>> CompileEach(const InventorySnapshot& snapshot, KeySource& keys,
                                                                     BundleSink sink) {
  return Compiler(snapshot, keys).Run(sink);
}

absl::StatusOr<CompileResult> Compile(const InventorySnapshot& snapshot, KeySource& keys) {
  CompileResult r;
  IPFLEET_ASSIGN_OR_RETURN(r.static_keys, CompileEach(snapshot, keys, [&](const std::string& host, const v1::PolicyBundle& b) {
                             r.bundles.emplace(host, b);
                             return absl::OkStatus();
                           }));
  return r;
}

// Written into a string of exactly the message's size: a growing string (StringOutputStream)
// ends with up to twice the capacity it needs, and the controller keeps 10,000 of these.
std::string SerializeDeterministic(const google::protobuf::Message& message) {
  std::string out(message.ByteSizeLong(), '\0');
  SerializeDeterministicWithCachedSizes(message, out.data(), out.size());
  return out;
}

void SerializeDeterministicWithCachedSizes(const google::protobuf::Message& message, char* out, size_t size) {
  // The coded stream flushes its last bytes into `out` when it goes out of scope.
  google::protobuf::io::ArrayOutputStream stream(out, static_cast<int>(size));
  google::protobuf::io::CodedOutputStream coded(&stream);
  coded.SetSerializationDeterministic(true);
  message.SerializeWithCachedSizes(&coded);
}

}  // namespace ipfleet::policy
