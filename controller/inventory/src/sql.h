// The few SQL operations the inventory needs, behind one interface with a SQLite and a PostgreSQL
// implementation, so that every query of the store (sql_ops.cc) is written once for both.
//
// Statements use `?` placeholders (the PostgreSQL side renumbers them to $1, $2, ...) and a
// common SQL subset: ON CONFLICT upserts, RETURNING ids, CASE instead of two-argument max(),
// integers (0/1) instead of booleans. Bind indexes are 1-based, column indexes 0-based.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "ipfleet/common/status.h"

namespace ipfleet::inventory::sql {

class Statement {
 public:
  virtual ~Statement() = default;

  virtual Statement& Bind(int i, int64_t v) = 0;
  virtual Statement& Bind(int i, std::string_view v) = 0;  // TEXT
  virtual Statement& BindBlob(int i, std::string_view v) = 0;
  Statement& Bind(int i, const std::string& v) { return Bind(i, std::string_view(v)); }
  Statement& Bind(int i, const char* v) { return Bind(i, std::string_view(v)); }
  Statement& BindBool(int i, bool v) { return Bind(i, static_cast<int64_t>(v ? 1 : 0)); }

  // Runs the statement on first call; true while a row is available, false when done.
  virtual absl::StatusOr<bool> Step() = 0;
  // Runs a statement whose rows (if any) are not needed.
  absl::Status Run() {
    IPFLEET_ASSIGN_OR_RETURN(bool row, Step());
    (void)row;
    return absl::OkStatus();
  }

  // Runs a write whose rows are not needed, in the open transaction. A backend may send it
  // without waiting for the answer (PostgreSQL pipelines it): its error, or `if_unchanged` when
  // it changed no row, is then returned by a later call of the same transaction, by the commit
  // at the latest, and the transaction rolls back as if the call itself had failed. Pass
  // OkStatus() when changing no row is fine. Outside a transaction it runs at once.
  virtual absl::Status Defer(absl::Status if_unchanged) = 0;

  virtual int64_t Int(int col) const = 0;
  uint64_t UInt(int col) const { return static_cast<uint64_t>(Int(col)); }
  bool Bool(int col) const { return Int(col) != 0; }
  virtual std::string Text(int col) const = 0;
  virtual std::string Blob(int col) const = 0;
};

class Connection {
 public:
  virtual ~Connection() = default;
  virtual absl::StatusOr<std::unique_ptr<Statement>> Prepare(const std::string& sql) = 0;
  // One or more statements without parameters or results (schema, BEGIN/COMMIT).
  virtual absl::Status Exec(const std::string& sql) = 0;
  // Rows changed by the last INSERT/UPDATE/DELETE.
  virtual int64_t Changes() = 0;
  // Before every use: re-makes a connection to a server that went away; Unavailable while it cannot.
  virtual absl::Status EnsureConnected() { return absl::OkStatus(); }
};

}  // namespace ipfleet::inventory::sql
