// The PostgreSQL implementation of the inventory store, for several controller replicas sharing
// one inventory (docs/high-availability.md).
//
// Same schema versions and the same semantics as SQLite: write transactions are serialised
// across every replica by a transaction-scoped advisory lock, so a check-then-write (token
// consumption, bundle versions, command ids) behaves exactly as under SQLite's single writer.
// Leadership is a session-scoped advisory lock on a connection of its own: it is released by the
// server the moment the leader's process or connection dies.
#pragma once

#include <memory>
#include <string>

#include "ipfleet/controller/inventory/store.h"

namespace ipfleet::inventory {

// Connects (a libpq connection string or postgresql:// URI), migrates under the write lock, and
// returns the store. Unavailable when the server cannot be reached, FailedPrecondition when the
// database has a newer schema than this controller knows (nothing is changed then).
absl::StatusOr<std::unique_ptr<Store>> OpenPostgresStore(const std::string& conninfo);

// True for a spec that names PostgreSQL ("postgresql://...", "postgres://...").
bool IsPostgresSpec(const std::string& spec);

}  // namespace ipfleet::inventory
