// The pure compiler: determinism, mirrored ends, bypass rules, controller-capture refusal, static keys.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <random>

#include "ipfleet/fleet/expand.h"
#include "ipfleet/fleet/fleet_file.h"
#include "ipfleet/policy/compiler.h"
#include "snapshot_from_yaml.h"

namespace ipfleet::policy {
namespace {

Host MakeHost(std::string name, std::vector<std::string> addrs, std::map<std::string, std::string> labels = {}) {
  Host h;
  h.name = std::move(name);
  h.addresses = std::move(addrs);
  h.labels = std::move(labels);
  return h;
}

// A snapshot from YAML plus a small inventory, as the apply path builds it.
InventorySnapshot FromYaml(const std::string& yaml, uint64_t generation = 1) {
  std::vector<Host> hosts = {
      MakeHost("web1", {"192.0.2.11", "2001:db8::11"}, {{"site", "fra"}}),
      MakeHost("web2", {"192.0.2.12", "2001:db8::12"}, {{"site", "fra"}}),
      MakeHost("db1", {"192.0.2.21"}, {{"site", "fra"}}),
      MakeHost("lonely", {"192.0.2.99"}, {{"site", "nowhere"}}),
  };
  return SnapshotFromYaml(yaml, hosts, generation, 1700000000);
}

const char* kMeshYaml =
    "hosts:\n"
    "  db1: {subnets: [10.21.0.0/16]}\n"
    "  web1: {subnets: [10.11.0.0/16, 10.12.0.0/16]}\n"
    "meshes:\n"
    "  - select: {site: fra}\n"
    "bypass:\n"
    "  - {reason: monitoring, remote: 10.0.0.5/32, protocol: udp, ports: 161}\n";

std::map<std::string, std::string> Serialized(const CompileResult& r) {
  std::map<std::string, std::string> out;
  for (const auto& [h, b] : r.bundles) out[h] = SerializeDeterministic(b);
  return out;
}

const v1::TunnelSpec* Find(const v1::PolicyBundle& b, const std::string& name) {
  for (const auto& t : b.tunnels()) {
    if (t.name() == name) return &t;
  }
  return nullptr;
}

TEST(Compiler, SameInventorySameBytesWhateverTheInputOrder) {
  InventorySnapshot s = FromYaml(kMeshYaml);
  DeterministicKeySource k1(7), k2(7);
  auto r1 = Compile(s, k1);
  ASSERT_TRUE(r1.ok()) << r1.status();
  std::mt19937 rng(42);
  std::shuffle(s.hosts.begin(), s.hosts.end(), rng);
  std::shuffle(s.tunnels.begin(), s.tunnels.end(), rng);
  auto r2 = Compile(s, k2);
  ASSERT_TRUE(r2.ok()) << r2.status();
  EXPECT_EQ(Serialized(*r1), Serialized(*r2));
  EXPECT_EQ(r1->bundles.size(), 4u);
}

TEST(Compiler, BothEndsMirroredFromTheSameProposal) {
  DeterministicKeySource keys(1);
  auto r = Compile(FromYaml(kMeshYaml), keys);
  ASSERT_TRUE(r.ok()) << r.status();
  const v1::TunnelSpec* a = Find(r->bundles.at("db1"), "db1--web1");
  const v1::TunnelSpec* b = Find(r->bundles.at("web1"), "db1--web1");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(SerializeDeterministic(a->proposal()), SerializeDeterministic(b->proposal()));
  EXPECT_EQ(SerializeDeterministic(a->local()), SerializeDeterministic(b->remote()));
  EXPECT_EQ(SerializeDeterministic(a->remote()), SerializeDeterministic(b->local()));
  EXPECT_EQ(a->local().host(), "db1");
  EXPECT_EQ(a->local().subnets(0).cidr(), "10.21.0.0/16");
  ASSERT_EQ(a->remote().subnets_size(), 2);
  EXPECT_EQ(a->remote().subnets(1).cidr(), "10.12.0.0/16");
  EXPECT_EQ(a->reqid(), b->reqid());
  EXPECT_GE(a->reqid(), kReqidBase);
  EXPECT_LT(a->reqid(), kReqidBase + kReqidSpan);
  // Exactly one initiator: the lower name.
  EXPECT_TRUE(a->initiator());
  EXPECT_FALSE(b->initiator());
  // Hosts without extra subnets protect their own address; IPv4 preferred when both have it.
  const v1::TunnelSpec* w = Find(r->bundles.at("web2"), "web1--web2");
  ASSERT_TRUE(w);
  EXPECT_EQ(w->local().subnets(0).cidr(), "192.0.2.12/32");
  EXPECT_EQ(w->local().address(), "192.0.2.12");
  EXPECT_EQ(w->remote().address(), "192.0.2.11");
}

TEST(Compiler, ReqidsAreUniqueAcrossTheFleet) {
  DeterministicKeySource keys(1);
  auto r = Compile(FromYaml(kMeshYaml), keys);
  ASSERT_TRUE(r.ok());
  std::map<std::string, uint32_t> by_tunnel;
  std::set<uint32_t> seen;
  for (const auto& [h, b] : r->bundles) {
    for (const auto& t : b.tunnels()) by_tunnel[t.name()] = t.reqid();
  }
  for (const auto& [n, id] : by_tunnel) EXPECT_TRUE(seen.insert(id).second) << n;
  EXPECT_EQ(by_tunnel.size(), 3u);
}

TEST(Compiler, BypassRulesAlwaysPresentAndBeforeProtection) {
  DeterministicKeySource keys(1);
  auto r = Compile(FromYaml(kMeshYaml), keys);
  ASSERT_TRUE(r.ok());
  for (const auto& [host, b] : r->bundles) {  // includes "lonely", which has no tunnel
    std::set<std::string> reasons;
    bool controller = false, nd = false, ike500 = false, ike4500 = false, operator_rule = false;
    for (const auto& rule : b.bypass()) {
      EXPECT_GE(rule.priority(), kBypassPriorityBase);
      EXPECT_LT(rule.priority(), kProtectPriorityFloor);
      EXPECT_EQ(rule.action(), v1::BYPASS_ACTION_ALLOW);
      if (rule.reason() == "controller" && rule.remote().cidr() == "192.0.2.250/32" && rule.remote().protocol() == 6 &&
          rule.remote().port_from() == 7443 && rule.remote().port_to() == 7443) {
        controller = true;
      }
      if (rule.reason() == "icmpv6-nd" && rule.remote().protocol() == 58 && rule.remote().port_from() == (133u << 8) &&
          rule.remote().port_to() == ((137u << 8) | 0xFF)) {
        nd = true;
      }
      if (rule.reason() == "ike" && rule.remote().protocol() == 17 && rule.remote().port_from() == 500) ike500 = true;
      if (rule.reason() == "ike" && rule.remote().protocol() == 17 && rule.remote().port_from() == 4500) ike4500 = true;
      if (rule.reason() == "monitoring" && rule.remote().cidr() == "10.0.0.5/32" && rule.remote().port_from() == 161) {
        operator_rule = true;
      }
    }
    EXPECT_TRUE(controller && nd && ike500 && ike4500 && operator_rule) << host;
    EXPECT_EQ(b.controller_address(), "192.0.2.250:7443");
    EXPECT_EQ(b.host(), host);
    EXPECT_EQ(b.generation(), 1u);
  }
  EXPECT_EQ(r->bundles.at("lonely").tunnels_size(), 0);
}

TEST(Compiler, RefusesSelectorsCapturingTheControllerAndNamesTheTunnel) {
  InventorySnapshot s = FromYaml(
      "hosts:\n  db1: {subnets: [192.0.2.0/24]}\n"
      "tunnels:\n  - {name: backhaul, ends: [web1, db1]}\n");
  DeterministicKeySource keys(1);
  auto r = Compile(s, keys);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  std::string msg(r.status().message());
  EXPECT_NE(msg.find("tunnel \"backhaul\""), std::string::npos) << msg;
  EXPECT_NE(msg.find("controller"), std::string::npos) << msg;
  EXPECT_NE(msg.find("192.0.2.250"), std::string::npos) << msg;

  // A transport tunnel to the host running the controller captures it as well.
  InventorySnapshot t = FromYaml("tunnels:\n  - {ends: [web1, web2], mode: transport}\n");
  t.controller.addresses = {"192.0.2.12"};
  auto r2 = Compile(t, keys);
  ASSERT_FALSE(r2.ok());
  EXPECT_NE(r2.status().message().find("web1--web2"), std::string::npos) << r2.status();

  // A block exemption covering the controller is refused too.
  InventorySnapshot b = FromYaml("bypass:\n  - {reason: no-mgmt, remote: 192.0.2.0/24, action: block}\n");
  auto r3 = Compile(b, keys);
  ASSERT_FALSE(r3.ok());
  EXPECT_NE(r3.status().message().find("no-mgmt"), std::string::npos) << r3.status();
}

TEST(Compiler, ExternalPeerGetsOneBundleEndAndPsk) {
  InventorySnapshot s = FromYaml(
      "external_peers:\n"
      "  r1: {address: 203.0.113.7, auth: psk, psk: 'correct horse battery staple', subnets: [10.99.0.0/16]}\n"
      "tunnels:\n  - ends: [r1, web1]\n");
  DeterministicKeySource keys(1);
  auto r = Compile(s, keys);
  ASSERT_TRUE(r.ok()) << r.status();
  const v1::TunnelSpec* t = Find(r->bundles.at("web1"), "r1--web1");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->remote().external_peer(), "r1");
  EXPECT_EQ(t->remote().identity(), "ip:203.0.113.7");
  EXPECT_EQ(t->auth(), v1::AUTH_METHOD_PSK);
  EXPECT_EQ(t->psk(), "correct horse battery staple");
  EXPECT_TRUE(t->initiator());
  EXPECT_EQ(t->remote().subnets(0).cidr(), "10.99.0.0/16");
}

TEST(Compiler, StaticKeysMirroredReusedAndRotatedOnRequest) {
  const char* yaml =
      "proposals:\n  cbc: {esp: {encryption: [aes256], integrity: [sha256]}}\n"
      "tunnels:\n"
      "  - {ends: [web1, web2], auth: static, proposal: cbc}\n"
      "  - {ends: [web1, db1], auth: static, rotate_keys: true}\n";
  InventorySnapshot g1 = FromYaml(yaml, 1);
  DeterministicKeySource keys(99);
  auto r1 = Compile(g1, keys);
  ASSERT_TRUE(r1.ok()) << r1.status();
  const v1::TunnelSpec* a = Find(r1->bundles.at("web1"), "web1--web2");
  const v1::TunnelSpec* b = Find(r1->bundles.at("web2"), "web1--web2");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->static_keys().outbound().encryption_key().size(), 32u);
  EXPECT_EQ(a->static_keys().outbound().integrity_key().size(), 32u);
  EXPECT_EQ(SerializeDeterministic(a->static_keys().outbound()), SerializeDeterministic(b->static_keys().inbound()));
  EXPECT_EQ(SerializeDeterministic(a->static_keys().inbound()), SerializeDeterministic(b->static_keys().outbound()));
  EXPECT_NE(a->static_keys().outbound().encryption_key(), a->static_keys().inbound().encryption_key());
  const v1::TunnelSpec* gcm = Find(r1->bundles.at("db1"), "db1--web1");
  ASSERT_TRUE(gcm);
  EXPECT_EQ(gcm->static_keys().outbound().encryption_key().size(), 20u);  // AES-128-GCM key + salt
  EXPECT_TRUE(gcm->static_keys().outbound().integrity_key().empty());

  // Generation 2 with the keys persisted: the plain tunnel keeps its keys, the rotating one gets new ones.
  InventorySnapshot g2 = FromYaml(yaml, 2);
  g2.static_keys = r1->static_keys;
  auto r2 = Compile(g2, keys);
  ASSERT_TRUE(r2.ok()) << r2.status();
  EXPECT_EQ(r2->static_keys.at("web1--web2").key_generation, 1u);
  EXPECT_EQ(r2->static_keys.at("web1--web2").a_to_b.encryption_key(), r1->static_keys.at("web1--web2").a_to_b.encryption_key());
  EXPECT_EQ(r2->static_keys.at("db1--web1").key_generation, 2u);
  EXPECT_NE(r2->static_keys.at("db1--web1").a_to_b.encryption_key(), r1->static_keys.at("db1--web1").a_to_b.encryption_key());

  // Compiling generation 2 again from its own keys changes nothing (rollout re-compiles an applied generation).
  InventorySnapshot again = FromYaml(yaml, 2);
  again.static_keys = r2->static_keys;
  DeterministicKeySource other(12345);
  auto r3 = Compile(again, other);
  ASSERT_TRUE(r3.ok());
  EXPECT_EQ(Serialized(*r2), Serialized(*r3));
}

TEST(Compiler, StaticKeysToAnExternalPeerAreRefused) {
  InventorySnapshot s = FromYaml("tunnels:\n  - {ends: [web1, web2], auth: static}\n");
  s.external_peers.push_back(ExternalPeer{"r1", "203.0.113.7", "", v1::AUTH_METHOD_CERTIFICATE, "", {}});
  Tunnel t = s.tunnels[0];
  t.name = "x";
  t.b = {"r1", true, {}};
  s.tunnels.push_back(t);
  DeterministicKeySource keys(1);
  auto r = Compile(s, keys);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("static keys need ipfleet hosts"), std::string::npos) << r.status();
}

TEST(Compiler, Ipv6OnlyPairUsesIpv6) {
  InventorySnapshot s = FromYaml("tunnels:\n  - {ends: [web1, web2], family: ipv6}\n");
  DeterministicKeySource keys(1);
  auto r = Compile(s, keys);
  ASSERT_TRUE(r.ok()) << r.status();
  const v1::TunnelSpec* t = Find(r->bundles.at("web1"), "web1--web2");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->local().address(), "2001:db8::11");
  EXPECT_EQ(t->remote().subnets(0).cidr(), "2001:db8::12/128");
  EXPECT_EQ(t->local().identity(), "ip:2001:db8::11");

  InventorySnapshot bad = FromYaml("tunnels:\n  - {ends: [web1, db1], family: ipv6}\n");
  auto r2 = Compile(bad, keys);
  ASSERT_FALSE(r2.ok());
  EXPECT_NE(r2.status().message().find("db1 has no IPv6 address"), std::string::npos) << r2.status();
}

TEST(Compiler, DocumentedExampleFleetCompiles) {
  std::ifstream in(IPFLEET_EXAMPLE_FLEET);
  std::stringstream text;
  text << in.rdbuf();
  ASSERT_FALSE(text.str().empty());
  auto f = fleet::ParseFleetFile(text.str(), "deploy/examples/fleet.yaml");
  ASSERT_TRUE(f.ok()) << f.status();
  std::vector<Host> hosts;
  int i = 10;
  for (const char* n : {"web1", "web2", "db1", "gw-ber", "gw-fra", "sensor1"}) {
    hosts.push_back(MakeHost(n, {"192.0.2." + std::to_string(i++)}));
  }
  auto s = fleet::Expand(*f, hosts);
  ASSERT_TRUE(s.ok()) << s.status();
  s->generation = 1;
  s->controller = {{"192.0.2.250"}, 7443};
  DeterministicKeySource keys(3);
  auto r = Compile(*s, keys);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->bundles.size(), 6u);
  const v1::TunnelSpec* st = Find(r->bundles.at("db1"), "db1--gw-ber");
  ASSERT_TRUE(st);
  EXPECT_EQ(st->auth(), v1::AUTH_METHOD_STATIC);
  EXPECT_EQ(st->static_keys().outbound().encryption_key().size(), 32u);
  const v1::TunnelSpec* psk = Find(r->bundles.at("gw-fra"), "gw-fra--old-firewall");
  ASSERT_TRUE(psk);
  EXPECT_EQ(psk->auth(), v1::AUTH_METHOD_PSK);
  const v1::TunnelSpec* up = Find(r->bundles.at("gw-ber"), "sensor-uplink");
  ASSERT_TRUE(up);
  EXPECT_EQ(up->local().subnets(0).cidr(), "10.40.1.0/24");
  EXPECT_EQ(up->start_action(), v1::START_ACTION_TRAP);
  EXPECT_EQ(Find(r->bundles.at("web1"), "web1--web2")->mode(), v1::TUNNEL_MODE_TRANSPORT);
}

}  // namespace
}  // namespace ipfleet::policy
