// An inventory snapshot from fleet YAML plus the given hosts, as the apply path builds it, with a
// fixed controller endpoint: the common set-up of the compiler tests.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "ipfleet/fleet/expand.h"
#include "ipfleet/fleet/fleet_file.h"
#include "ipfleet/policy/inventory.h"

namespace ipfleet::policy {

inline InventorySnapshot SnapshotFromYaml(const std::string& yaml, const std::vector<Host>& hosts,
                                          uint64_t generation, int64_t created_unix) {
  auto f = fleet::ParseFleetFile(yaml, "fleet.yaml");
  EXPECT_TRUE(f.ok()) << f.status();
  if (!f.ok()) return {};
  auto s = fleet::Expand(*f, hosts);
  EXPECT_TRUE(s.ok()) << s.status();
  if (!s.ok()) return {};
  s->generation = generation;
  s->created_unix = created_unix;
  s->controller.addresses = {"192.0.2.250"};
  s->controller.port = 7443;
  return *s;
}

}  // namespace ipfleet::policy
