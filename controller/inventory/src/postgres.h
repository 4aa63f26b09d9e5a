// Thin RAII layer over libpq implementing sql::Connection: `?` placeholders renumbered to $n,
// parameters sent as text (BLOBs as binary bytea), results read as text, and errors turned into
// absl::Status by SQLSTATE (unique violation -> AlreadyExists, lost connection -> Unavailable).
#pragma once

#include <libpq-fe.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ipfleet/common/status.h"
#include "sql.h"

namespace ipfleet::inventory::postgres {

struct ConnCloser {
  void operator()(PGconn* c) const { PQfinish(c); }
};
struct ResultClearer {
  void operator()(PGresult* r) const { PQclear(r); }
};
using ConnPtr = std::unique_ptr<PGconn, ConnCloser>;
using ResultPtr = std::unique_ptr<PGresult, ResultClearer>;

// "postgresql://user@host:5432/db" without the password or other secrets, for messages.
std::string Redacted(const std::string& conninfo);

// `?` -> `$1, $2, ...` outside quoted strings.
std::string Renumber(std::string_view sql);

class Connection;

class Stmt final : public sql::Statement {
 public:
  Stmt(Connection& conn, std::string sql) : conn_(conn), sql_(std::move(sql)) {}

  using sql::Statement::Bind;
  Stmt& Bind(int i, int64_t v) override;
  Stmt& Bind(int i, std::string_view v) override;
  Stmt& BindBlob(int i, std::string_view v) override;

  absl::StatusOr<bool> Step() override;

  int64_t Int(int col) const override;
  std::string Text(int col) const override;
  std::string Blob(int col) const override;

 private:
  void Set(int i, std::string value, bool binary);

  Connection& conn_;
  std::string sql_;
  std::vector<std::string> values_;
  std::vector<int> binary_;
  ResultPtr result_;
  int row_ = -1;
};

class Connection final : public sql::Connection {
 public:
  // Connects (libpq connection string or postgresql:// URI); Unavailable with libpq's reason.
  static absl::StatusOr<std::unique_ptr<Connection>> Open(const std::string& conninfo);

  absl::StatusOr<std::unique_ptr<sql::Statement>> Prepare(const std::string& sql) override;
  absl::Status Exec(const std::string& sql) override;
  int64_t Changes() override { return changes_; }

  // Reconnects when the server went away (restart, network); Unavailable while it cannot.
  absl::Status EnsureConnected();
  PGconn* raw() { return conn_.get(); }
  const std::string& where() const { return where_; }

  // Status of a failed command: SQLSTATE decides the code, the message names the statement.
  absl::Status Error(const PGresult* result, std::string_view sql);
  void set_changes(int64_t n) { changes_ = n; }

 private:
  Connection(ConnPtr conn, std::string where) : conn_(std::move(conn)), where_(std::move(where)) {}
  ConnPtr conn_;
  std::string where_;  // redacted connection string
  int64_t changes_ = 0;
};

}  // namespace ipfleet::inventory::postgres
