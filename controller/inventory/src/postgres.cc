#include "postgres.h"

#include <absl/strings/str_cat.h>
#include <absl/strings/numbers.h>

#include <cstring>

namespace ipfleet::inventory::postgres {
namespace {

std::string Trimmed(const char* message) {
  std::string s = message ? message : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string Head(std::string_view sql) {
  return absl::StrCat(std::string(sql.substr(0, 60)), sql.size() > 60 ? "..." : "");
}

}  // namespace

std::string Redacted(const std::string& conninfo) {
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
  if (!opts) {
    if (err) PQfreemem(err);
    return "postgresql (unparsable connection string)";
  }
  std::string host, port, db, user;
  for (PQconninfoOption* o = opts; o->keyword; ++o) {
    if (!o->val) continue;
    std::string_view k = o->keyword;
    if (k == "host") host = o->val;
    if (k == "port") port = o->val;
    if (k == "dbname") db = o->val;
    if (k == "user") user = o->val;
  }
  PQconninfoFree(opts);
  return absl::StrCat("postgresql://", user.empty() ? "" : user + "@", host.empty() ? "localhost" : host,
                      port.empty() ? "" : ":" + port, "/", db);
}

std::string Renumber(std::string_view sql) {
  std::string out;
  out.reserve(sql.size() + 16);
  int n = 0;
  bool quoted = false;
  for (char c : sql) {
    if (c == '\'') quoted = !quoted;
    if (c == '?' && !quoted) {
      absl::StrAppend(&out, "$", ++n);
    } else {
      out.push_back(c);
    }
  }
  return out;
}

void Stmt::Set(int i, std::string value, bool binary) {
  size_t idx = static_cast<size_t>(i - 1);
  if (values_.size() <= idx) {
    values_.resize(idx + 1);
    binary_.resize(idx + 1, 0);
  }
  values_[idx] = std::move(value);
  binary_[idx] = binary ? 1 : 0;
}

Stmt& Stmt::Bind(int i, int64_t v) {
  Set(i, std::to_string(v), false);
  return *this;
}
Stmt& Stmt::Bind(int i, std::string_view v) {
  Set(i, std::string(v), false);
  return *this;
}
Stmt& Stmt::BindBlob(int i, std::string_view v) {
  Set(i, std::string(v), true);
  return *this;
}

absl::StatusOr<bool> Stmt::Step() {
  if (!result_) {
    std::vector<const char*> values(values_.size());
    std::vector<int> lengths(values_.size());
    for (size_t i = 0; i < values_.size(); ++i) {
      values[i] = values_[i].data();
      lengths[i] = static_cast<int>(values_[i].size());
    }
    result_.reset(PQexecParams(conn_.raw(), sql_.c_str(), static_cast<int>(values_.size()), nullptr, values.data(),
                               lengths.data(), binary_.data(), 0));
    ExecStatusType st = result_ ? PQresultStatus(result_.get()) : PGRES_FATAL_ERROR;
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
      absl::Status err = conn_.Error(result_.get(), sql_);
      result_.reset();
      return err;
    }
    int64_t changed = 0;
    (void)absl::SimpleAtoi(PQcmdTuples(result_.get()), &changed);
    conn_.set_changes(changed);
  }
  ++row_;
  return row_ < PQntuples(result_.get());
}

int64_t Stmt::Int(int col) const {
  int64_t v = 0;
  (void)absl::SimpleAtoi(PQgetvalue(result_.get(), row_, col), &v);
  return v;
}

std::string Stmt::Text(int col) const {
  return std::string(PQgetvalue(result_.get(), row_, col), PQgetlength(result_.get(), row_, col));
}

std::string Stmt::Blob(int col) const {
  size_t n = 0;
  unsigned char* raw = PQunescapeBytea(reinterpret_cast<const unsigned char*>(PQgetvalue(result_.get(), row_, col)), &n);
  if (!raw) return std::string();
  std::string out(reinterpret_cast<const char*>(raw), n);
  PQfreemem(raw);
  return out;
}

absl::StatusOr<std::unique_ptr<Connection>> Connection::Open(const std::string& conninfo) {
  std::string where = Redacted(conninfo);
  ConnPtr conn(PQconnectdb(conninfo.c_str()));
  if (!conn || PQstatus(conn.get()) != CONNECTION_OK) {
    return absl::UnavailableError(absl::StrCat("cannot connect to the inventory at ", where, ": ",
                                               conn ? Trimmed(PQerrorMessage(conn.get())) : "out of memory"));
  }
  auto c = std::unique_ptr<Connection>(new Connection(std::move(conn), where));
  // Quiet NOTICEs (e.g. "relation already exists, skipping") instead of libpq printing to stderr.
  PQsetNoticeProcessor(c->raw(), [](void*, const char*) {}, nullptr);
  IPFLEET_RETURN_IF_ERROR(c->Exec("SET client_min_messages = warning"));
  return c;
}

absl::Status Connection::EnsureConnected() {
  if (PQstatus(conn_.get()) == CONNECTION_OK) return absl::OkStatus();
  PQreset(conn_.get());
  if (PQstatus(conn_.get()) != CONNECTION_OK) {
    return absl::UnavailableError(absl::StrCat("inventory ", where_, " unreachable: ",
                                               Trimmed(PQerrorMessage(conn_.get())),
                                               "; the controller reconnects by itself"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<sql::Statement>> Connection::Prepare(const std::string& sql) {
  return std::make_unique<Stmt>(*this, Renumber(sql));
}

absl::Status Connection::Exec(const std::string& sql) {
  ResultPtr r(PQexec(conn_.get(), sql.c_str()));
  ExecStatusType st = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) return Error(r.get(), sql);
  return absl::OkStatus();
}

absl::Status Connection::Error(const PGresult* result, std::string_view sql) {
  const char* state = result ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  std::string code = state ? state : "";
  std::string what = result ? Trimmed(PQresultErrorMessage(result)) : "";
  if (what.empty()) what = Trimmed(PQerrorMessage(conn_.get()));
  absl::StatusCode status_code = absl::StatusCode::kInternal;
  if (PQstatus(conn_.get()) != CONNECTION_OK || code.rfind("08", 0) == 0 || code.rfind("57P", 0) == 0) {
    status_code = absl::StatusCode::kUnavailable;  // lost connection, server shutting down
    what += "; the controller reconnects by itself";
  } else if (code == "23505") {
    status_code = absl::StatusCode::kAlreadyExists;
  } else if (code.rfind("23", 0) == 0) {
    status_code = absl::StatusCode::kFailedPrecondition;  // foreign key, check, not null
  } else if (code == "40001" || code == "40P01") {
    status_code = absl::StatusCode::kAborted;  // serialization failure, deadlock: retryable
  }
  return absl::Status(status_code, absl::StrCat("postgresql(", Head(sql), ") on ", where_, ": ", what,
                                                code.empty() ? "" : absl::StrCat(" (sqlstate ", code, ")")));
}

}  // namespace ipfleet::inventory::postgres
