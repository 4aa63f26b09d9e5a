// Thin RAII layer over the SQLite C API: an owned connection, cached prepared statements with
// typed bind/column helpers, and errors turned into absl::Status naming the failed call.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "ipfleet/common/status.h"
#include "sql.h"

namespace ipfleet::inventory::sqlite {

struct DbCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct StmtFinalizer {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using DbPtr = std::unique_ptr<sqlite3, DbCloser>;
using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;

// Status for a failed SQLite call: "sqlite3_step(INSERT INTO hosts...): UNIQUE constraint failed".
absl::Status Error(sqlite3* db, std::string_view call, std::string_view sql = {});

// A prepared statement borrowed from the cache for one use. Bind parameters are 1-based;
// Step() returns true while a row is available. The destructor resets the statement and clears
// its bindings so the cache can hand it out again.
class Stmt final : public sql::Statement {
 public:
  Stmt(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  ~Stmt() override;

  using sql::Statement::Bind;
  Stmt& Bind(int i, int64_t v) override;
  Stmt& Bind(int i, std::string_view v) override;  // TEXT
  Stmt& BindBlob(int i, std::string_view v) override;

  // Advances; true when a row is ready, false when done, error otherwise.
  absl::StatusOr<bool> Step() override;
  // Runs at once: an embedded database has no round trip to save.
  absl::Status Defer(absl::Status if_unchanged) override;

  int64_t Int(int col) const override { return sqlite3_column_int64(stmt_, col); }
  std::string Text(int col) const override;
  std::string Blob(int col) const override;

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_;
  absl::Status bind_error_;
};

// Owns the connection and a cache of prepared statements keyed by SQL text.
class Connection final : public sql::Connection {
 public:
  static absl::StatusOr<std::unique_ptr<Connection>> Open(const std::string& path);

  sqlite3* db() { return db_.get(); }
  // Prepared once (SQLITE_PREPARE_PERSISTENT), reused afterwards.
  absl::StatusOr<std::unique_ptr<sql::Statement>> Prepare(const std::string& sql) override;
  // Runs one or more statements without results (schema, PRAGMA, BEGIN/COMMIT).
  absl::Status Exec(const std::string& sql) override;
  int64_t Changes() override { return sqlite3_changes(db_.get()); }

 private:
  explicit Connection(DbPtr db) : db_(std::move(db)) {}
  // Statements are declared after db_ so they are finalized before the connection closes.
  DbPtr db_;
  std::map<std::string, StmtPtr, std::less<>> cache_;
};

}  // namespace ipfleet::inventory::sqlite
