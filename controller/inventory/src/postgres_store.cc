#include "ipfleet/controller/inventory/postgres_store.h"

#include <absl/strings/match.h>
#include <absl/strings/str_cat.h>
#include <spdlog/spdlog.h>

#include <mutex>

#include "migrations.h"
#include "postgres.h"
#include "sql_store.h"

namespace ipfleet::inventory {
namespace {

using postgres::Connection;

// Advisory lock keys (any 64-bit values unique to ipfleet within the database).
constexpr int64_t kWriteLockKey = 0x1f1ee7'0001;
constexpr int64_t kLeaderLockKey = 0x1f1ee7'0002;

class PostgresStore final : public SqlStore {
 public:
  // `pg` is `conn`, typed: the base class owns the connections (`reads` for reads outside
  // transactions, so that they do not wait for the session writer's or a wave's transaction).
  PostgresStore(std::unique_ptr<Connection> conn, Connection* pg, std::unique_ptr<Connection> reads,
                std::string conninfo, int schema)
      : SqlStore(std::move(conn), Dialect{"c.seq", "SELECT json_array_elements_text(CAST(? AS json))"}, schema,
                 std::move(reads)),
        pg_(pg),
        conninfo_(std::move(conninfo)),
        where_(postgres::Redacted(conninfo_)) {}
  ~PostgresStore() override { ReleaseLeadership(); }

  bool Shared() const override { return true; }
  std::string Describe() const override { return where_; }

  absl::StatusOr<bool> HoldLeadership() override {
    std::lock_guard lock(lease_mu_);
    if (!lease_ || PQstatus(lease_->raw()) != CONNECTION_OK) {
      // A new connection is a new session: whatever it held died with the old one.
      lease_.reset();
      IPFLEET_ASSIGN_OR_RETURN(lease_, Connection::Open(conninfo_));
    }
    const char* sql = "SELECT pg_try_advisory_lock(?)";
    std::string check = absl::StrCat(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid() "
        "AND classid = ", static_cast<uint32_t>(kLeaderLockKey >> 32), " AND objid = ",
        static_cast<uint32_t>(kLeaderLockKey & 0xffffffff));
    IPFLEET_ASSIGN_OR_RETURN(auto s, lease_->Prepare(check));
    absl::StatusOr<bool> row = s->Step();
    if (!row.ok()) {
      lease_.reset();
      return row.status();
    }
    if (*row && s->Int(0) > 0) return true;
    IPFLEET_ASSIGN_OR_RETURN(auto t, lease_->Prepare(sql));
    t->Bind(1, kLeaderLockKey);
    absl::StatusOr<bool> got = t->Step();
    if (!got.ok()) {
      lease_.reset();
      return got.status();
    }
    return *got && t->Text(0) == "t";
  }

  void ReleaseLeadership() override {
    std::lock_guard lock(lease_mu_);
    if (lease_ && PQstatus(lease_->raw()) == CONNECTION_OK) {
      // Unlock explicitly: closing the connection alone frees the lock only once the server
      // notices the disconnect, and another replica asking at once would still be refused.
      (void)lease_->Exec("SELECT pg_advisory_unlock_all()");
    }
    lease_.reset();
  }

 protected:
  absl::Status Begin() override {
    IPFLEET_RETURN_IF_ERROR(pg_->Exec(absl::StrCat("BEGIN; SELECT pg_advisory_xact_lock(", kWriteLockKey, ")")));
    pg_->set_deferring(true);
    return absl::OkStatus();
  }
  absl::Status Commit() override {
    pg_->set_deferring(false);
    return pg_->Exec("COMMIT");  // collects the deferred writes first: a failed one fails the commit
  }
  absl::Status Rollback() override {
    pg_->set_deferring(false);
    (void)pg_->Flush();  // answers still owed by the server; the transaction is abandoned anyway
    // After a lost connection there is nothing to roll back: the server already did.
    if (PQstatus(pg_->raw()) != CONNECTION_OK) return absl::OkStatus();
    return pg_->Exec("ROLLBACK");
  }

 private:
  Connection* pg_;
  std::string conninfo_;
  std::string where_;
  std::mutex lease_mu_;
  std::unique_ptr<Connection> lease_;
};

absl::StatusOr<int> Migrate(Connection& c) {
  const auto& all = PostgresMigrations();
  const int latest = all.empty() ? 0 : all.back().version;
  IPFLEET_RETURN_IF_ERROR(c.Exec(absl::StrCat("BEGIN; SELECT pg_advisory_xact_lock(", kWriteLockKey, ")")));
  auto fail = [&](absl::Status st) {
    (void)c.Exec("ROLLBACK");
    return st;
  };
  absl::Status st = c.Exec("CREATE TABLE IF NOT EXISTS ipfleet_schema (version INTEGER NOT NULL)");
  if (!st.ok()) return fail(st);
  int current = 0;
  {
    IPFLEET_ASSIGN_OR_RETURN(auto s, c.Prepare("SELECT coalesce(max(version), 0) FROM ipfleet_schema"));
    absl::StatusOr<bool> row = s->Step();
    if (!row.ok()) return fail(row.status());
    current = static_cast<int>(s->Int(0));
  }
  if (current > latest) {
    return fail(absl::FailedPreconditionError(absl::StrCat(
        "inventory ", c.where(), " has schema version ", current, " but this controller knows only up to ", latest,
        "; run a newer ipfleet-controller (nothing was changed)")));
  }
  for (const Migration& m : all) {
    if (m.version <= current) continue;
    st = c.Exec(m.sql);
    if (st.ok()) {
      st = c.Exec(absl::StrCat("DELETE FROM ipfleet_schema; INSERT INTO ipfleet_schema (version) VALUES (", m.version,
                               ")"));
    }
    if (!st.ok()) {
      return fail(absl::Status(st.code(), absl::StrCat("migration ", m.version, " (", m.description,
                                                       ") failed: ", st.message())));
    }
    spdlog::info("event=inventory_migrated version={} description=\"{}\" inventory={}", m.version, m.description,
                 c.where());
    current = m.version;
  }
  IPFLEET_RETURN_IF_ERROR(c.Exec("COMMIT"));
  return current;
}

}  // namespace

bool IsPostgresSpec(const std::string& spec) {
  return absl::StartsWith(spec, "postgresql://") || absl::StartsWith(spec, "postgres://");
}

absl::StatusOr<std::unique_ptr<Store>> OpenPostgresStore(const std::string& conninfo) {
  IPFLEET_ASSIGN_OR_RETURN(std::unique_ptr<Connection> conn, Connection::Open(conninfo));
  IPFLEET_ASSIGN_OR_RETURN(int schema, Migrate(*conn));
  IPFLEET_ASSIGN_OR_RETURN(std::unique_ptr<Connection> reads, Connection::Open(conninfo));
  Connection* pg = conn.get();
  return std::unique_ptr<Store>(new PostgresStore(std::move(conn), pg, std::move(reads), conninfo, schema));
}

}  // namespace ipfleet::inventory
