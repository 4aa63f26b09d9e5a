#include "ipfleet/controller/inventory/sqlite_store.h"

#include <absl/strings/str_cat.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "migrations.h"
#include "sql_store.h"
#include "sqlite.h"

namespace ipfleet::inventory {
namespace {

using sqlite::Connection;

// One connection behind SqlStore's mutex; a write transaction takes SQLite's write lock up front.
class SqliteStore final : public SqlStore {
 public:
  SqliteStore(std::unique_ptr<Connection> conn, std::filesystem::path path, int schema)
      : SqlStore(std::move(conn), Dialect{"c.rowid", "SELECT value FROM json_each(?)"}, schema), path_(std::move(path)) {}

  bool Shared() const override { return false; }
  // The data directory's lock already makes this the only controller on the inventory.
  absl::StatusOr<bool> HoldLeadership() override { return true; }
  void ReleaseLeadership() override {}
  std::string Describe() const override { return "sqlite:" + path_.string(); }

 protected:
  // IMMEDIATE takes the write lock up front, so a busy database fails here (after busy_timeout),
  // not half-way through the callback.
  absl::Status Begin() override { return connection().Exec("BEGIN IMMEDIATE"); }

 private:
  std::filesystem::path path_;
};

absl::StatusOr<int> UserVersion(Connection& c) {
  IPFLEET_ASSIGN_OR_RETURN(auto s, c.Prepare("PRAGMA user_version"));
  IPFLEET_ASSIGN_OR_RETURN(bool row, s->Step());
  return row ? static_cast<int>(s->Int(0)) : 0;
}

absl::StatusOr<int> Migrate(Connection& c, const std::string& path) {
  IPFLEET_ASSIGN_OR_RETURN(int current, UserVersion(c));
  const auto& all = SqliteMigrations();
  int latest = all.empty() ? 0 : all.back().version;
  if (current > latest) {
    return absl::FailedPreconditionError(absl::StrCat(
        "inventory ", path, " has schema version ", current, " but this controller knows only up to ",
        latest, "; run a newer ipfleet-controller"));
  }
  for (const Migration& m : all) {
    if (m.version <= current) continue;
    IPFLEET_RETURN_IF_ERROR(c.Exec("BEGIN IMMEDIATE"));
    absl::Status st = c.Exec(m.sql);
    if (st.ok()) st = c.Exec(absl::StrCat("PRAGMA user_version = ", m.version));
    if (st.ok()) st = c.Exec("COMMIT");
    if (!st.ok()) {
      (void)c.Exec("ROLLBACK");
      return absl::Status(st.code(), absl::StrCat("migration ", m.version, " (", m.description,
                                                  ") failed: ", st.message()));
    }
    spdlog::info("event=inventory_migrated version={} description=\"{}\"", m.version, m.description);
    current = m.version;
  }
  return current;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const std::filesystem::path& path,
                                                       const SqliteOptions& options) {
  // Create the file 0600 ourselves so SQLite never creates it with the umask's mode.
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::UnavailableError(absl::StrCat("open(", path.string(), "): ", std::strerror(errno)));
  }
  ::close(fd);
  IPFLEET_ASSIGN_OR_RETURN(auto conn, Connection::Open(path.string()));
  IPFLEET_RETURN_IF_ERROR(conn->Exec(absl::StrCat("PRAGMA busy_timeout = ", options.busy_timeout_ms)));
  {
    IPFLEET_ASSIGN_OR_RETURN(auto s, conn->Prepare("PRAGMA journal_mode = WAL"));
    IPFLEET_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row || s->Text(0) != "wal") {
      return absl::FailedPreconditionError(
          absl::StrCat("PRAGMA journal_mode=WAL on ", path.string(), " did not take effect"));
    }
  }
  IPFLEET_RETURN_IF_ERROR(conn->Exec(
      absl::StrCat("PRAGMA synchronous = ", options.fsync_every_commit ? "FULL" : "NORMAL")));
  IPFLEET_RETURN_IF_ERROR(conn->Exec("PRAGMA foreign_keys = ON"));
  IPFLEET_ASSIGN_OR_RETURN(int schema, Migrate(*conn, path.string()));
  return std::unique_ptr<Store>(new SqliteStore(std::move(conn), path, schema));
}

absl::Status CheckSqliteIntegrity(const std::filesystem::path& path) {
  IPFLEET_ASSIGN_OR_RETURN(auto conn, Connection::Open(path.string()));
  {
    IPFLEET_ASSIGN_OR_RETURN(auto s, conn->Prepare("PRAGMA integrity_check"));
    IPFLEET_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row || s->Text(0) != "ok") {
      return absl::DataLossError(absl::StrCat("PRAGMA integrity_check on ", path.string(), ": ",
                                              row ? s->Text(0) : "no result"));
    }
  }
  IPFLEET_ASSIGN_OR_RETURN(auto s, conn->Prepare("PRAGMA foreign_key_check"));
  IPFLEET_ASSIGN_OR_RETURN(bool row, s->Step());
  if (row) {
    return absl::DataLossError(absl::StrCat("PRAGMA foreign_key_check on ", path.string(),
                                            ": dangling reference in table ", s->Text(0)));
  }
  return absl::OkStatus();
}

}  // namespace ipfleet::inventory
