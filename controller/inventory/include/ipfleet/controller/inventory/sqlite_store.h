// The SQLite implementation of the inventory store.
//
// One connection guarded by a mutex (SQLite serialises writers anyway); WAL journal so readers
// of other processes (backups, `sqlite3` by hand) never block the controller; foreign keys on;
// busy_timeout for other processes holding the lock. Migrations run on open.
#pragma once

#include <filesystem>
#include <memory>

#include "ipfleet/controller/inventory/store.h"

namespace ipfleet::inventory {

struct SqliteOptions {
  // synchronous=FULL fsyncs the WAL on every commit: an acknowledged write survives power loss.
  // NORMAL survives a crash of the controller process (the WAL is in the page cache) but may lose
  // the last commits on power loss; the database stays consistent either way.
  bool fsync_every_commit = true;
  int busy_timeout_ms = 5000;
};

// Opens (creating if needed, mode 0600) and migrates the database at `path`.
absl::StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const std::filesystem::path& path,
                                                       const SqliteOptions& options = {});

// PRAGMA integrity_check + foreign_key_check on a database file; OK when both are clean.
absl::Status CheckSqliteIntegrity(const std::filesystem::path& path);

}  // namespace ipfleet::inventory
