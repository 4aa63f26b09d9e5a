// What one generation of the desired inventory is, frozen: the fleet document, the hosts it was
// expanded against, and the keys of its static-key tunnels. Stored as the opaque
// inventory::Generation.snapshot; recompiling a record always yields the same bundles, which is
// what lets a restarted controller resume a rollout and `rollback` re-send an old generation.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ipfleet/common/status.h"
#include "ipfleet/policy/compiled_generation.h"
#include "ipfleet/policy/compiler.h"
#include "ipfleet/policy/inventory.h"

namespace ipfleet::fleet {

struct GenerationRecord {
  std::string file_name;
  std::string yaml;
  int64_t created_unix = 0;
  std::vector<policy::Host> hosts;  // as known at apply time (labels before the file's overrides)
  std::map<std::string, policy::StaticKeyMaterial> static_keys;
};

// JSON with the key bytes base64-encoded. The record holds secrets (PSKs, static keys): it lives
// only in the controller's database, which sits in the 0700 data directory.
std::string EncodeGeneration(const GenerationRecord& record);
absl::StatusOr<GenerationRecord> DecodeGeneration(const std::string& bytes);

// Parse + expand + fill the controller endpoint and keys: the snapshot the compiler takes for
// `generation`.
absl::StatusOr<policy::InventorySnapshot> SnapshotOf(const GenerationRecord& record, uint64_t generation,
                                                     const policy::ControllerEndpoint& controller);

// Change of one tunnel between two compiled generations, for `apply --dry-run`.
struct TunnelDiff {
  std::string change;  // "add", "remove", "change"
  std::string tunnel;
  std::string detail;  // for "change": fields that differ ("proposal,subnets")
};

struct FleetDiff {
  std::vector<TunnelDiff> tunnels;      // sorted by tunnel name
  std::vector<std::string> affected_hosts;  // hosts whose bundle content differs (sorted)
};

// Compares two compiled generations; `before` may be empty (first apply). The generation number
// and creation time inside the bundles are ignored.
absl::StatusOr<FleetDiff> Diff(const policy::CompiledGeneration& before, const policy::CompiledGeneration& after);

}  // namespace ipfleet::fleet
