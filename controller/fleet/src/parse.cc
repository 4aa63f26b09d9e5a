// fleet.yaml parsing. yaml-cpp builds the tree (and throws on syntax errors, caught here); every
// field is then checked by hand so an error can name its line and field path.
#include <absl/strings/string_view.h>
#include <yaml-cpp/yaml.h>

#include <set>

#include <absl/strings/numbers.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_join.h>
#include <absl/strings/str_split.h>

#include "ipfleet/fleet/fleet_file.h"
#include "ipfleet/policy/cidr.h"

namespace ipfleet::fleet {
namespace {

constexpr size_t kMaxErrors = 20;

const std::set<std::string> kEncryption = {"aes128gcm16", "aes192gcm16", "aes256gcm16", "aes128",
                                           "aes192",      "aes256",      "chacha20poly1305"};
const std::set<std::string> kIntegrity = {"sha1", "sha256", "sha384", "sha512"};
const std::set<std::string> kPrf = {"prfsha1", "prfsha256", "prfsha384", "prfsha512"};
const std::set<std::string> kDh = {"modp2048", "modp3072", "modp4096", "ecp256",
                                   "ecp384",   "ecp521",   "curve25519", "curve448"};

bool IsAead(const std::string& enc) { return enc.find("gcm") != std::string::npos || enc == "chacha20poly1305"; }

Mark MarkOf(const YAML::Node& n) {
  YAML::Mark m = n.Mark();
  if (m.is_null()) return {};
  return {m.line + 1, m.column + 1};
}

// Collects errors with their position; parsing continues after most errors so an operator sees
// all of them at once.
class Errors {
 public:
  explicit Errors(std::string file) : file_(std::move(file)) {}
  void Add(const Mark& m, absl::string_view field, absl::string_view what) {
    if (list_.size() < kMaxErrors) list_.push_back(absl::StrCat(file_, ":", m.line, ":", m.column, ": ", field, ": ", what));
  }
  void Add(const YAML::Node& n, absl::string_view field, absl::string_view what) { Add(MarkOf(n), field, what); }
  bool empty() const { return list_.empty(); }
  absl::Status ToStatus() const { return absl::InvalidArgumentError(absl::StrJoin(list_, "\n")); }

 private:
  std::string file_;
  std::vector<std::string> list_;
};

class Parser {
 public:
  Parser(std::string file) : errors_(file) { out_.file_name = std::move(file); }

  absl::StatusOr<FleetFile> Run(absl::string_view text) {
    YAML::Node root;
    try {
      root = YAML::Load(std::string(text));
    } catch (const YAML::Exception& e) {
      errors_.Add(Mark{e.mark.line + 1, e.mark.column + 1}, "yaml", e.msg);
      return errors_.ToStatus();
    }
    if (!root.IsMap()) {
      errors_.Add(root, "document", "expected a mapping with keys like hosts:, proposals:, tunnels:");
      return errors_.ToStatus();
    }
    try {
      Document(root);
    } catch (const YAML::Exception& e) {  // defensive: a conversion we did not anticipate
      errors_.Add(Mark{e.mark.line + 1, e.mark.column + 1}, "yaml", e.msg);
    }
    if (!errors_.empty()) return errors_.ToStatus();
    return std::move(out_);
  }

 private:
  // --- scalar helpers ---------------------------------------------------------------------------
  bool CheckKeys(const YAML::Node& n, const std::string& field, std::initializer_list<const char*> allowed) {
    if (!n.IsMap()) {
      errors_.Add(n, field, "expected a mapping");
      return false;
    }
    for (auto it = n.begin(); it != n.end(); ++it) {
      std::string key = it->first.IsScalar() ? it->first.Scalar() : "";
      bool ok = false;
      for (const char* a : allowed) ok = ok || key == a;
      if (!ok) {
        std::vector<std::string> names(allowed.begin(), allowed.end());
        errors_.Add(it->first, absl::StrCat(field, ".", key), absl::StrCat("unknown key (expected one of: ", absl::StrJoin(names, ", "), ")"));
      }
    }
    return true;
  }

  std::optional<std::string> Str(const YAML::Node& n, const std::string& field) {
    if (!n.IsScalar()) {
      errors_.Add(n, field, "expected a string");
      return std::nullopt;
    }
    return n.Scalar();
  }

  std::optional<uint64_t> Uint(const YAML::Node& n, const std::string& field, uint64_t max) {
    uint64_t v = 0;
    if (!n.IsScalar() || !absl::SimpleAtoi(n.Scalar(), &v) || v > max) {
      errors_.Add(n, field, absl::StrCat("expected a whole number from 0 to ", max));
      return std::nullopt;
    }
    return v;
  }

  std::optional<bool> Bool(const YAML::Node& n, const std::string& field) {
    if (n.IsScalar()) {
      const std::string& s = n.Scalar();
      if (s == "true" || s == "yes" || s == "on") return true;
      if (s == "false" || s == "no" || s == "off") return false;
    }
    errors_.Add(n, field, "expected true or false");
    return std::nullopt;
  }

  std::vector<std::string> StrList(const YAML::Node& n, const std::string& field) {
    std::vector<std::string> out;
    if (n.IsScalar()) {  // a single item may be written without brackets
      out.push_back(n.Scalar());
      return out;
    }
    if (!n.IsSequence()) {
      errors_.Add(n, field, "expected a list");
      return out;
    }
    for (size_t i = 0; i < n.size(); ++i) {
      if (auto s = Str(n[i], absl::StrCat(field, "[", i, "]"))) out.push_back(*s);
    }
    return out;
  }

  std::vector<std::string> Algorithms(const YAML::Node& n, const std::string& field, const std::set<std::string>& known) {
    std::vector<std::string> out = StrList(n, field);
    for (size_t i = 0; i < out.size(); ++i) {
      if (!known.count(out[i])) {
        errors_.Add(n.IsSequence() ? n[i] : n, absl::StrCat(field, "[", i, "]"),
                    absl::StrCat("unknown algorithm \"", out[i], "\" (known: ", absl::StrJoin(known, ", "), ")"));
      }
    }
    return out;
  }

  std::vector<std::string> Prefixes(const YAML::Node& n, const std::string& field) {
    std::vector<std::string> out = StrList(n, field);
    for (size_t i = 0; i < out.size(); ++i) {
      auto p = policy::ParsePrefix(out[i]);
      if (!p.ok()) errors_.Add(n.IsSequence() ? n[i] : n, absl::StrCat(field, "[", i, "]"), p.status().message());
    }
    return out;
  }

  std::optional<std::string> Name(const YAML::Node& n, const std::string& field) {
    auto s = Str(n, field);
    if (!s) return s;
    bool ok = !s->empty() && s->size() <= 63;
    for (char c : *s) ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.');
    if (!ok) {
      errors_.Add(n, field, absl::StrCat("\"", *s, "\" is not a valid name (letters, digits, - _ . ; at most 63)"));
      return std::nullopt;
    }
    return s;
  }

  std::map<std::string, std::string> Labels(const YAML::Node& n, const std::string& field) {
    std::map<std::string, std::string> out;
    if (!n.IsMap()) {
      errors_.Add(n, field, "expected a mapping of label: value");
      return out;
    }
    for (auto it = n.begin(); it != n.end(); ++it) {
      auto k = Str(it->first, field);
      auto v = Str(it->second, absl::StrCat(field, ".", k.value_or("?")));
      if (k && v) out[*k] = *v;
    }
    return out;
  }

  // --- sections ---------------------------------------------------------------------------------
  void Document(const YAML::Node& root) {
    CheckKeys(root, "document",
              {"version", "defaults", "proposals", "hosts", "external_peers", "tunnels", "meshes", "hubs", "bypass"});
    if (root["version"]) {
      auto v = Uint(root["version"], "version", 1000);
      if (v && *v != 1) errors_.Add(root["version"], "version", "only version 1 is understood");
    }
    if (const YAML::Node n = root["proposals"]) Proposals(n);
    bool has_default = false;
    for (const auto& p : out_.proposals) has_default = has_default || p.proposal.name() == "default";
    if (!has_default) out_.proposals.push_back({BuiltinDefaultProposal(), {}});
    for (const auto& p : out_.proposals) proposal_names_.insert(p.proposal.name());

    if (const YAML::Node n = root["defaults"]) out_.defaults = Options(n, "defaults", {});
    if (const YAML::Node n = root["hosts"]) Hosts(n);
    if (const YAML::Node n = root["external_peers"]) Peers(n);
    if (const YAML::Node n = root["tunnels"]) Tunnels(n);
    if (const YAML::Node n = root["meshes"]) Meshes(n);
    if (const YAML::Node n = root["hubs"]) Hubs(n);
    if (const YAML::Node n = root["bypass"]) Bypass(n);
  }

  void Proposals(const YAML::Node& n) {
    if (!n.IsMap()) return errors_.Add(n, "proposals", "expected a mapping of name: proposal");
    for (auto it = n.begin(); it != n.end(); ++it) {
      std::string field = absl::StrCat("proposals.", it->first.IsScalar() ? it->first.Scalar() : "?");
      auto name = Name(it->first, field);
      const YAML::Node p = it->second;
      if (!name || !CheckKeys(p, field, {"ike", "esp", "pfs", "pfs_groups", "ike_lifetime", "child_lifetime"})) continue;
      v1::Proposal prop = BuiltinDefaultProposal();
      prop.set_name(*name);
      if (const YAML::Node ike = p["ike"]) {
        std::string f = field + ".ike";
        if (CheckKeys(ike, f, {"encryption", "integrity", "prf", "dh_groups"})) {
          auto* m = prop.mutable_ike();
          if (ike["encryption"]) Assign(m->mutable_encryption(), Algorithms(ike["encryption"], f + ".encryption", kEncryption));
          if (ike["integrity"]) Assign(m->mutable_integrity(), Algorithms(ike["integrity"], f + ".integrity", kIntegrity));
          if (ike["prf"]) Assign(m->mutable_prf(), Algorithms(ike["prf"], f + ".prf", kPrf));
          if (ike["dh_groups"]) Assign(m->mutable_dh_groups(), Algorithms(ike["dh_groups"], f + ".dh_groups", kDh));
          CheckSuite(ike, f, m->encryption(), m->integrity());
          if (m->prf().empty()) errors_.Add(ike, f + ".prf", "IKE needs at least one PRF");
          if (m->dh_groups().empty()) errors_.Add(ike, f + ".dh_groups", "IKE needs at least one DH group");
        }
      }
      if (const YAML::Node esp = p["esp"]) {
        std::string f = field + ".esp";
        if (CheckKeys(esp, f, {"encryption", "integrity", "esn"})) {
          auto* m = prop.mutable_esp();
          if (esp["encryption"]) Assign(m->mutable_encryption(), Algorithms(esp["encryption"], f + ".encryption", kEncryption));
          if (esp["integrity"]) Assign(m->mutable_integrity(), Algorithms(esp["integrity"], f + ".integrity", kIntegrity));
          if (esp["esn"]) m->set_esn(Bool(esp["esn"], f + ".esn").value_or(false));
          CheckSuite(esp, f, m->encryption(), m->integrity());
        }
      }
      if (p["pfs"]) prop.set_pfs(Bool(p["pfs"], field + ".pfs").value_or(false));
      if (p["pfs_groups"]) Assign(prop.mutable_pfs_groups(), Algorithms(p["pfs_groups"], field + ".pfs_groups", kDh));
      if (p["ike_lifetime"]) Lifetime(p["ike_lifetime"], field + ".ike_lifetime", prop.mutable_ike_lifetime());
      if (p["child_lifetime"]) Lifetime(p["child_lifetime"], field + ".child_lifetime", prop.mutable_child_lifetime());
      out_.proposals.push_back({std::move(prop), MarkOf(it->first)});
    }
  }

  static void Assign(google::protobuf::RepeatedPtrField<std::string>* dst, const std::vector<std::string>& src) {
    dst->Clear();
    for (const auto& s : src) *dst->Add() = s;
  }

  void CheckSuite(const YAML::Node& n, const std::string& f, const google::protobuf::RepeatedPtrField<std::string>& enc,
                  const google::protobuf::RepeatedPtrField<std::string>& integ) {
    if (enc.empty()) return errors_.Add(n, f + ".encryption", "at least one encryption algorithm is needed");
    bool classic = false;
    for (const auto& e : enc) classic = classic || !IsAead(e);
    if (classic && integ.empty()) {
      errors_.Add(n, f + ".integrity", "non-AEAD encryption (aes128, aes256, ...) needs an integrity algorithm");
    }
  }

  void Lifetime(const YAML::Node& n, const std::string& f, v1::Lifetimes* out) {
    if (!CheckKeys(n, f, {"rekey_seconds", "hard_seconds", "soft_bytes", "hard_bytes", "soft_packets", "hard_packets",
                          "jitter_percent"})) {
      return;
    }
    constexpr uint64_t kU32 = 0xFFFFFFFFu, kU64 = ~uint64_t{0};
    if (n["rekey_seconds"]) out->set_rekey_seconds(Uint(n["rekey_seconds"], f + ".rekey_seconds", kU32).value_or(0));
    if (n["hard_seconds"]) out->set_hard_seconds(Uint(n["hard_seconds"], f + ".hard_seconds", kU32).value_or(0));
    if (n["soft_bytes"]) out->set_soft_bytes(Uint(n["soft_bytes"], f + ".soft_bytes", kU64).value_or(0));
    if (n["hard_bytes"]) out->set_hard_bytes(Uint(n["hard_bytes"], f + ".hard_bytes", kU64).value_or(0));
    if (n["soft_packets"]) out->set_soft_packets(Uint(n["soft_packets"], f + ".soft_packets", kU64).value_or(0));
    if (n["hard_packets"]) out->set_hard_packets(Uint(n["hard_packets"], f + ".hard_packets", kU64).value_or(0));
    if (n["jitter_percent"]) out->set_jitter_percent(Uint(n["jitter_percent"], f + ".jitter_percent", 50).value_or(0));
    if (out->hard_seconds() <= out->rekey_seconds()) {
      errors_.Add(n, f + ".hard_seconds", "must be greater than rekey_seconds");
    }
    if (out->hard_bytes() != 0 && out->soft_bytes() >= out->hard_bytes()) {
      errors_.Add(n, f + ".soft_bytes", "must be below hard_bytes");
    }
    if (out->hard_packets() != 0 && out->soft_packets() >= out->hard_packets()) {
      errors_.Add(n, f + ".soft_packets", "must be below hard_packets");
    }
  }

  TunnelOptions Options(const YAML::Node& n, const std::string& f, std::initializer_list<const char*> extra) {
    std::vector<const char*> keys = {"proposal", "mode", "auth", "start_action", "dpd", "family", "rotate_keys"};
    keys.insert(keys.end(), extra.begin(), extra.end());
    TunnelOptions o;
    if (!n.IsMap()) {
      errors_.Add(n, f, "expected a mapping");
      return o;
    }
    for (auto it = n.begin(); it != n.end(); ++it) {
      std::string key = it->first.IsScalar() ? it->first.Scalar() : "";
      if (std::find_if(keys.begin(), keys.end(), [&](const char* k) { return key == k; }) == keys.end()) {
        std::vector<std::string> names(keys.begin(), keys.end());
        errors_.Add(it->first, absl::StrCat(f, ".", key), absl::StrCat("unknown key (expected one of: ", absl::StrJoin(names, ", "), ")"));
      }
    }
    if (const YAML::Node v = n["proposal"]) {
      if (auto s = Str(v, f + ".proposal")) {
        if (!proposal_names_.count(*s)) errors_.Add(v, f + ".proposal", absl::StrCat("unknown proposal \"", *s, "\""));
        o.proposal = *s;
      }
    }
    if (const YAML::Node v = n["mode"]) {
      auto s = Str(v, f + ".mode");
      if (s == "tunnel") o.mode = v1::TUNNEL_MODE_TUNNEL;
      else if (s == "transport") o.mode = v1::TUNNEL_MODE_TRANSPORT;
      else if (s) errors_.Add(v, f + ".mode", "expected tunnel or transport");
    }
    if (const YAML::Node v = n["auth"]) {
      auto s = Str(v, f + ".auth");
      if (s == "certificate") o.auth = v1::AUTH_METHOD_CERTIFICATE;
      else if (s == "psk") o.auth = v1::AUTH_METHOD_PSK;
      else if (s == "static") o.auth = v1::AUTH_METHOD_STATIC;
      else if (s) errors_.Add(v, f + ".auth", "expected certificate, psk or static");
    }
    if (const YAML::Node v = n["start_action"]) {
      auto s = Str(v, f + ".start_action");
      if (s == "start") o.start_action = v1::START_ACTION_START;
      else if (s == "trap") o.start_action = v1::START_ACTION_TRAP;
      else if (s == "none") o.start_action = v1::START_ACTION_NONE;
      else if (s) errors_.Add(v, f + ".start_action", "expected start, trap or none");
    }
    if (const YAML::Node v = n["dpd"]) {
      if (CheckKeys(v, f + ".dpd", {"interval_seconds", "max_retries", "stale_child_seconds"})) {
        v1::DpdSettings d = DefaultDpd();
        if (v["interval_seconds"]) d.set_interval_seconds(Uint(v["interval_seconds"], f + ".dpd.interval_seconds", 86400).value_or(0));
        if (v["max_retries"]) d.set_max_retries(Uint(v["max_retries"], f + ".dpd.max_retries", 100).value_or(0));
        if (v["stale_child_seconds"]) d.set_stale_child_seconds(Uint(v["stale_child_seconds"], f + ".dpd.stale_child_seconds", 86400).value_or(0));
        o.dpd = d;
      }
    }
    if (const YAML::Node v = n["family"]) {
      auto s = Str(v, f + ".family");
      if (s == "ipv4" || s == "ipv6") o.family = *s;
      else if (s) errors_.Add(v, f + ".family", "expected ipv4 or ipv6");
    }
    if (const YAML::Node v = n["rotate_keys"]) o.rotate_keys = Bool(v, f + ".rotate_keys");
    return o;
  }

  static v1::DpdSettings DefaultDpd() {
    v1::DpdSettings d;
    d.set_interval_seconds(30);
    d.set_max_retries(3);
    d.set_stale_child_seconds(10);
    return d;
  }

  void Hosts(const YAML::Node& n) {
    if (!n.IsMap()) return errors_.Add(n, "hosts", "expected a mapping of host name: settings");
    for (auto it = n.begin(); it != n.end(); ++it) {
      std::string field = absl::StrCat("hosts.", it->first.IsScalar() ? it->first.Scalar() : "?");
      auto name = Name(it->first, field);
      if (!name) continue;
      HostEntry h;
      h.name = *name;
      h.mark = MarkOf(it->first);
      const YAML::Node v = it->second;
      if (!v.IsNull()) {
        if (!CheckKeys(v, field, {"labels", "subnets"})) continue;
        if (v["labels"]) h.labels = Labels(v["labels"], field + ".labels");
        if (v["subnets"]) h.subnets = Prefixes(v["subnets"], field + ".subnets");
      }
      if (!host_names_.insert(h.name).second) errors_.Add(it->first, field, "host listed twice");
      out_.hosts.push_back(std::move(h));
    }
  }

  void Peers(const YAML::Node& n) {
    if (!n.IsMap()) return errors_.Add(n, "external_peers", "expected a mapping of peer name: settings");
    for (auto it = n.begin(); it != n.end(); ++it) {
      std::string field = absl::StrCat("external_peers.", it->first.IsScalar() ? it->first.Scalar() : "?");
      auto name = Name(it->first, field);
      const YAML::Node v = it->second;
      if (!name || !CheckKeys(v, field, {"address", "identity", "auth", "psk", "subnets"})) continue;
      ExternalPeerEntry e;
      e.mark = MarkOf(it->first);
      e.peer.name = *name;
      if (!v["address"]) {
        errors_.Add(v, field + ".address", "required");
      } else if (auto a = Str(v["address"], field + ".address")) {
        auto p = policy::HostPrefix(*a);
        if (!p.ok()) errors_.Add(v["address"], field + ".address", p.status().message());
        e.peer.address = *a;
      }
      if (v["identity"]) {
        auto id = Str(v["identity"], field + ".identity").value_or("");
        if (!(id.starts_with("fqdn:") || id.starts_with("ip:") || id.starts_with("dn:"))) {
          errors_.Add(v["identity"], field + ".identity", "expected fqdn:NAME, ip:ADDRESS or dn:DN");
        }
        e.peer.identity = id;
      }
      e.peer.auth = v1::AUTH_METHOD_CERTIFICATE;
      if (v["auth"]) {
        auto s = Str(v["auth"], field + ".auth");
        if (s == "psk") e.peer.auth = v1::AUTH_METHOD_PSK;
        else if (s != "certificate" && s) errors_.Add(v["auth"], field + ".auth", "expected certificate or psk");
      }
      if (v["psk"]) e.peer.psk = Str(v["psk"], field + ".psk").value_or("");
      if (e.peer.auth == v1::AUTH_METHOD_PSK && e.peer.psk.size() < 16) {
        errors_.Add(v, field + ".psk", "auth: psk needs a psk of at least 16 characters");
      }
      if (e.peer.auth != v1::AUTH_METHOD_PSK && !e.peer.psk.empty()) {
        errors_.Add(v["psk"], field + ".psk", "set only with auth: psk");
      }
      if (v["subnets"]) e.peer.subnets = Prefixes(v["subnets"], field + ".subnets");
      if (host_names_.count(e.peer.name)) errors_.Add(it->first, field, "a host has the same name");
      if (!peer_names_.insert(e.peer.name).second) errors_.Add(it->first, field, "external peer listed twice");
      out_.external_peers.push_back(std::move(e));
    }
  }

  void Tunnels(const YAML::Node& n) {
    if (!n.IsSequence()) return errors_.Add(n, "tunnels", "expected a list of tunnels");
    for (size_t i = 0; i < n.size(); ++i) {
      const YAML::Node& v = n[i];
      TunnelEntry t;
      t.field = absl::StrCat("tunnels[", i, "]");
      t.mark = MarkOf(v);
      t.options = Options(v, t.field, {"name", "ends", "subnets"});
      if (!v.IsMap()) continue;
      if (v["name"]) t.name = Name(v["name"], t.field + ".name").value_or("");
      if (!v["ends"]) {
        errors_.Add(v, t.field + ".ends", "required: the two ends, e.g. ends: [web1, db1]");
        continue;
      }
      std::vector<std::string> ends = StrList(v["ends"], t.field + ".ends");
      if (ends.size() != 2) {
        errors_.Add(v["ends"], t.field + ".ends", "expected exactly two names");
        continue;
      }
      t.a = ends[0];
      t.b = ends[1];
      if (t.a == t.b) errors_.Add(v["ends"], t.field + ".ends", "a tunnel needs two different ends");
      if (const YAML::Node s = v["subnets"]) {
        if (!s.IsMap()) {
          errors_.Add(s, t.field + ".subnets", "expected a mapping of end name: [prefixes]");
        } else {
          for (auto it = s.begin(); it != s.end(); ++it) {
            std::string end = it->first.IsScalar() ? it->first.Scalar() : "";
            if (end != t.a && end != t.b) {
              errors_.Add(it->first, t.field + ".subnets." + end, "not one of the tunnel's ends");
              continue;
            }
            t.subnets[end] = Prefixes(it->second, t.field + ".subnets." + end);
          }
        }
      }
      out_.tunnels.push_back(std::move(t));
    }
  }

  HostSelector Selector(const YAML::Node& n, const std::string& f) {
    HostSelector s;
    if (n.IsMap()) {
      s.labels = Labels(n, f);
      if (s.labels.empty()) errors_.Add(n, f, "an empty selector would match every host; list labels");
    } else {
      s.by_names = true;
      s.names = StrList(n, f);
    }
    return s;
  }

  void Meshes(const YAML::Node& n) {
    if (!n.IsSequence()) return errors_.Add(n, "meshes", "expected a list of meshes");
    for (size_t i = 0; i < n.size(); ++i) {
      const YAML::Node& v = n[i];
      MeshEntry m;
      m.field = absl::StrCat("meshes[", i, "]");
      m.mark = MarkOf(v);
      m.options = Options(v, m.field, {"name", "select"});
      if (!v.IsMap()) continue;
      m.name = v["name"] ? Name(v["name"], m.field + ".name").value_or("") : absl::StrCat("mesh", i);
      if (!v["select"]) {
        errors_.Add(v, m.field + ".select", "required: a label selector like {site: fra} or a list of hosts");
        continue;
      }
      m.select = Selector(v["select"], m.field + ".select");
      out_.meshes.push_back(std::move(m));
    }
  }

  void Hubs(const YAML::Node& n) {
    if (!n.IsSequence()) return errors_.Add(n, "hubs", "expected a list of hubs");
    for (size_t i = 0; i < n.size(); ++i) {
      const YAML::Node& v = n[i];
      HubEntry h;
      h.field = absl::StrCat("hubs[", i, "]");
      h.mark = MarkOf(v);
      h.options = Options(v, h.field, {"name", "hub", "spokes"});
      if (!v.IsMap()) continue;
      h.name = v["name"] ? Name(v["name"], h.field + ".name").value_or("") : absl::StrCat("hub", i);
      if (!v["hub"] || !v["spokes"]) {
        errors_.Add(v, h.field, "hub: and spokes: are both required");
        continue;
      }
      h.hub = Str(v["hub"], h.field + ".hub").value_or("");
      h.spokes = Selector(v["spokes"], h.field + ".spokes");
      out_.hubs.push_back(std::move(h));
    }
  }

  // "tcp", "udp", "icmp", "icmpv6", "any" or a number.
  std::optional<uint32_t> Protocol(const YAML::Node& n, const std::string& f) {
    auto s = Str(n, f);
    if (!s) return std::nullopt;
    static const std::map<std::string, uint32_t> names = {{"any", 0}, {"icmp", 1}, {"tcp", 6}, {"udp", 17}, {"icmpv6", 58}};
    if (auto it = names.find(*s); it != names.end()) return it->second;
    uint32_t v = 0;
    if (absl::SimpleAtoi(*s, &v) && v <= 255) return v;
    errors_.Add(n, f, "expected tcp, udp, icmp, icmpv6, any or a protocol number");
    return std::nullopt;
  }

  // "443" or "8000-8100".
  void Ports(const YAML::Node& n, const std::string& f, policy::Selector* sel) {
    auto s = Str(n, f);
    if (!s) return;
    std::vector<std::string> parts = absl::StrSplit(*s, '-');
    uint32_t from = 0, to = 0;
    bool ok = parts.size() <= 2 && absl::SimpleAtoi(parts[0], &from) &&
              absl::SimpleAtoi(parts.size() == 2 ? parts[1] : parts[0], &to) && from <= to && to <= 65535;
    if (!ok) return errors_.Add(n, f, "expected a port or a range like 8000-8100");
    sel->port_from = from;
    sel->port_to = to;
  }

  void Bypass(const YAML::Node& n) {
    if (!n.IsSequence()) return errors_.Add(n, "bypass", "expected a list of exemptions");
    for (size_t i = 0; i < n.size(); ++i) {
      const YAML::Node& v = n[i];
      std::string f = absl::StrCat("bypass[", i, "]");
      if (!CheckKeys(v, f, {"reason", "remote", "protocol", "ports", "local", "local_ports", "action"})) continue;
      BypassEntry b;
      b.mark = MarkOf(v);
      b.exemption.reason = v["reason"] ? Str(v["reason"], f + ".reason").value_or("") : absl::StrCat("exemption", i);
      if (!v["remote"]) {
        errors_.Add(v, f + ".remote", "required: the remote prefix, e.g. 10.0.0.5/32");
        continue;
      }
      if (auto r = Str(v["remote"], f + ".remote")) {
        auto p = policy::ParsePrefix(*r);
        if (!p.ok()) errors_.Add(v["remote"], f + ".remote", p.status().message());
        b.exemption.remote.cidr = *r;
      }
      uint32_t proto = 0;
      if (v["protocol"]) proto = Protocol(v["protocol"], f + ".protocol").value_or(0);
      b.exemption.remote.protocol = proto;
      if (v["ports"]) {
        if (proto != 6 && proto != 17) errors_.Add(v["ports"], f + ".ports", "ports need protocol tcp or udp");
        Ports(v["ports"], f + ".ports", &b.exemption.remote);
      }
      if (v["local"]) {
        policy::Selector local;
        local.protocol = proto;
        if (auto l = Str(v["local"], f + ".local")) {
          auto p = policy::ParsePrefix(*l);
          if (!p.ok()) errors_.Add(v["local"], f + ".local", p.status().message());
          local.cidr = *l;
        }
        if (v["local_ports"]) Ports(v["local_ports"], f + ".local_ports", &local);
        b.exemption.local = local;
      } else if (v["local_ports"]) {
        errors_.Add(v["local_ports"], f + ".local_ports", "needs local:");
      }
      if (v["action"]) {
        auto a = Str(v["action"], f + ".action");
        if (a == "allow") b.exemption.action = v1::BYPASS_ACTION_ALLOW;
        else if (a == "block") b.exemption.action = v1::BYPASS_ACTION_BLOCK;
        else if (a) errors_.Add(v["action"], f + ".action", "expected allow or block");
      }
      out_.bypass.push_back(std::move(b));
    }
  }

  Errors errors_;
  FleetFile out_;
  std::set<std::string> proposal_names_, host_names_, peer_names_;
};

}  // namespace

v1::Proposal BuiltinDefaultProposal() {
  v1::Proposal p;
  p.set_name("default");
  p.mutable_ike()->add_encryption("aes128gcm16");
  p.mutable_ike()->add_prf("prfsha256");
  p.mutable_ike()->add_dh_groups("curve25519");
  p.mutable_esp()->add_encryption("aes128gcm16");
  p.set_pfs(true);
  p.mutable_ike_lifetime()->set_rekey_seconds(14400);
  p.mutable_ike_lifetime()->set_hard_seconds(15840);
  p.mutable_ike_lifetime()->set_jitter_percent(10);
  p.mutable_child_lifetime()->set_rekey_seconds(3600);
  p.mutable_child_lifetime()->set_hard_seconds(3960);
  p.mutable_child_lifetime()->set_jitter_percent(10);
  return p;
}

absl::StatusOr<FleetFile> ParseFleetFile(absl::string_view yaml, absl::string_view file_name) {
  return Parser(std::string(file_name.empty() ? "fleet.yaml" : file_name)).Run(yaml);
}

}  // namespace ipfleet::fleet
