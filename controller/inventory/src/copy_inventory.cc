#include "ipfleet/controller/inventory/copy_inventory.h"

#include <absl/strings/str_cat.h>
#include <absl/strings/str_join.h>

#include <memory>
#include <vector>

#include "ipfleet/controller/inventory/open_store.h"
#include "ipfleet/controller/inventory/postgres_store.h"
#include "postgres.h"
#include "sqlite.h"

namespace ipfleet::inventory {
namespace {

struct Table {
  const char* name;
  std::vector<const char*> columns;  // a leading '*' marks a BLOB column
  const char* order;                 // keeps ids and insertion order
  const char* identity = nullptr;    // identity column whose sequence follows the copied ids
};

// Parents before children (foreign keys), every column of schema version 2 except hosts.replica
// (no session is held by anybody in the copy) and the certificates' insertion counter.
const std::vector<Table>& Tables() {
  static const std::vector<Table> kTables = {
      {"hosts",
       {"name", "created_unix", "cert_serial", "cert_not_after_unix", "enrolled", "last_seen_unix", "agent_version",
        "applied_bundle_version", "desired_bundle_version"},
       "name"},
      {"host_addresses", {"host", "kind", "position", "value"}, "host, kind, position"},
      {"host_labels", {"host", "key", "value"}, "host, key"},
      {"enrollment_tokens", {"token_sha256", "host", "created_unix", "expires_unix", "used", "used_unix"}, "token_sha256"},
      {"certificates",
       {"serial", "name", "kind", "not_before_unix", "not_after_unix", "ip_addresses", "dns_names", "pem"},
       nullptr},  // insertion order, per database (see OrderOf)
      {"revocations", {"serial", "revoked_unix", "reason"}, "serial"},
      {"health",
       {"host", "at_unix", "bundle_version", "tunnels_up", "tunnels_total", "stale_sas", "forced_renegotiations",
        "*report"},
       "host"},
      {"proposals", {"name", "*spec"}, "name"},
      {"external_peers", {"name", "address", "identity", "auth", "*spec"}, "name"},
      {"tunnels", {"name", "left_end", "right_end", "right_is_external", "mode", "auth", "proposal", "*spec"}, "name"},
      {"generations", {"id", "created_unix", "source", "*snapshot", "comment"}, "id", "id"},
      {"bundles", {"host", "version", "generation", "created_unix", "*signed_bundle"}, "host, version"},
      {"rollouts",
       {"id", "generation", "state", "current_wave", "waves", "canary_percent", "wave_size", "wave_timeout_seconds",
        "started_unix", "finished_unix", "error"},
       "id", "id"},
      {"rollout_hosts", {"rollout_id", "host", "wave", "version", "state", "error", "updated_unix"}, "rollout_id, host"},
      {"commands",
       {"id", "host", "kind", "tunnel", "peer", "issued_unix", "state", "delivered_unix", "finished_unix", "*result"},
       "id", "id"},
      {"audit_log", {"id", "at_unix", "actor", "action", "target", "detail", "ok"}, "id", "id"},
  };
  return kTables;
}

struct Db {
  std::unique_ptr<sql::Connection> conn;
  bool postgres = false;
  std::string where;
};

absl::StatusOr<Db> Connect(const std::string& spec, const std::filesystem::path& default_sqlite) {
  {
    // Opening through the store checks and migrates the schema; then a raw connection copies.
    IPFLEET_ASSIGN_OR_RETURN(auto store, OpenStore(spec, default_sqlite));
  }
  Db db;
  if (IsPostgresSpec(spec)) {
    IPFLEET_ASSIGN_OR_RETURN(db.conn, postgres::Connection::Open(spec));
    db.postgres = true;
    db.where = postgres::Redacted(spec);
  } else {
    std::filesystem::path path = SqlitePathOf(spec, default_sqlite);
    IPFLEET_ASSIGN_OR_RETURN(db.conn, sqlite::Connection::Open(path.string()));
    IPFLEET_RETURN_IF_ERROR(db.conn->Exec("PRAGMA foreign_keys = ON"));
    db.where = "sqlite:" + path.string();
  }
  return db;
}

absl::StatusOr<int64_t> Count(sql::Connection& c, const std::string& table) {
  IPFLEET_ASSIGN_OR_RETURN(auto s, c.Prepare(absl::StrCat("SELECT count(*) FROM ", table)));
  IPFLEET_ASSIGN_OR_RETURN(bool row, s->Step());
  return row ? s->Int(0) : 0;
}

std::string OrderOf(const Table& t, const Db& from) {
  if (t.order) return t.order;
  return from.postgres ? "seq" : "rowid";
}

absl::StatusOr<int64_t> CopyTable(const Table& t, Db& from, Db& to) {
  std::vector<std::string> names;
  std::vector<bool> blob;
  for (const char* c : t.columns) {
    blob.push_back(c[0] == '*');
    names.emplace_back(c[0] == '*' ? c + 1 : c);
  }
  const std::string cols = absl::StrJoin(names, ", ");
  IPFLEET_ASSIGN_OR_RETURN(auto read, from.conn->Prepare(absl::StrCat("SELECT ", cols, " FROM ", t.name, " ORDER BY ",
                                                                      OrderOf(t, from))));
  std::vector<std::string> marks(names.size(), "?");
  const std::string insert =
      absl::StrCat("INSERT INTO ", t.name, " (", cols, ") VALUES (", absl::StrJoin(marks, ", "), ")");
  int64_t rows = 0;
  while (true) {
    IPFLEET_ASSIGN_OR_RETURN(bool row, read->Step());
    if (!row) break;
    IPFLEET_ASSIGN_OR_RETURN(auto write, to.conn->Prepare(insert));
    for (size_t i = 0; i < names.size(); ++i) {
      int param = static_cast<int>(i) + 1;
      // Integers travel as their decimal text: both databases convert it to the column's type.
      if (blob[i]) {
        write->BindBlob(param, read->Blob(static_cast<int>(i)));
      } else {
        write->Bind(param, read->Text(static_cast<int>(i)));
      }
    }
    absl::Status st = write->Run();
    if (!st.ok()) return absl::Status(st.code(), absl::StrCat("copying ", t.name, " row ", rows + 1, ": ", st.message()));
    ++rows;
  }
  if (t.identity && to.postgres) {
    // Later inserts continue after the copied ids.
    IPFLEET_RETURN_IF_ERROR(to.conn->Exec(absl::StrCat(
        "SELECT setval(pg_get_serial_sequence('", t.name, "', '", t.identity, "'), coalesce(max(", t.identity,
        "), 1), max(", t.identity, ") IS NOT NULL) FROM ", t.name)));
  }
  return rows;
}

}  // namespace

absl::Status CopyInventory(const std::string& from_spec, const std::string& to_spec,
                           const std::filesystem::path& default_sqlite, const CopyProgress& progress) {
  IPFLEET_ASSIGN_OR_RETURN(Db from, Connect(from_spec, default_sqlite));
  IPFLEET_ASSIGN_OR_RETURN(Db to, Connect(to_spec, default_sqlite));
  if (from.where == to.where) return absl::InvalidArgumentError("source and destination are the same inventory");
  for (const char* t : {"hosts", "certificates", "generations"}) {
    IPFLEET_ASSIGN_OR_RETURN(int64_t n, Count(*to.conn, t));
    if (n > 0) {
      return absl::FailedPreconditionError(absl::StrCat("destination ", to.where, " is not empty (", n, " rows in ", t,
                                                        "); migrate-inventory copies into a new inventory only"));
    }
  }
  // One transaction on each side: a consistent snapshot read, an all-or-nothing write.
  IPFLEET_RETURN_IF_ERROR(from.conn->Exec(from.postgres ? "BEGIN ISOLATION LEVEL REPEATABLE READ" : "BEGIN"));
  IPFLEET_RETURN_IF_ERROR(to.conn->Exec(to.postgres ? "BEGIN" : "BEGIN IMMEDIATE"));
  for (const Table& t : Tables()) {
    absl::StatusOr<int64_t> rows = CopyTable(t, from, to);
    if (!rows.ok()) {
      (void)to.conn->Exec("ROLLBACK");
      (void)from.conn->Exec("ROLLBACK");
      return absl::Status(rows.status().code(),
                          absl::StrCat(rows.status().message(), " (nothing was written to ", to.where, ")"));
    }
    if (progress) progress(t.name, *rows);
  }
  IPFLEET_RETURN_IF_ERROR(to.conn->Exec("COMMIT"));
  (void)from.conn->Exec("ROLLBACK");
  return absl::OkStatus();
}

}  // namespace ipfleet::inventory
