// Telling the replica that holds a host's session that there is something for the host, through
// the inventory (controller/replication reads the bus). Called inside the transaction that stores
// the bundle or queues the command: the notice commits with it, so a replica that dies right after
// cannot lose it.
#pragma once

#include <string>

#include "ipfleet/common/status.h"
#include "ipfleet/controller/api/context.h"
#include "ipfleet/controller/inventory/store.h"

namespace ipfleet::controller {

// Appends a bus message of `kind` (inventory::bus_kind) for `host` when other replicas share the
// inventory and the host's session is not on this one; does nothing otherwise.
absl::Status NoticeToHolder(const ControllerContext& ctx, inventory::Tx& tx, const std::string& host, const char* kind,
                            std::string payload = {});

}  // namespace ipfleet::controller
