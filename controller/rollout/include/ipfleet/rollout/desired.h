// Turning a fleet document into a stored generation: compile it (validation included, fresh keys
// for static tunnels that need them), then store the generation record and the desired inventory
// listing in one transaction.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "ipfleet/common/status.h"
#include "ipfleet/controller/api/context.h"
#include "ipfleet/controller/inventory/store.h"
#include "ipfleet/fleet/generation.h"
#include "ipfleet/policy/compiler.h"
#include "ipfleet/rollout/bundles.h"

namespace ipfleet::rollout {

struct PreparedGeneration {
  uint64_t id = 0;  // the generation number it was compiled for
  fleet::GenerationRecord record;  // static_keys filled from the compile
  inventory::DesiredInventory desired;  // the listing, made while the snapshot was at hand
  std::shared_ptr<const policy::CompiledGeneration> compiled;
};

absl::StatusOr<PreparedGeneration> PrepareGeneration(BundleFactory& bundles, fleet::GenerationRecord record, uint64_t id);

// The listing `ipfleet tunnels` and ListExternalPeers read (secrets left out).
inventory::DesiredInventory DesiredOf(const policy::InventorySnapshot& snapshot);

// Stores the prepared generation if the current generation is still `expected_current` (Aborted
// otherwise: someone applied in between). `extra` runs in the same transaction (apply uses it for
// host labels). Returns the new generation id.
absl::StatusOr<uint64_t> CommitGeneration(controller::ControllerContext& ctx, const PreparedGeneration& prepared,
                                          uint64_t expected_current, const std::string& source,
                                          const std::function<absl::Status(inventory::Tx&)>& extra = {});

}  // namespace ipfleet::rollout
