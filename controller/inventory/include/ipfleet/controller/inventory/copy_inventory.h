// Copies a whole inventory into another, empty one: `ipfleet-controller migrate-inventory`, to
// move from SQLite to a PostgreSQL shared by several replicas (or back). Both are migrated to the
// same schema first; the copy runs in one transaction of the destination, so it lands whole or
// not at all. Replica rows and the bus are not copied (they describe running processes).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

#include "ipfleet/common/status.h"

namespace ipfleet::inventory {

// Called after each table: its name and the rows copied.
using CopyProgress = std::function<void(const std::string& table, int64_t rows)>;

// `from` and `to` are inventory specs (see open_store.h). FailedPrecondition when `to` already
// holds hosts, certificates or generations (nothing is merged), or the schemas differ.
absl::Status CopyInventory(const std::string& from, const std::string& to, const std::filesystem::path& default_sqlite,
                           const CopyProgress& progress = {});

}  // namespace ipfleet::inventory
