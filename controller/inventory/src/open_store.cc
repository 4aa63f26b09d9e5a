#include "ipfleet/controller/inventory/open_store.h"

#include <absl/strings/match.h>
#include <absl/strings/str_cat.h>

#include "ipfleet/controller/inventory/postgres_store.h"

namespace ipfleet::inventory {

std::filesystem::path SqlitePathOf(const std::string& spec, const std::filesystem::path& default_sqlite) {
  if (spec.empty() || spec == "sqlite") return default_sqlite;
  if (absl::StartsWith(spec, "sqlite:") && spec.size() > 7) return spec.substr(7);
  return {};
}

absl::StatusOr<std::unique_ptr<Store>> OpenStore(const std::string& spec, const std::filesystem::path& default_sqlite,
                                                 const SqliteOptions& sqlite_options) {
  if (IsPostgresSpec(spec)) return OpenPostgresStore(spec);
  std::filesystem::path path = SqlitePathOf(spec, default_sqlite);
  if (path.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown inventory '", absl::StartsWith(spec, "sqlite:") ? spec : spec.substr(0, spec.find(':')),
        "'; use sqlite (the default, in the data directory), sqlite:PATH, or postgresql://USER@HOST:PORT/DB"));
  }
  return OpenSqliteStore(path, sqlite_options);
}

}  // namespace ipfleet::inventory
