#include "ipfleet/fleet/generation.h"

#include <optional>
#include <string_view>

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

// Tunnel name -> the first host (in name order) whose bundle has it: the end a tunnel is compared
// from. Views into the compiled generation, not copies.
std::map<std::string_view, const std::string*> FirstEnds(const policy::CompiledGeneration& g) {
  std::map<std::string_view, const std::string*> out;
  for (const auto& [host, h] : g.hosts) {
    for (const auto& t : h.tunnels) out.emplace(t.name, &host);
  }
  return out;
}

const v1::TunnelSpec* FindTunnel(const v1::PolicyBundle& b, const std::string& name) {
  for (const auto& t : b.tunnels()) {
    if (t.name() == name) return &t;
  }
  return nullptr;
}

}  // namespace

// Host by host, so only one host's bundles exist as trees at a time (the whole generation as trees
// was ~150 MiB at 10,000 hosts).
absl::StatusOr<FleetDiff> Diff(const policy::CompiledGeneration& before, const policy::CompiledGeneration& after) {
  FleetDiff d;
  const auto old_t = FirstEnds(before), new_t = FirstEnds(after);
  for (const auto& [name, host] : new_t) {
    if (!old_t.count(name)) d.tunnels.push_back({"add", std::string(name), ""});
  }
  for (const auto& [name, host] : old_t) {
    if (!new_t.count(name)) d.tunnels.push_back({"remove", std::string(name), ""});
  }
  for (const auto& [host, h] : after.hosts) {
    IPFLEET_ASSIGN_OR_RETURN(v1::PolicyBundle now, after.Bundle(host));
    std::optional<v1::PolicyBundle> prev;
    if (auto it = before.hosts.find(host); it != before.hosts.end()) {
      IPFLEET_ASSIGN_OR_RETURN(prev, before.Bundle(host));
      if (it->second.bytes != h.bytes && Content(*prev) != Content(now)) d.affected_hosts.push_back(host);
    } else {
      d.affected_hosts.push_back(host);
    }
    for (const auto& t : now.tunnels()) {
      if (new_t.at(t.name()) != &host) continue;  // compared once, from its first end
      auto old_end = old_t.find(t.name());
      if (old_end == old_t.end()) continue;  // added
      // Compare from the same end: this host's previous spec when it had the tunnel, else the
      // spec from the tunnel's first end before.
      const v1::TunnelSpec* was = prev ? FindTunnel(*prev, t.name()) : nullptr;
      v1::PolicyBundle other;
      if (was == nullptr) {
        IPFLEET_ASSIGN_OR_RETURN(other, before.Bundle(*old_end->second));
        was = FindTunnel(other, t.name());
      }
      if (was == nullptr) return absl::InternalError(absl::StrCat("tunnel ", t.name(), " missing from its bundle"));
      std::string what = WhatChanged(*was, t);
      if (!what.empty()) d.tunnels.push_back({"change", t.name(), what});
    }
  }
  for (const auto& [host, h] : before.hosts) {
    if (!after.hosts.count(host)) d.affected_hosts.push_back(host);
  }
  std::sort(d.tunnels.begin(), d.tunnels.end(), [](const TunnelDiff& x, const TunnelDiff& y) { return x.tunnel < y.tunnel; });
  std::sort(d.affected_hosts.begin(), d.affected_hosts.end());
  return d;
}

}  // namespace ipfleet::fleet
