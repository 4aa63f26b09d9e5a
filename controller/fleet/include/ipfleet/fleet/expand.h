// Expansion of a parsed fleet file against the inventory's hosts into the compiler's snapshot:
// labels merged, `mesh` and `hub` helpers turned into pairwise tunnels, defaults applied.
#pragma once

#include <string>
#include <vector>

#include "ipfleet/common/status.h"
#include "ipfleet/fleet/fleet_file.h"
#include "ipfleet/policy/inventory.h"

namespace ipfleet::fleet {

// `inventory_hosts`: every host known to the controller (addresses, DNS names, labels). Hosts the
// file names but the inventory lacks are an error naming the line. The result has no generation,
// controller endpoint or static keys; the caller fills those. Explicit tunnels win over helpers;
// a pair produced by several helpers is kept from the first one (file order: meshes, then hubs).
absl::StatusOr<policy::InventorySnapshot> Expand(const FleetFile& file,
                                                 const std::vector<policy::Host>& inventory_hosts);

// Name of the tunnel between two ends when the operator gave none: "<lower>--<higher>".
std::string PairName(const std::string& x, const std::string& y);

}  // namespace ipfleet::fleet
