// Opens the inventory an operator named: `sqlite` (the default, DATA_DIR/inventory.db),
// `sqlite:PATH`, or a PostgreSQL URI (`postgresql://user@host:5432/ipfleet`, libpq's own
// syntax, password preferably in ~/.pgpass or PGPASSFILE rather than on the command line).
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "ipfleet/controller/inventory/sqlite_store.h"
#include "ipfleet/controller/inventory/store.h"

namespace ipfleet::inventory {

// InvalidArgument for a spec that is none of the above, saying what is accepted.
absl::StatusOr<std::unique_ptr<Store>> OpenStore(const std::string& spec, const std::filesystem::path& default_sqlite,
                                                 const SqliteOptions& sqlite_options = {});

// The SQLite path a spec names, or empty for PostgreSQL (and for an invalid spec).
std::filesystem::path SqlitePathOf(const std::string& spec, const std::filesystem::path& default_sqlite);

}  // namespace ipfleet::inventory
