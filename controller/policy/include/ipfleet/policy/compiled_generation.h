// A compiled generation as the controller keeps it: each host's bundle as deterministic bytes, plus
// each tunnel's name and remote host (what the rollout asks on every ack and apply's diff indexes).
// Built straight from CompileEach, so the whole compile never exists as protobuf trees: at 10,000
// hosts the trees were ~150 MiB, the bytes are ~24 MB.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
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
    std::string_view bytes;  // SerializeDeterministic(bundle), in `blocks_`
    std::vector<Tunnel> tunnels;
  };
  std::map<std::string, HostBundle> hosts;

  CompiledGeneration() = default;
  CompiledGeneration(CompiledGeneration&&) = default;
  CompiledGeneration& operator=(CompiledGeneration&&) = default;

  // Compiles `snapshot`; the static keys go to `static_keys` when it is given.
  static absl::StatusOr<CompiledGeneration> Compile(const InventorySnapshot& snapshot, KeySource& keys,
                                                    std::map<std::string, StaticKeyMaterial>* static_keys = nullptr);

  // One host's bundle as a tree again.
  absl::StatusOr<v1::PolicyBundle> Bundle(const std::string& host) const;

 private:
  void Add(const std::string& host, const v1::PolicyBundle& bundle);

  // The bundles' bytes packed into 1 MiB blocks, so a generation is freed as whole pages. As
  // 10,000 separate ~2.4 KiB strings they shared spans with the apply's short-lived objects, and
  // the controller's RSS crept up by tens of MiB with every apply.
  static constexpr size_t kBlockSize = 1 << 20;
  std::vector<std::unique_ptr<char[]>> blocks_;
  size_t block_used_ = kBlockSize;  // of the last block
};

}  // namespace ipfleet::policy
