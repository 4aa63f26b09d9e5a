#include <absl/strings/string_view.h>
#include "ipfleet/fleet/expand.h"

#include <set>

#include <absl/strings/str_cat.h>
#include <absl/strings/str_join.h>

namespace ipfleet::fleet {
namespace {

class Expander {
 public:
  Expander(const FleetFile& f, const std::vector<policy::Host>& hosts) : f_(f) {
    for (const auto& h : hosts) hosts_[h.name] = h;
    for (const auto& p : f.external_peers) peers_.insert(p.peer.name);
  }

  absl::StatusOr<policy::InventorySnapshot> Run() {
    policy::InventorySnapshot s;
    for (const HostEntry& e : f_.hosts) {
      auto it = hosts_.find(e.name);
      if (it == hosts_.end()) {
        Error(e.mark, "hosts." + e.name,
              absl::StrCat("not in the inventory; add it first with `ipfleet host add ", e.name, " --address IP`"));
        continue;
      }
      if (e.labels) it->second.labels = *e.labels;
      it->second.subnets = e.subnets;
    }
    for (const auto& p : f_.proposals) s.proposals[p.proposal.name()] = p.proposal;
    for (const auto& p : f_.external_peers) s.external_peers.push_back(p.peer);
    for (const auto& b : f_.bypass) s.bypass.push_back(b.exemption);

    for (const TunnelEntry& t : f_.tunnels) Explicit(t);
    for (const MeshEntry& m : f_.meshes) Mesh(m);
    for (const HubEntry& h : f_.hubs) Hub(h);
    if (!errors_.empty()) return absl::InvalidArgumentError(absl::StrJoin(errors_, "\n"));

    for (auto& [name, h] : hosts_) s.hosts.push_back(std::move(h));
    s.tunnels = std::move(tunnels_);
    return s;
  }

 private:
  void Error(const Mark& m, absl::string_view field, absl::string_view what) {
    if (errors_.size() < 20) errors_.push_back(absl::StrCat(f_.file_name, ":", m.line, ":", m.column, ": ", field, ": ", what));
  }

  // Resolves a name to a tunnel end; hosts win over external peers (the parser forbids both).
  std::optional<policy::TunnelEnd> EndOf(const std::string& name, const Mark& m, const std::string& field) {
    if (hosts_.count(name)) return policy::TunnelEnd{name, false, {}};
    if (peers_.count(name)) return policy::TunnelEnd{name, true, {}};
    Error(m, field, absl::StrCat("\"", name, "\" is neither a host in the inventory nor an external peer"));
    return std::nullopt;
  }

  policy::Tunnel FromOptions(const TunnelOptions& o, const std::string& origin) {
    auto pick = [&](const auto& own, const auto& def, auto fallback) { return own ? *own : def ? *def : fallback; };
    policy::Tunnel t;
    t.proposal = pick(o.proposal, f_.defaults.proposal, std::string("default"));
    t.mode = pick(o.mode, f_.defaults.mode, v1::TUNNEL_MODE_TUNNEL);
    t.auth = pick(o.auth, f_.defaults.auth, v1::AUTH_METHOD_UNSPECIFIED);
    t.start_action = pick(o.start_action, f_.defaults.start_action, v1::START_ACTION_START);
    v1::DpdSettings dpd;
    dpd.set_interval_seconds(30);
    dpd.set_max_retries(3);
    dpd.set_stale_child_seconds(10);
    t.dpd = pick(o.dpd, f_.defaults.dpd, dpd);
    t.family = pick(o.family, f_.defaults.family, std::string());
    t.rotate_keys = pick(o.rotate_keys, f_.defaults.rotate_keys, false);
    t.origin = origin;
    return t;
  }

  // Fills in auth when unset (PSK peers use their PSK, everything else certificates), checks the
  // pair is new, and records it.
  void Add(policy::Tunnel t, const Mark& m, const std::string& field, bool explicit_tunnel) {
    if (t.auth == v1::AUTH_METHOD_UNSPECIFIED) {
      bool psk_peer = false;
      for (const auto& p : f_.external_peers) {
        if ((t.b.external && p.peer.name == t.b.name) || (t.a.external && p.peer.name == t.a.name)) {
          psk_peer = p.peer.auth == v1::AUTH_METHOD_PSK;
        }
      }
      t.auth = psk_peer ? v1::AUTH_METHOD_PSK : v1::AUTH_METHOD_CERTIFICATE;
    }
    if (t.auth == v1::AUTH_METHOD_STATIC && (t.a.external || t.b.external)) {
      Error(m, field + ".auth", "static keys need ipfleet hosts at both ends");
      return;
    }
    if (t.auth == v1::AUTH_METHOD_PSK && !t.a.external && !t.b.external) {
      Error(m, field + ".auth", "psk is only for external peers; hosts use certificates (or static)");
      return;
    }
    auto key = std::minmax(t.a.name, t.b.name);
    auto [it, fresh] = pairs_.emplace(std::pair<std::string, std::string>(key.first, key.second), t.origin);
    if (!fresh) {
      if (explicit_tunnel) Error(m, field, absl::StrCat("the pair ", key.first, "/", key.second, " already has a tunnel (", it->second, ")"));
      return;  // helpers: the first definition of a pair wins
    }
    if (!names_.insert(t.name).second) {
      Error(m, field + ".name", absl::StrCat("tunnel name \"", t.name, "\" is already used"));
      return;
    }
    tunnels_.push_back(std::move(t));
  }

  void Explicit(const TunnelEntry& e) {
    auto a = EndOf(e.a, e.mark, e.field + ".ends");
    auto b = EndOf(e.b, e.mark, e.field + ".ends");
    if (!a || !b) return;
    if (a->external && b->external) return Error(e.mark, e.field + ".ends", "both ends are external peers");
    policy::Tunnel t = FromOptions(e.options, e.field);
    t.name = e.name.empty() ? PairName(e.a, e.b) : e.name;
    t.a = *a;
    t.b = *b;
    if (auto it = e.subnets.find(e.a); it != e.subnets.end()) t.a.subnets = it->second;
    if (auto it = e.subnets.find(e.b); it != e.subnets.end()) t.b.subnets = it->second;
    Add(std::move(t), e.mark, e.field, true);
  }

  std::vector<std::string> Select(const HostSelector& sel, const Mark& m, const std::string& field, bool allow_peers) {
    std::vector<std::string> out;
    if (sel.by_names) {
      for (const std::string& n : sel.names) {
        if (hosts_.count(n) || (allow_peers && peers_.count(n))) {
          out.push_back(n);
        } else {
          Error(m, field, absl::StrCat("\"", n, "\" is not a host in the inventory", allow_peers ? " nor an external peer" : ""));
        }
      }
    } else {
      for (const auto& [name, h] : hosts_) {  // std::map: sorted, so expansion order is stable
        bool match = true;
        for (const auto& [k, v] : sel.labels) {
          auto it = h.labels.find(k);
          match = match && it != h.labels.end() && it->second == v;
        }
        if (match) out.push_back(name);
      }
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
  }

  void Mesh(const MeshEntry& m) {
    std::vector<std::string> members = Select(m.select, m.mark, m.field + ".select", false);
    std::string origin = absl::StrCat("mesh ", m.name);
    for (size_t i = 0; i < members.size(); ++i) {
      for (size_t j = i + 1; j < members.size(); ++j) {
        policy::Tunnel t = FromOptions(m.options, origin);
        t.name = PairName(members[i], members[j]);
        t.a = {members[i], false, {}};
        t.b = {members[j], false, {}};
        Add(std::move(t), m.mark, m.field, false);
      }
    }
  }

  void Hub(const HubEntry& h) {
    if (!hosts_.count(h.hub)) return Error(h.mark, h.field + ".hub", absl::StrCat("\"", h.hub, "\" is not a host in the inventory"));
    std::string origin = absl::StrCat("hub ", h.name);
    for (const std::string& spoke : Select(h.spokes, h.mark, h.field + ".spokes", true)) {
      if (spoke == h.hub) continue;  // a label selector may match the hub itself
      policy::Tunnel t = FromOptions(h.options, origin);
      t.name = PairName(h.hub, spoke);
      t.a = {h.hub, false, {}};
      t.b = {spoke, peers_.count(spoke) > 0 && !hosts_.count(spoke), {}};
      Add(std::move(t), h.mark, h.field, false);
    }
  }

  const FleetFile& f_;
  std::map<std::string, policy::Host> hosts_;
  std::set<std::string> peers_;
  std::map<std::pair<std::string, std::string>, std::string> pairs_;
  std::set<std::string> names_;
  std::vector<policy::Tunnel> tunnels_;
  std::vector<std::string> errors_;
};

}  // namespace

std::string PairName(const std::string& x, const std::string& y) {
  return x < y ? absl::StrCat(x, "--", y) : absl::StrCat(y, "--", x);
}

absl::StatusOr<policy::InventorySnapshot> Expand(const FleetFile& file, const std::vector<policy::Host>& inventory_hosts) {
  return Expander(file, inventory_hosts).Run();
}

}  // namespace ipfleet::fleet
