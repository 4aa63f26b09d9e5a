// Fleet file parsing and expansion: errors name file, line and field; mesh and hub expansion.
#include <gtest/gtest.h>

#include "ipfleet/fleet/expand.h"
#include "ipfleet/fleet/fleet_file.h"

namespace ipfleet::fleet {
namespace {

std::vector<policy::Host> Hosts() {
  std::vector<policy::Host> h;
  auto add = [&](std::string name, std::string addr, std::map<std::string, std::string> labels) {
    policy::Host x;
    x.name = name;
    x.addresses = {addr};
    x.labels = labels;
    h.push_back(x);
  };
  add("web1", "192.0.2.11", {{"site", "fra"}, {"role", "web"}});
  add("web2", "192.0.2.12", {{"site", "fra"}, {"role", "web"}});
  add("db1", "192.0.2.21", {{"site", "fra"}, {"role", "db"}});
  add("ber1", "192.0.2.31", {{"site", "ber"}, {"role", "web"}});
  add("gw1", "192.0.2.1", {{"role", "gw"}});
  return h;
}

TEST(FleetFile, SyntaxErrorNamesFileAndLine) {
  auto f = ParseFleetFile("hosts:\n  web1:\n    labels: {a: b\n", "my.yaml");
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("my.yaml:"), std::string::npos) << f.status();
  EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(FleetFile, UnknownKeyNamesLineAndField) {
  auto f = ParseFleetFile("proposals:\n  fast:\n    ike:\n      encryption: [aes128gcm16]\n      prff: [prfsha256]\n",
                          "fleet.yaml");
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("fleet.yaml:5:7: proposals.fast.ike.prff: unknown key"), std::string::npos)
      << f.status();
}

TEST(FleetFile, UnknownProposalAndAlgorithmNameTheirLines) {
  const char* yaml =
      "proposals:\n"
      "  p1:\n"
      "    esp: {encryption: [aes999]}\n"
      "tunnels:\n"
      "  - ends: [web1, db1]\n"
      "    proposal: fast\n";
  auto f = ParseFleetFile(yaml, "fleet.yaml");
  ASSERT_FALSE(f.ok());
  std::string msg(f.status().message());
  EXPECT_NE(msg.find("fleet.yaml:3:24: proposals.p1.esp.encryption[0]: unknown algorithm \"aes999\""), std::string::npos) << msg;
  EXPECT_NE(msg.find("fleet.yaml:6:15: tunnels[0].proposal: unknown proposal \"fast\""), std::string::npos) << msg;
}

TEST(FleetFile, BadPrefixAndLifetimes) {
  const char* yaml =
      "hosts:\n"
      "  web1:\n"
      "    subnets: [10.1.0.5/24]\n"
      "proposals:\n"
      "  p:\n"
      "    child_lifetime: {rekey_seconds: 100, hard_seconds: 50}\n";
  auto f = ParseFleetFile(yaml, "f.yaml");
  ASSERT_FALSE(f.ok());
  std::string msg(f.status().message());
  EXPECT_NE(msg.find("f.yaml:3:15: hosts.web1.subnets[0]: \"10.1.0.5/24\" has host bits set"), std::string::npos) << msg;
  EXPECT_NE(msg.find("f.yaml:6:21: proposals.p.child_lifetime.hard_seconds: must be greater"), std::string::npos) << msg;
}

TEST(FleetFile, UnknownHostInTunnelNamesLineAfterExpansion) {
  auto f = ParseFleetFile("tunnels:\n  - ends: [web1, nosuch]\n", "fleet.yaml");
  ASSERT_TRUE(f.ok()) << f.status();
  auto s = Expand(*f, Hosts());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("fleet.yaml:2:5: tunnels[0].ends: \"nosuch\" is neither a host"), std::string::npos)
      << s.status();
}

TEST(FleetFile, HostNotInInventoryIsRefused) {
  auto f = ParseFleetFile("hosts:\n  web9:\n    labels: {site: fra}\n", "fleet.yaml");
  ASSERT_TRUE(f.ok()) << f.status();
  auto s = Expand(*f, Hosts());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("fleet.yaml:2:3: hosts.web9: not in the inventory"), std::string::npos) << s.status();
}

TEST(FleetFile, MeshExpandsToAllPairsOfTheSelector) {
  auto f = ParseFleetFile("meshes:\n  - name: fra\n    select: {site: fra}\n    mode: transport\n", "fleet.yaml");
  ASSERT_TRUE(f.ok()) << f.status();
  auto s = Expand(*f, Hosts());
  ASSERT_TRUE(s.ok()) << s.status();
  std::vector<std::string> names;
  for (const auto& t : s->tunnels) {
    names.push_back(t.name);
    EXPECT_EQ(t.mode, v1::TUNNEL_MODE_TRANSPORT);
    EXPECT_EQ(t.origin, "mesh fra");
  }
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"db1--web1", "db1--web2", "web1--web2"}));
}

TEST(FleetFile, FleetLabelsOverrideInventoryForSelection) {
  const char* yaml =
      "hosts:\n  ber1:\n    labels: {site: fra}\n"
      "meshes:\n  - select: {site: fra}\n";
  auto f = ParseFleetFile(yaml, "fleet.yaml");
  ASSERT_TRUE(f.ok()) << f.status();
  auto s = Expand(*f, Hosts());
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->tunnels.size(), 6u);  // 4 hosts at fra now
}

TEST(FleetFile, HubConnectsEachSpokeToTheHubOnly) {
  const char* yaml =
      "external_peers:\n"
      "  router1: {address: 203.0.113.5, identity: 'fqdn:router1.example', subnets: [10.9.0.0/16]}\n"
      "hubs:\n"
      "  - name: core\n"
      "    hub: gw1\n"
      "    spokes: [web1, ber1, router1]\n";
  auto f = ParseFleetFile(yaml, "fleet.yaml");
  ASSERT_TRUE(f.ok()) << f.status();
  auto s = Expand(*f, Hosts());
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->tunnels.size(), 3u);
  for (const auto& t : s->tunnels) {
    EXPECT_EQ(t.a.name, "gw1");
    EXPECT_EQ(t.origin, "hub core");
  }
  EXPECT_EQ(s->tunnels[1].b.name, "router1");  // spokes sorted: ber1, router1, web1
  EXPECT_TRUE(s->tunnels[1].b.external);
}

TEST(FleetFile, HubBySelectorSkipsTheHubItself) {
  auto f = ParseFleetFile("hubs:\n  - hub: web1\n    spokes: {role: web}\n", "fleet.yaml");
  ASSERT_TRUE(f.ok()) << f.status();
  auto s = Expand(*f, Hosts());
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->tunnels.size(), 2u);  // web2, ber1
  EXPECT_EQ(s->tunnels[0].name, "ber1--web1");
  EXPECT_EQ(s->tunnels[1].name, "web1--web2");
}

TEST(FleetFile, ExplicitTunnelWinsOverMeshAndDuplicatesAreRefused) {
  const char* yaml =
      "tunnels:\n"
      "  - ends: [web2, web1]\n"
      "    mode: transport\n"
      "meshes:\n"
      "  - select: {role: web}\n";
  auto f = ParseFleetFile(yaml, "fleet.yaml");
  ASSERT_TRUE(f.ok()) << f.status();
  auto s = Expand(*f, Hosts());
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->tunnels.size(), 3u);
  EXPECT_EQ(s->tunnels[0].name, "web1--web2");
  EXPECT_EQ(s->tunnels[0].mode, v1::TUNNEL_MODE_TRANSPORT);

  auto dup = ParseFleetFile("tunnels:\n  - ends: [web1, web2]\n  - ends: [web2, web1]\n", "fleet.yaml");
  ASSERT_TRUE(dup.ok());
  auto d = Expand(*dup, Hosts());
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("fleet.yaml:3:5: tunnels[1]: the pair web1/web2 already has a tunnel"), std::string::npos)
      << d.status();
}

TEST(FleetFile, PskPeerDefaultsTunnelAuthToPsk) {
  const char* yaml =
      "external_peers:\n"
      "  r1: {address: 203.0.113.7, auth: psk, psk: 'correct horse battery staple'}\n"
      "tunnels:\n  - ends: [web1, r1]\n";
  auto f = ParseFleetFile(yaml, "fleet.yaml");
  ASSERT_TRUE(f.ok()) << f.status();
  auto s = Expand(*f, Hosts());
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->tunnels[0].auth, v1::AUTH_METHOD_PSK);
}

}  // namespace
}  // namespace ipfleet::fleet
