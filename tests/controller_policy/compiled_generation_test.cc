// CompileEach (one host's bundle at a time), CompiledGeneration built from it, and apply's diff
// computed host by host on the bytes.
#include <gtest/gtest.h>

#include "ipfleet/fleet/generation.h"
#include "ipfleet/policy/compiled_generation.h"
#include "ipfleet/policy/compiler.h"
#include "snapshot_from_yaml.h"

namespace ipfleet::policy {
namespace {

InventorySnapshot FromYaml(const std::string& yaml, uint64_t generation = 1) {
  auto host = [](std::string name, std::string addr, std::string site = "fra") {
    Host h;
    h.name = std::move(name);
    h.addresses = {std::move(addr)};
    h.labels = {{"site", std::move(site)}};
    return h;
  };
  std::vector<Host> hosts = {host("web2", "192.0.2.12"), host("db1", "192.0.2.21"), host("web1", "192.0.2.11"),
                             host("lonely", "192.0.2.99", "nowhere")};
  return SnapshotFromYaml(yaml, hosts, generation, 1700000000 + static_cast<int64_t>(generation));
}

const char* kMesh =
    "hosts:\n  web1: {subnets: [10.11.0.0/16]}\n"
    "meshes:\n  - select: {site: fra}\n"
    "tunnels:\n  - {name: keyed, ends: [web1, lonely], auth: static}\n";

CompiledGeneration CompileOk(const InventorySnapshot& s, std::map<std::string, StaticKeyMaterial>* static_keys = nullptr) {
  DeterministicKeySource keys(3);
  auto g = CompiledGeneration::Compile(s, keys, static_keys);
  EXPECT_TRUE(g.ok()) << g.status();
  return g.ok() ? std::move(*g) : CompiledGeneration{};
}

TEST(CompileEach, HandsOutBundlesInHostOrderWithTheBytesOfCompile) {
  InventorySnapshot s = FromYaml(kMesh);
  DeterministicKeySource k1(5), k2(5);
  auto whole = Compile(s, k1);
  ASSERT_TRUE(whole.ok()) << whole.status();
  std::vector<std::string> order;
  std::map<std::string, std::string> bytes;
  auto keys = CompileEach(s, k2, [&](const std::string& host, const v1::PolicyBundle& b) {
    order.push_back(host);
    bytes[host] = SerializeDeterministic(b);
    return absl::OkStatus();
  });
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_EQ(order, (std::vector<std::string>{"db1", "lonely", "web1", "web2"}));
  ASSERT_EQ(bytes.size(), whole->bundles.size());
  for (const auto& [host, b] : whole->bundles) EXPECT_EQ(bytes[host], SerializeDeterministic(b)) << host;
  ASSERT_EQ(keys->size(), 1u);
  EXPECT_EQ(SerializeDeterministic(keys->at("keyed").a_to_b), SerializeDeterministic(whole->static_keys.at("keyed").a_to_b));
}

TEST(CompileEach, ARefusedSnapshotNeverReachesTheSink) {
  InventorySnapshot s = FromYaml("hosts:\n  db1: {subnets: [192.0.2.0/24]}\ntunnels:\n  - {name: grab, ends: [web1, db1]}\n");
  DeterministicKeySource keys(1);
  int calls = 0;
  auto r = CompileEach(s, keys, [&](const std::string&, const v1::PolicyBundle&) {
    ++calls;
    return absl::OkStatus();
  });
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition) << r.status();
  EXPECT_EQ(calls, 0);
}

TEST(CompileEach, ASinkErrorStopsTheCompile) {
  InventorySnapshot s = FromYaml(kMesh);
  DeterministicKeySource keys(1);
  int calls = 0;
  auto r = CompileEach(s, keys, [&](const std::string&, const v1::PolicyBundle&) {
    ++calls;
    return absl::ResourceExhaustedError("disk full");
  });
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(calls, 1);
}

TEST(CompiledGeneration, KeepsBytesAndTunnelPeers) {
  InventorySnapshot s = FromYaml(kMesh);
  CompiledGeneration g = CompileOk(s);
  DeterministicKeySource keys(3);
  auto whole = Compile(s, keys);
  ASSERT_TRUE(whole.ok());
  ASSERT_EQ(g.hosts.size(), 4u);
  for (const auto& [host, h] : g.hosts) EXPECT_EQ(h.bytes, SerializeDeterministic(whole->bundles.at(host))) << host;
  const auto& web1 = g.hosts.at("web1").tunnels;
  ASSERT_EQ(web1.size(), 3u);  // db1--web1, keyed, web1--web2
  EXPECT_EQ(web1[1].name, "keyed");
  EXPECT_EQ(web1[1].peer_host, "lonely");
  auto b = g.Bundle("web2");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->host(), "web2");
  EXPECT_EQ(g.Bundle("nobody").status().code(), absl::StatusCode::kNotFound);
}

// A hub's bundle outgrows the 1 MiB blocks the bytes are packed in; its spokes' bundles go on
// filling the current block around it.
TEST(CompiledGeneration, ABundleLargerThanABlockKeepsItsBytes) {
  InventorySnapshot s;
  s.generation = 1;
  s.controller = {{"192.0.2.250"}, 7443};
  s.proposals["default"] = fleet::BuiltinDefaultProposal();
  s.hosts.push_back({"hub", {"10.0.0.1"}, {}, {}, {}});
  for (int i = 0; i < 6000; ++i) {  // ~210 bytes per tunnel in the hub's bundle
    std::string name = "spoke" + std::to_string(10000 + i);
    s.hosts.push_back({name, {"10.1." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1)}, {}, {}, {}});
    Tunnel t;
    t.name = "hub--" + name;
    t.a = {"hub", false, {}};
    t.b = {name, false, {}};
    t.proposal = "default";
    t.origin = "test";
    s.tunnels.push_back(std::move(t));
  }
  DeterministicKeySource k1(1), k2(1);
  auto whole = Compile(s, k1);
  ASSERT_TRUE(whole.ok()) << whole.status();
  auto g = CompiledGeneration::Compile(s, k2);
  ASSERT_TRUE(g.ok()) << g.status();
  ASSERT_GT(SerializeDeterministic(whole->bundles.at("hub")).size(), size_t{1} << 20);
  ASSERT_EQ(g->hosts.size(), whole->bundles.size());
  for (const auto& [host, b] : whole->bundles) {
    EXPECT_EQ(g->hosts.at(host).bytes, SerializeDeterministic(b)) << host;
  }
  CompiledGeneration moved = std::move(*g);  // the bytes stay where they are
  EXPECT_EQ(moved.hosts.at("hub").bytes, SerializeDeterministic(whole->bundles.at("hub")));
}

TEST(FleetDiffOnBytes, FirstApplyAddsEverythingAndTouchesEveryHost) {
  auto d = fleet::Diff(CompiledGeneration{}, CompileOk(FromYaml(kMesh)));
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_EQ(d->tunnels.size(), 4u);  // three from the mesh, "keyed"
  for (const auto& t : d->tunnels) EXPECT_EQ(t.change, "add") << t.tunnel;
  EXPECT_EQ(d->affected_hosts, (std::vector<std::string>{"db1", "lonely", "web1", "web2"}));
}

TEST(FleetDiffOnBytes, ANewGenerationOfTheSameFileChangesNothing) {
  std::map<std::string, StaticKeyMaterial> keys;
  CompiledGeneration first = CompileOk(FromYaml(kMesh, 1), &keys);
  InventorySnapshot second = FromYaml(kMesh, 2);
  second.static_keys = keys;  // as apply carries them over
  auto d = fleet::Diff(first, CompileOk(second));
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(d->tunnels.empty());
  EXPECT_TRUE(d->affected_hosts.empty());
}

TEST(FleetDiffOnBytes, NamesChangedFieldsRemovedTunnelsAndTheHostsTouched) {
  const char* after =
      "hosts:\n  web1: {subnets: [10.99.0.0/16]}\n"
      "meshes:\n  - select: {site: fra}\n";
  auto d = fleet::Diff(CompileOk(FromYaml(kMesh, 1)), CompileOk(FromYaml(after, 2)));
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_EQ(d->tunnels.size(), 3u);
  EXPECT_EQ(d->tunnels[0].tunnel, "db1--web1");
  EXPECT_EQ(d->tunnels[0].change, "change");
  EXPECT_EQ(d->tunnels[0].detail, "subnets");
  EXPECT_EQ(d->tunnels[1].tunnel, "keyed");
  EXPECT_EQ(d->tunnels[1].change, "remove");
  EXPECT_EQ(d->tunnels[2].tunnel, "web1--web2");
  EXPECT_EQ(d->tunnels[2].detail, "subnets");
  EXPECT_EQ(d->affected_hosts, (std::vector<std::string>{"db1", "lonely", "web1", "web2"}));
}

}  // namespace
}  // namespace ipfleet::policy
