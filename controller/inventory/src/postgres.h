// Thin RAII layer over libpq implementing sql::Connection: `?` placeholders renumbered to $n,
// parameters sent as text (BLOBs as binary bytea), results read as text, and errors turned into
// absl::Status by SQLSTATE (unique violation -> AlreadyExists, lost connection -> Unavailable).
// Inside a transaction, deferred writes (sql::Statement::Defer) go out in libpq's pipeline mode
// and are collected in one round trip before the next synchronous statement or the commit.
#pragma once

#include <libpq-fe.h>

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
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
  absl::Status Defer(absl::Status if_unchanged) override;

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
  // Both collect the deferred writes first (see Flush).
  absl::Status Exec(const std::string& sql) override;
  int64_t Changes() override { return changes_; }

  // Between BEGIN and COMMIT/ROLLBACK, Defer() pipelines; otherwise it runs at once.
  void set_deferring(bool on) { deferring_ = on; }
  bool deferring() const { return deferring_; }
  // Sends one deferred write (pipeline mode); collects the earlier ones first when many wait.
  absl::Status Send(const std::string& sql, const std::vector<std::string>& values, const std::vector<int>& binary,
                    absl::Status if_unchanged);
  // Collects the answers of every deferred write in one round trip and leaves pipeline mode.
  // Returns the first failure (later writes were skipped by the server), or OK.
  absl::Status Flush();

  // Reconnects when the server went away (restart, network); Unavailable while it cannot.
  absl::Status EnsureConnected() override;
  PGconn* raw() { return conn_.get(); }
  const std::string& where() const { return where_; }

  // Status of a failed command: SQLSTATE decides the code, the message names the statement.
  absl::Status Error(const PGresult* result, std::string_view sql);
  void set_changes(int64_t n) { changes_ = n; }

  // The name of `sql` prepared on this session (parsed and planned once, not per execution),
  // preparing it now if new; null beyond kMaxPrepared statements (then sent unprepared).
  absl::StatusOr<const std::string*> PreparedName(const std::string& sql);

 private:
  absl::Status Lost();
  void Reset();  // a new server session, with nothing prepared
  Connection(ConnPtr conn, std::string where) : conn_(std::move(conn)), where_(std::move(where)) {}
  ConnPtr conn_;
  std::string where_;  // redacted connection string
  int64_t changes_ = 0;

  struct Deferred {
    std::string sql;            // for the error message
    absl::Status if_unchanged;  // returned when the write changed no row, unless OK
  };
  // At most this many writes wait unanswered: the server's answers to them must fit in the socket
  // buffers while libpq, in blocking mode, is still writing the next ones.
  static constexpr size_t kMaxDeferred = 256;
  std::vector<Deferred> deferred_;
  // The inventory has a few dozen distinct statements; the bound only guards against a caller
  // that would build statements with values in their text.
  static constexpr size_t kMaxPrepared = 512;
  std::unordered_map<std::string, std::string> prepared_;  // SQL -> statement name
  bool deferring_ = false;
};

}  // namespace ipfleet::inventory::postgres
