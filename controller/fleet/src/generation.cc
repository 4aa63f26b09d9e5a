#include "ipfleet/fleet/generation.h"

#include <absl/strings/escaping.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_join.h>
#include <nlohmann/json.hpp>

#include "ipfleet/fleet/expand.h"
#include "ipfleet/fleet/fleet_file.h"

namespace ipfleet::fleet {
namespace {

using nlohmann::json;

json KeysToJson(const v1::StaticSaKeys& k) {
  return json{{"spi", k.spi()},
              {"enc", absl::Base64Escape(k.encryption_key())},
              {"integ", absl::Base64Escape(k.integrity_key())}};
}

bool KeysFromJson(const json& j, v1::StaticSaKeys* k) {
  std::string enc, integ;
  if (!absl::Base64Unescape(j.at("enc").get<std::string>(), &enc) ||
      !absl::Base64Unescape(j.at("integ").get<std::string>(), &integ)) {
    return false;
  }
  k->set_spi(j.at("spi").get<uint32_t>());
  k->set_encryption_key(enc);
  k->set_integrity_key(integ);
  return true;
}

}  // namespace

std::string EncodeGeneration(const GenerationRecord& r) {
  json j;
  j["format"] = 1;
  j["file_name"] = r.file_name;
  j["yaml"] = r.yaml;
  j["created_unix"] = r.created_unix;
  json hosts = json::array();
  for (const policy::Host& h : r.hosts) {
    hosts.push_back(json{{"name", h.name}, {"addresses", h.addresses}, {"dns_names", h.dns_names}, {"labels", h.labels}});
  }
  j["hosts"] = std::move(hosts);
  json keys = json::object();
  for (const auto& [name, m] : r.static_keys) {
    keys[name] = json{{"key_generation", m.key_generation}, {"a_to_b", KeysToJson(m.a_to_b)}, {"b_to_a", KeysToJson(m.b_to_a)}};
  }
  j["static_keys"] = std::move(keys);
  return j.dump();
}

absl::StatusOr<GenerationRecord> DecodeGeneration(const std::string& bytes) {
  // nlohmann throws on malformed input; nothing escapes this function.
  try {
    json j = json::parse(bytes);
    if (j.at("format").get<int>() != 1) return absl::InvalidArgumentError("generation record: unknown format");
    GenerationRecord r;
    r.file_name = j.at("file_name").get<std::string>();
    r.yaml = j.at("yaml").get<std::string>();
    r.created_unix = j.at("created_unix").get<int64_t>();
    for (const json& h : j.at("hosts")) {
      policy::Host host;
      host.name = h.at("name").get<std::string>();
      host.addresses = h.at("addresses").get<std::vector<std::string>>();
      host.dns_names = h.at("dns_names").get<std::vector<std::string>>();
      host.labels = h.at("labels").get<std::map<std::string, std::string>>();
      r.hosts.push_back(std::move(host));
    }
    for (const auto& [name, k] : j.at("static_keys").items()) {
      policy::StaticKeyMaterial m;
      m.key_generation = k.at("key_generation").get<uint64_t>();
      if (!KeysFromJson(k.at("a_to_b"), &m.a_to_b) || !KeysFromJson(k.at("b_to_a"), &m.b_to_a)) {
        return absl::InvalidArgumentError(absl::StrCat("generation record: bad key encoding for tunnel ", name));
      }
      r.static_keys[name] = std::move(m);
    }
    return r;
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("generation record: ", e.what()));
  }
}

absl::StatusOr<policy::InventorySnapshot> SnapshotOf(const GenerationRecord& record, uint64_t generation,
                                                     const policy::ControllerEndpoint& controller) {
  IPFLEET_ASSIGN_OR_RETURN(FleetFile file, ParseFleetFile(record.yaml, record.file_name));
  IPFLEET_ASSIGN_OR_RETURN(policy::InventorySnapshot snap, Expand(file, record.hosts));
  snap.generation = generation;
  snap.created_unix = record.created_unix;
  snap.controller = controller;
  snap.static_keys = record.static_keys;
  return snap;
}

namespace {

// Bundle content without what changes on every generation anyway.
std::string Content(v1::PolicyBundle b) {
  b.clear_generation();
  b.clear_created_unix();
  return policy::SerializeDeterministic(b);
}

// Which parts of a tunnel differ, as seen from the same end.
std::string WhatChanged(const v1::TunnelSpec& x, const v1::TunnelSpec& y) {
  using policy::SerializeDeterministic;
  std::vector<std::string> parts;
  if (SerializeDeterministic(x.proposal()) != SerializeDeterministic(y.proposal())) parts.push_back("proposal");
  auto subnets = [](const v1::TunnelSpec& t) {
    v1::TunnelSpec s;
    *s.mutable_local()->mutable_subnets() = t.local().subnets();
    *s.mutable_remote()->mutable_subnets() = t.remote().subnets();
    return SerializeDeterministic(s);
  };
  if (subnets(x) != subnets(y)) parts.push_back("subnets");
  if (x.local().address() != y.local().address() || x.remote().address() != y.remote().address()) parts.push_back("addresses");
  if (x.local().identity() != y.local().identity() || x.remote().identity() != y.remote().identity()) parts.push_back("identity");
  if (x.mode() != y.mode()) parts.push_back("mode");
  if (x.auth() != y.auth() || x.psk() != y.psk()) parts.push_back("auth");
  if (SerializeDeterministic(x.dpd()) != SerializeDeterministic(y.dpd())) parts.push_back("dpd");
  if (x.start_action() != y.start_action()) parts.push_back("start_action");
  if (SerializeDeterministic(x.static_keys()) != SerializeDeterministic(y.static_keys())) parts.push_back("keys");
  if (x.reqid() != y.reqid()) parts.push_back("reqid");
  if (x.initiator() != y.initiator()) parts.push_back("initiator");
  return absl::StrJoin(parts, ",");
}

// Each tunnel as seen from its first host end (bundles iterate in host order). Pointers into the
// compile result, not copies: at 10,000 hosts copies were another ~50 MiB on top of apply's peak.
std::map<std::string, const v1::TunnelSpec*> Tunnels(const policy::CompileResult& r) {
  std::map<std::string, const v1::TunnelSpec*> out;
  for (const auto& [host, b] : r.bundles) {
    for (const auto& t : b.tunnels()) out.emplace(t.name(), &t);
  }
  return out;
}

}  // namespace

FleetDiff Diff(const policy::CompileResult& before, const policy::CompileResult& after) {
  FleetDiff d;
  auto old_t = Tunnels(before), new_t = Tunnels(after);
  for (const auto& [name, t] : new_t) {
    auto it = old_t.find(name);
    if (it == old_t.end()) {
      d.tunnels.push_back({"add", name, ""});
    } else {
      // Compare from the same end: the tunnel may have been seen from the other end before.
      const v1::TunnelSpec* prev = it->second;
      if (prev->local().host() != t->local().host()) {
        const auto& bundle = before.bundles.find(t->local().host());
        if (bundle != before.bundles.end()) {
          for (const auto& x : bundle->second.tunnels()) {
            if (x.name() == name) prev = &x;
          }
        }
      }
      std::string what = WhatChanged(*prev, *t);
      if (!what.empty()) d.tunnels.push_back({"change", name, what});
    }
  }
  for (const auto& [name, t] : old_t) {
    if (!new_t.count(name)) d.tunnels.push_back({"remove", name, ""});
  }
  std::sort(d.tunnels.begin(), d.tunnels.end(), [](const TunnelDiff& x, const TunnelDiff& y) { return x.tunnel < y.tunnel; });
  for (const auto& [host, b] : after.bundles) {
    auto it = before.bundles.find(host);
    if (it == before.bundles.end() || Content(it->second) != Content(b)) d.affected_hosts.push_back(host);
  }
  for (const auto& [host, b] : before.bundles) {
    if (!after.bundles.count(host)) d.affected_hosts.push_back(host);
  }
  std::sort(d.affected_hosts.begin(), d.affected_hosts.end());
  return d;
}

}  // namespace ipfleet::fleet
