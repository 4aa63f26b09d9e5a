// A compiled generation as the controller keeps it: each host's bundle as deterministic bytes, plus
// each tunnel's name and remote host (what the rollout asks on every ack and apply's diff indexes).
// Built straight from CompileEach, so the whole compile never exists as protobuf trees: at 10,000
// hosts the trees were ~150 MiB, the bytes are ~24 MB.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "ipfleet/common/status.h"
#include "ipfleet/policy/compiler.h"

namespace ipfleet::policy {

struct CompiledGeneration {
  struct Tunnel {
    std::string name;
    std::string peer_host;  // empty for an external peer
  };
  struct HostBundle {
    std::string bytes;  // SerializeDeterministic(bundle)
    std::vector<Tunnel> tunnels;
  };
  std::map<std::string, HostBundle> hosts;

  // Compiles `snapshot`; the static keys go to `static_keys` when it is given.
  static absl::StatusOr<CompiledGeneration> Compile(const InventorySnapshot& snapshot, KeySource& keys,
                                                    std::map<std::string, StaticKeyMaterial>* static_keys = nullptr);
  // The same from a result already held as trees (tests).
  static CompiledGeneration From(const CompileResult& compiled);

  // One host's bundle as a tree again.
  absl::StatusOr<v1::PolicyBundle> Bundle(const std::string& host) const;
};

}  // namespace ipfleet::policy
