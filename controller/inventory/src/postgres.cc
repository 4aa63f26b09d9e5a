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

// libpq's parallel arrays of parameter pointers and lengths over our bound values.
class Params {
 public:
  explicit Params(const std::vector<std::string>& v) : values_(v.size()), lengths_(v.size()) {
    for (size_t i = 0; i < v.size(); ++i) {
      values_[i] = v[i].data();
      lengths_[i] = static_cast<int>(v[i].size());
    }
  }
  int count() const { return static_cast<int>(values_.size()); }
  const char* const* values() const { return values_.data(); }
  const int* lengths() const { return lengths_.data(); }

 private:
  std::vector<const char*> values_;
  std::vector<int> lengths_;
};

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
    IPFLEET_RETURN_IF_ERROR(conn_.Flush());
    IPFLEET_ASSIGN_OR_RETURN(const std::string* name, conn_.PreparedName(sql_));
    Params p(values_);
    result_.reset(name ? PQexecPrepared(conn_.raw(), name->c_str(), p.count(), p.values(), p.lengths(), binary_.data(), 0)
                       : PQexecParams(conn_.raw(), sql_.c_str(), p.count(), nullptr, p.values(), p.lengths(),
                                      binary_.data(), 0));
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

absl::Status Stmt::Defer(absl::Status if_unchanged) {
  if (conn_.deferring()) return conn_.Send(sql_, values_, binary_, std::move(if_unchanged));
  IPFLEET_RETURN_IF_ERROR(Run());
  return conn_.Changes() == 0 ? if_unchanged : absl::OkStatus();
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
  deferred_.clear();  // their transaction died with the connection
  deferring_ = false;
  Reset();
  return PQstatus(conn_.get()) == CONNECTION_OK ? absl::OkStatus() : Lost();
}

absl::StatusOr<std::unique_ptr<sql::Statement>> Connection::Prepare(const std::string& sql) {
  return std::make_unique<Stmt>(*this, Renumber(sql));
}

absl::Status Connection::Exec(const std::string& sql) {
  IPFLEET_RETURN_IF_ERROR(Flush());
  ResultPtr r(PQexec(conn_.get(), sql.c_str()));
  ExecStatusType st = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) return Error(r.get(), sql);
  return absl::OkStatus();
}

absl::Status Connection::Send(const std::string& sql, const std::vector<std::string>& values,
                              const std::vector<int>& binary, absl::Status if_unchanged) {
  if (deferred_.size() >= kMaxDeferred || (!deferred_.empty() && !prepared_.count(sql))) {
    IPFLEET_RETURN_IF_ERROR(Flush());  // a statement new to this session is prepared outside the pipeline
  }
  IPFLEET_ASSIGN_OR_RETURN(const std::string* name, PreparedName(sql));
  if (deferred_.empty() && PQenterPipelineMode(conn_.get()) != 1) return Lost();
  Params p(values);
  int sent = name ? PQsendQueryPrepared(conn_.get(), name->c_str(), p.count(), p.values(), p.lengths(), binary.data(), 0)
                  : PQsendQueryParams(conn_.get(), sql.c_str(), p.count(), nullptr, p.values(), p.lengths(),
                                      binary.data(), 0);
  if (sent != 1) {
    absl::Status lost = Lost();
    (void)Flush();  // collects what was sent before, so the connection leaves pipeline mode
    return lost;
  }
  deferred_.push_back({sql, std::move(if_unchanged)});
  return absl::OkStatus();
}

absl::Status Connection::Flush() {
  if (deferred_.empty()) return absl::OkStatus();
  std::vector<Deferred> sent;
  sent.swap(deferred_);
  if (PQpipelineSync(conn_.get()) != 1) return Lost();
  absl::Status first;
  size_t i = 0;  // the write whose answer comes next; each ends with a null result
  bool synced = false;
  // Bounded: each write yields one result and one null, the sync point one result.
  for (size_t reads = 0; reads < 2 * sent.size() + 2 && !synced; ++reads) {
    ResultPtr r(PQgetResult(conn_.get()));
    if (!r) {
      if (PQstatus(conn_.get()) != CONNECTION_OK) return Lost();
      ++i;
      continue;
    }
    switch (PQresultStatus(r.get())) {
      case PGRES_PIPELINE_SYNC:
        synced = true;
        break;
      case PGRES_PIPELINE_ABORTED:  // skipped: an earlier write of the pipeline failed
        break;
      case PGRES_COMMAND_OK:
      case PGRES_TUPLES_OK:
        if (first.ok() && i < sent.size() && !sent[i].if_unchanged.ok()) {
          int64_t changed = 0;
          (void)absl::SimpleAtoi(PQcmdTuples(r.get()), &changed);
          if (changed == 0) first = sent[i].if_unchanged;
        }
        break;
      default:
        if (first.ok()) first = Error(r.get(), i < sent.size() ? sent[i].sql : std::string("pipeline"));
        break;
    }
  }
  if (!synced || PQexitPipelineMode(conn_.get()) != 1) {
    if (PQstatus(conn_.get()) != CONNECTION_OK) return Lost();
    // A protocol state we cannot continue from: a new session is the only clean state.
    Reset();
    return absl::InternalError(absl::StrCat("postgresql pipeline on ", where_, " ended out of step (",
                                            Trimmed(PQerrorMessage(conn_.get())), "); the connection was reset"));
  }
  return first;
}

absl::StatusOr<const std::string*> Connection::PreparedName(const std::string& sql) {
  auto it = prepared_.find(sql);
  if (it != prepared_.end()) return &it->second;
  if (prepared_.size() >= kMaxPrepared) return nullptr;  // parsed each time, as it was
  std::string name = absl::StrCat("ipfleet_", prepared_.size() + 1);
  ResultPtr r(PQprepare(conn_.get(), name.c_str(), sql.c_str(), 0, nullptr));
  if (!r || PQresultStatus(r.get()) != PGRES_COMMAND_OK) return Error(r.get(), sql);
  return &prepared_.emplace(sql, std::move(name)).first->second;
}

void Connection::Reset() {
  prepared_.clear();  // they belonged to the server session that ends here
  PQreset(conn_.get());
}

absl::Status Connection::Lost() {
  deferred_.clear();
  return absl::UnavailableError(absl::StrCat("inventory ", where_, " unreachable: ", Trimmed(PQerrorMessage(conn_.get())),
                                             "; the controller reconnects by itself"));
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
