#include "sqlite.h"

#include <absl/strings/str_cat.h>

namespace ipfleet::inventory::sqlite {

absl::Status Error(sqlite3* db, std::string_view call, std::string_view sql) {
  int code = db ? sqlite3_extended_errcode(db) : SQLITE_ERROR;
  std::string what = db ? sqlite3_errmsg(db) : "no connection";
  std::string where(call);
  if (!sql.empty()) {
    // Enough of the statement to know which one failed, never bound values.
    where = absl::StrCat(std::string(call), "(", std::string(sql.substr(0, 60)), sql.size() > 60 ? "..." : "", ")");
  }
  absl::StatusCode status_code = absl::StatusCode::kInternal;
  int primary = code & 0xff;
  if (primary == SQLITE_CONSTRAINT) {
    status_code = (code == SQLITE_CONSTRAINT_PRIMARYKEY || code == SQLITE_CONSTRAINT_UNIQUE)
                      ? absl::StatusCode::kAlreadyExists
                      : absl::StatusCode::kFailedPrecondition;
  } else if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) {
    status_code = absl::StatusCode::kUnavailable;
  }
  return absl::Status(status_code, absl::StrCat(where, ": ", what, " (sqlite code ", code, ")"));
}

Stmt::~Stmt() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

Stmt& Stmt::Bind(int i, int64_t v) {
  if (int rc = sqlite3_bind_int64(stmt_, i, v); rc != SQLITE_OK && bind_error_.ok()) {
    bind_error_ = Error(db_, "sqlite3_bind_int64", sqlite3_sql(stmt_));
  }
  return *this;
}

Stmt& Stmt::Bind(int i, std::string_view v) {
  if (int rc = sqlite3_bind_text64(stmt_, i, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
      rc != SQLITE_OK && bind_error_.ok()) {
    bind_error_ = Error(db_, "sqlite3_bind_text64", sqlite3_sql(stmt_));
  }
  return *this;
}

Stmt& Stmt::BindBlob(int i, std::string_view v) {
  // A zero-length blob must still be a blob, not NULL: pass a non-null pointer.
  static const char kEmpty = 0;
  const void* data = v.empty() ? &kEmpty : v.data();
  if (int rc = sqlite3_bind_blob64(stmt_, i, data, v.size(), SQLITE_TRANSIENT);
      rc != SQLITE_OK && bind_error_.ok()) {
    bind_error_ = Error(db_, "sqlite3_bind_blob64", sqlite3_sql(stmt_));
  }
  return *this;
}

absl::StatusOr<bool> Stmt::Step() {
  if (!bind_error_.ok()) return bind_error_;
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return Error(db_, "sqlite3_step", sqlite3_sql(stmt_));
}

absl::Status Stmt::Defer(absl::Status if_unchanged) {
  IPFLEET_RETURN_IF_ERROR(Run());
  return sqlite3_changes(db_) == 0 ? if_unchanged : absl::OkStatus();
}

std::string Stmt::Text(int col) const {
  const unsigned char* p = sqlite3_column_text(stmt_, col);
  int n = sqlite3_column_bytes(stmt_, col);
  return p ? std::string(reinterpret_cast<const char*>(p), n) : std::string();
}

std::string Stmt::Blob(int col) const {
  const void* p = sqlite3_column_blob(stmt_, col);
  int n = sqlite3_column_bytes(stmt_, col);
  return p ? std::string(static_cast<const char*>(p), n) : std::string();
}

absl::StatusOr<std::unique_ptr<Connection>> Connection::Open(const std::string& path) {
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  DbPtr db(raw);
  if (rc != SQLITE_OK) {
    return absl::Status(absl::StatusCode::kUnavailable,
                        absl::StrCat("sqlite3_open_v2(", path, "): ",
                                     raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc)));
  }
  sqlite3_extended_result_codes(db.get(), 1);
  return std::unique_ptr<Connection>(new Connection(std::move(db)));
}

absl::StatusOr<std::unique_ptr<sql::Statement>> Connection::Prepare(const std::string& sql) {
  auto it = cache_.find(sql);
  if (it == cache_.end()) {
    sqlite3_stmt* raw = nullptr;
    if (sqlite3_prepare_v3(db_.get(), sql.c_str(), static_cast<int>(sql.size()),
                           SQLITE_PREPARE_PERSISTENT, &raw, nullptr) != SQLITE_OK) {
      return Error(db_.get(), "sqlite3_prepare_v3", sql);
    }
    it = cache_.emplace(sql, StmtPtr(raw)).first;
  }
  return std::make_unique<Stmt>(db_.get(), it->second.get());
}

absl::Status Connection::Exec(const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_.get(), sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    absl::Status s = Error(db_.get(), "sqlite3_exec", sql);
    sqlite3_free(err);
    return s;
  }
  return absl::OkStatus();
}

}  // namespace ipfleet::inventory::sqlite
