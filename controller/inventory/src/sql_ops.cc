// Every Reader and Tx operation of the inventory, written once in the SQL subset that SQLite and
// PostgreSQL share (see sql.h); the two stores differ only in connections, locking and schema text.
#include "sql_ops.h"

#include <absl/strings/str_cat.h>

#include <algorithm>
#include <unordered_map>
#include <nlohmann/json.hpp>

namespace ipfleet::inventory {
namespace {

using sql::Connection;
using Stmt = sql::Statement;

std::string ToJson(const std::vector<std::string>& v) { return nlohmann::json(v).dump(); }

std::vector<std::string> FromJson(const std::string& text) {
  // Written only by ToJson; a damaged value yields an empty list rather than an exception.
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  std::vector<std::string> out;
  if (!j.is_array()) return out;
  for (const auto& e : j) {
    if (e.is_string()) out.push_back(e.get<std::string>());
  }
  return out;
}

absl::Status NotFound(std::string_view what, std::string_view name) {
  return absl::NotFoundError(absl::StrCat(std::string(what), " '", std::string(name), "' not found"));
}

// Implements every Reader and Tx operation on one connection. Callers hold the store's mutex
// (and, for writes, an open transaction).
class SqlOps final : public Tx {
 public:
  SqlOps(Connection& c, Dialect dialect) : c_(c), dialect_(std::move(dialect)) {}

  // ---- hosts ------------------------------------------------------------------------------
  static constexpr const char* kHostCols =
      "name, created_unix, cert_serial, cert_not_after_unix, enrolled, last_seen_unix, "
      "agent_version, applied_bundle_version, desired_bundle_version, replica";

  Host HostFromRow(const Stmt& s) {
    Host h;
    h.name = s.Text(0);
    h.created_unix = s.Int(1);
    h.cert_serial = s.Text(2);
    h.cert_not_after_unix = s.Int(3);
    h.enrolled = s.Bool(4);
    h.last_seen_unix = s.Int(5);
    h.agent_version = s.Text(6);
    h.applied_bundle_version = s.UInt(7);
    h.desired_bundle_version = s.UInt(8);
    h.replica = s.Text(9);
    return h;
  }

  // Addresses, DNS names and labels of `hosts` in two queries, whatever their number (one query
  // per host made a 10,000-host listing 20,000 round trips to PostgreSQL). `only` limits the
  // queries to one host.
  absl::Status LoadHostDetails(std::vector<Host>& hosts, const std::string* only) {
    std::unordered_map<std::string, Host*> by_name;
    for (Host& h : hosts) by_name[h.name] = &h;
    const char* where = only ? "WHERE host = ? " : "";
    {
      IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare(absl::StrCat("SELECT host, kind, value FROM host_addresses ", where,
                                                              "ORDER BY host, kind, position")));
      if (only) s->Bind(1, *only);
      while (true) {
        IPFLEET_ASSIGN_OR_RETURN(bool row, s->Step());
        if (!row) break;
        auto it = by_name.find(s->Text(0));
        if (it != by_name.end()) (s->Text(1) == "ip" ? it->second->addresses : it->second->dns_names).push_back(s->Text(2));
      }
    }
    IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare(absl::StrCat("SELECT host, key, value FROM host_labels ", where)));
    if (only) s->Bind(1, *only);
    while (true) {
      IPFLEET_ASSIGN_OR_RETURN(bool row, s->Step());
      if (!row) break;
      auto it = by_name.find(s->Text(0));
      if (it != by_name.end()) it->second->labels[s->Text(1)] = s->Text(2);
    }
    return absl::OkStatus();
  }

  absl::StatusOr<Host> GetHost(const std::string& name) override {
    Host h;
    {
      IPFLEET_ASSIGN_OR_RETURN(
          auto s, c_.Prepare(absl::StrCat("SELECT ", kHostCols, " FROM hosts WHERE name = ?")));
      s->Bind(1, name);
      IPFLEET_ASSIGN_OR_RETURN(bool row, s->Step());
      if (!row) return NotFound("host", name);
      h = HostFromRow(*s);
    }
    std::vector<Host> one(1, std::move(h));
    IPFLEET_RETURN_IF_ERROR(LoadHostDetails(one, &name));
    return std::move(one.front());
  }

  absl::StatusOr<std::vector<Host>> ListHosts() override {
    std::vector<Host> hosts;
    {
      IPFLEET_ASSIGN_OR_RETURN(
          auto s, c_.Prepare(absl::StrCat("SELECT ", kHostCols, " FROM hosts ORDER BY name")));
      while (true) {
        IPFLEET_ASSIGN_OR_RETURN(bool row, s->Step());
        if (!row) break;
        hosts.push_back(HostFromRow(*s));
      }
    }
    IPFLEET_RETURN_IF_ERROR(LoadHostDetails(hosts, nullptr));
    // Byte order, as SQLite sorts: PostgreSQL's ORDER BY follows the database's collation.
    std::sort(hosts.begin(), hosts.end(), [](const Host& a, const Host& b) { return a.name < b.name; });
    return hosts;
  }

  absl::Status WriteHostDetails(const Host& h) {
    {
      IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare("DELETE FROM host_addresses WHERE host = ?"));
      IPFLEET_RETURN_IF_ERROR(s->Bind(1, h.name).Defer(absl::OkStatus()));
    }
    {
      IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare("DELETE FROM host_labels WHERE host = ?"));
      IPFLEET_RETURN_IF_ERROR(s->Bind(1, h.name).Defer(absl::OkStatus()));
    }
    auto put_addr = [&](const char* kind, const std::vector<std::string>& values) -> absl::Status {
      for (size_t i = 0; i < values.size(); ++i) {
        IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare("INSERT INTO host_addresses (host, kind, "
                                                   "position, value) VALUES (?, ?, ?, ?)"));
        IPFLEET_RETURN_IF_ERROR(
            s->Bind(1, h.name).Bind(2, kind).Bind(3, static_cast<int64_t>(i)).Bind(4, values[i]).Defer(absl::OkStatus()));
      }
      return absl::OkStatus();
    };
    IPFLEET_RETURN_IF_ERROR(put_addr("ip", h.addresses));
    IPFLEET_RETURN_IF_ERROR(put_addr("dns", h.dns_names));
    for (const auto& [k, v] : h.labels) {
      IPFLEET_ASSIGN_OR_RETURN(
          auto s, c_.Prepare("INSERT INTO host_labels (host, key, value) VALUES (?, ?, ?)"));
      IPFLEET_RETURN_IF_ERROR(s->Bind(1, h.name).Bind(2, k).Bind(3, v).Defer(absl::OkStatus()));
    }
    return absl::OkStatus();
  }

  absl::Status AddHost(const Host& h) override {
    if (h.name.empty()) return absl::InvalidArgumentError("host name must not be empty");
    {
      IPFLEET_ASSIGN_OR_RETURN(
          auto s, c_.Prepare("INSERT INTO hosts (name, created_unix, cert_serial, cert_not_after_unix, "
                             "enrolled, last_seen_unix, agent_version, applied_bundle_version, "
                             "desired_bundle_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"));
      s->Bind(1, h.name).Bind(2, h.created_unix).Bind(3, h.cert_serial).Bind(4, h.cert_not_after_unix);
      s->BindBool(5, h.enrolled).Bind(6, h.last_seen_unix).Bind(7, h.agent_version);
      s->Bind(8, static_cast<int64_t>(h.applied_bundle_version));
      s->Bind(9, static_cast<int64_t>(h.desired_bundle_version));
      absl::Status st = s->Run();
      if (absl::IsAlreadyExists(st)) {
        return absl::AlreadyExistsError(absl::StrCat("host '", h.name, "' already exists"));
      }
      IPFLEET_RETURN_IF_ERROR(st);
    }
    return WriteHostDetails(h);
  }

  // The id a `... RETURNING id` statement produced.
  static absl::StatusOr<uint64_t> InsertedId(Stmt& s) {
    IPFLEET_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) return absl::InternalError("INSERT ... RETURNING id returned no row");
    return s.UInt(0);
  }

  // NotFound unless the host exists (one indexed lookup, without the host's details).
  absl::Status ExpectHost(const std::string& name) {
    IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare("SELECT 1 FROM hosts WHERE name = ?"));
    IPFLEET_ASSIGN_OR_RETURN(bool row, s->Bind(1, name).Step());
    return row ? absl::OkStatus() : NotFound("host", name);
  }

  absl::Status ExpectChanged(std::string_view what, std::string_view name) {
    return c_.Changes() > 0 ? absl::OkStatus() : NotFound(what, name);
  }

  // The frequent writes (sessions, rollout waves) are deferred: on PostgreSQL a transaction of
  // thousands of them is a few round trips, not thousands. NotFound (at commit at the latest)
  // when `s` changed no row.
  static absl::Status DeferChanging(Stmt& s, std::string_view what, std::string_view name) {
    return s.Defer(NotFound(what, name));
  }

  // Writes `rows` (deferred) with statements of kRowsPerStatement rows each, the rest one by one:
  // one parse and one execution for many rows (a 10,000-host mesh has 45,000 tunnels). `head`
  // ends with "VALUES", `tail` follows the row list (an ON CONFLICT clause, or nothing);
  // bind(stmt, first, row) binds the row's `columns` values at indexes first, first + 1, ...
  template <typename Row, typename BindRow>
  absl::Status WriteRows(const std::string& head, int columns, const std::string& tail, const std::vector<Row>& rows,
                         BindRow bind) {
    auto text = [&](size_t n) -> std::string {
      std::string one = "(?";
      for (int c = 1; c < columns; ++c) one += ", ?";
      one += ")";
      std::string sql = absl::StrCat(head, " ", one);
      for (size_t r = 1; r < n; ++r) absl::StrAppend(&sql, ", ", one);
      return absl::StrCat(sql, " ", tail);
    };
    size_t i = 0;
    if (rows.size() >= kRowsPerStatement) {
      const std::string many = text(kRowsPerStatement);
      for (; i + kRowsPerStatement <= rows.size(); i += kRowsPerStatement) {
        IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare(many));
        for (size_t k = 0; k < kRowsPerStatement; ++k) bind(*s, static_cast<int>(k) * columns + 1, rows[i + k]);
        IPFLEET_RETURN_IF_ERROR(s->Defer(absl::OkStatus()));
      }
    }
    if (i == rows.size()) return absl::OkStatus();
    const std::string single = text(1);
    for (; i < rows.size(); ++i) {
      IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare(single));
      bind(*s, 1, rows[i]);
      IPFLEET_RETURN_IF_ERROR(s->Defer(absl::OkStatus()));
    }
    return absl::OkStatus();
  }
  static constexpr size_t kRowsPerStatement = 64;

  absl::Status UpdateHost(const Host& h) override {
    IPFLEET_ASSIGN_OR_RETURN(Host existing, GetHost(h.name));
    (void)existing;
    return WriteHostDetails(h);
  }

  absl::Status RemoveHost(const std::string& name) override {
    IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare("DELETE FROM hosts WHERE name = ?"));
    IPFLEET_RETURN_IF_ERROR(s->Bind(1, name).Run());
    return ExpectChanged("host", name);
  }

  absl::Status SetHostCertificate(const std::string& host, const std::string& serial,
                                  int64_t not_after) override {
    IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare("UPDATE hosts SET cert_serial = ?, "
                                               "cert_not_after_unix = ?, enrolled = 1 WHERE name = ?"));
    IPFLEET_RETURN_IF_ERROR(s->Bind(1, serial).Bind(2, not_after).Bind(3, host).Run());
    return ExpectChanged("host", host);
  }

  absl::Status SetHostSeen(const std::string& host, int64_t last_seen,
                           const std::string& agent_version) override {
    IPFLEET_ASSIGN_OR_RETURN(
        auto s, c_.Prepare("UPDATE hosts SET last_seen_unix = CASE WHEN last_seen_unix > ? THEN last_seen_unix "
                           "ELSE ? END, agent_version = CASE WHEN ? = '' THEN agent_version ELSE ? END "
                           "WHERE name = ?"));
    s->Bind(1, last_seen).Bind(2, last_seen).Bind(3, agent_version).Bind(4, agent_version);
    return DeferChanging(s->Bind(5, host), "host", host);
  }

  absl::Status SetAppliedBundleVersion(const std::string& host, uint64_t version) override {
    IPFLEET_ASSIGN_OR_RETURN(
        auto s, c_.Prepare("UPDATE hosts SET applied_bundle_version = ? WHERE name = ?"));
    return DeferChanging(s->Bind(1, static_cast<int64_t>(version)).Bind(2, host), "host", host);
  }

  absl::Status SetDesiredBundleVersion(const std::string& host, uint64_t version) override {
    IPFLEET_ASSIGN_OR_RETURN(
        auto s, c_.Prepare("UPDATE hosts SET desired_bundle_version = ? WHERE name = ?"));
    return DeferChanging(s->Bind(1, static_cast<int64_t>(version)).Bind(2, host), "host", host);
  }

  // ---- enrollment tokens ------------------------------------------------------------------
  absl::StatusOr<EnrollmentToken> GetEnrollmentToken(const std::string& hash) override {
    IPFLEET_ASSIGN_OR_RETURN(
        auto s, c_.Prepare("SELECT token_sha256, host, created_unix, expires_unix, used, used_unix "
                           "FROM enrollment_tokens WHERE token_sha256 = ?"));
    s->Bind(1, hash);
    IPFLEET_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) return absl::NotFoundError("unknown enrollment token");
    EnrollmentToken t;
    t.token_sha256 = s->Text(0);
    t.host = s->Text(1);
    t.created_unix = s->Int(2);
    t.expires_unix = s->Int(3);
    t.used = s->Bool(4);
    t.used_unix = s->Int(5);
    return t;
  }

  absl::Status AddEnrollmentToken(const EnrollmentToken& t) override {
    IPFLEET_ASSIGN_OR_RETURN(
        auto s, c_.Prepare("INSERT INTO enrollment_tokens (token_sha256, host, created_unix, "
                           "expires_unix, used, used_unix) VALUES (?, ?, ?, ?, ?, ?)"));
    s->Bind(1, t.token_sha256).Bind(2, t.host).Bind(3, t.created_unix).Bind(4, t.expires_unix);
    s->BindBool(5, t.used).Bind(6, t.used_unix);
    return s->Run();
  }

  absl::Status ConsumeEnrollmentToken(const std::string& hash, const std::string& host,
                                      int64_t now) override {
    IPFLEET_RETURN_IF_ERROR(CheckEnrollmentToken(GetEnrollmentToken(hash), host, now));
    IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare("UPDATE enrollment_tokens SET used = 1, used_unix = ? "
                                               "WHERE token_sha256 = ? AND used = 0"));
    IPFLEET_RETURN_IF_ERROR(s->Bind(1, now).Bind(2, hash).Run());
    if (c_.Changes() != 1) return absl::FailedPreconditionError("enrollment token was already used");
    return absl::OkStatus();
  }

  // ---- certificates -----------------------------------------------------------------------
  static constexpr const char* kCertSelect =
      "SELECT c.serial, c.name, c.kind, c.not_before_unix, c.not_after_unix, c.ip_addresses, "
      "c.dns_names, c.pem, CASE WHEN r.serial IS NULL THEN 0 ELSE 1 END, coalesce(r.revoked_unix, 0), "
      "coalesce(r.reason, '') FROM certificates c LEFT JOIN revocations r ON r.serial = c.serial ";

  Certificate CertFromRow(const Stmt& s) {
    Certificate c;
    c.serial = s.Text(0);
    c.name = s.Text(1);
    c.kind = s.Text(2);
    c.not_before_unix = s.Int(3);
    c.not_after_unix = s.Int(4);
    c.ip_addresses = FromJson(s.Text(5));
    c.dns_names = FromJson(s.Text(6));
    c.pem = s.Text(7);
    c.revoked = s.Bool(8);
    c.revoked_unix = s.Int(9);
    c.revocation_reason = s.Text(10);
    return c;
  }

  absl::StatusOr<std::vector<Certificate>> QueryCerts(const std::string& where,
                                                     const std::string* arg) {
    IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare(absl::StrCat(kCertSelect, where)));
    if (arg) s->Bind(1, *arg);
    std::vector<Certificate> out;
    while (true) {
      IPFLEET_ASSIGN_OR_RETURN(bool row, s->Step());
      if (!row) break;
      out.push_back(CertFromRow(*s));
    }
    return out;
  }

  absl::StatusOr<Certificate> GetCertificate(const std::string& serial) override {
    IPFLEET_ASSIGN_OR_RETURN(auto v, QueryCerts("WHERE c.serial = ?", &serial));
    if (v.empty()) return NotFound("certificate with serial", serial);
    return v.front();
  }

  absl::StatusOr<std::vector<Certificate>> ListCertificates(bool include_revoked) override {
    return QueryCerts(include_revoked ? "ORDER BY c.not_before_unix, c.serial"
                                      : "WHERE r.serial IS NULL ORDER BY c.not_before_unix, c.serial",
                      nullptr);
  }

  absl::StatusOr<std::vector<Certificate>> CertificatesFor(const std::string& name) override {
    return QueryCerts(absl::StrCat("WHERE c.name = ? ORDER BY c.not_before_unix DESC, ", dialect_.cert_insertion_order,
                                   " DESC"),
                      &name);
  }

  absl::Status PutCertificate(const Certificate& c) override {
    IPFLEET_ASSIGN_OR_RETURN(
        auto s, c_.Prepare("INSERT INTO certificates (serial, name, kind, not_before_unix, "
                           "not_after_unix, ip_addresses, dns_names, pem) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"));
    s->Bind(1, c.serial).Bind(2, c.name).Bind(3, c.kind).Bind(4, c.not_before_unix);
    s->Bind(5, c.not_after_unix).Bind(6, ToJson(c.ip_addresses)).Bind(7, ToJson(c.dns_names));
    s->Bind(8, c.pem);
    IPFLEET_RETURN_IF_ERROR(s->Defer(absl::OkStatus()));
    if (c.revoked) return RevokeCertificate(c.serial, c.revocation_reason, c.revoked_unix);
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<RevocationRecord>> ListRevocations() override {
    IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare("SELECT serial, revoked_unix, reason FROM revocations "
                                               "ORDER BY revoked_unix, serial"));
    std::vector<RevocationRecord> out;
    while (true) {
      IPFLEET_ASSIGN_OR_RETURN(bool row, s->Step());
      if (!row) break;
      out.push_back({s->Text(0), s->Int(1), s->Text(2)});
    }
    return out;
  }

  absl::Status RevokeCertificate(const std::string& serial, const std::string& reason,
                                 int64_t now) override {
    IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare("INSERT INTO revocations (serial, revoked_unix, reason) "
                                               "VALUES (?, ?, ?) ON CONFLICT (serial) DO NOTHING"));
    return s->Bind(1, serial).Bind(2, now).Bind(3, reason).Defer(absl::OkStatus());
  }

  // ---- health -----------------------------------------------------------------------------
  static constexpr const char* kHealthSelect =
      "SELECT host, at_unix, bundle_version, tunnels_up, tunnels_total, stale_sas, "
      "forced_renegotiations, report FROM health ";

  HealthRecord HealthFromRow(const Stmt& s) {
    HealthRecord h;
    h.host = s.Text(0);
    h.at_unix = s.Int(1);
    h.bundle_version = s.UInt(2);
    h.tunnels_up = static_cast<uint32_t>(s.Int(3));
    h.tunnels_total = static_cast<uint32_t>(s.Int(4));
    h.stale_sas = static_cast<uint32_t>(s.Int(5));
    h.forced_renegotiations = s.UInt(6);
    h.report = s.Blob(7);
    return h;
  }

  absl::StatusOr<HealthRecord> GetHealth(const std::string& host) override {
    IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare(absl::StrCat(kHealthSelect, "WHERE host = ?")));
    s->Bind(1, host);
    IPFLEET_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) return NotFound("health report of host", host);
    return HealthFromRow(*s);
  }

  absl::StatusOr<std::vector<HealthRecord>> ListHealth() override {
    IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare(absl::StrCat(kHealthSelect, "ORDER BY host")));
    std::vector<HealthRecord> out;
    while (true) {
      IPFLEET_ASSIGN_OR_RETURN(bool row, s->Step());
      if (!row) break;
      out.push_back(HealthFromRow(*s));
    }
    return out;
  }

  absl::Status PutHealth(const HealthRecord& h) override {
    // Inserted from the host's own row: nothing (NotFound) for an unknown host, where a foreign
    // key failure would abort the transaction on PostgreSQL.
    IPFLEET_ASSIGN_OR_RETURN(
        auto s, c_.Prepare("INSERT INTO health (host, at_unix, bundle_version, tunnels_up, "
                           "tunnels_total, stale_sas, forced_renegotiations, report) "
                           "SELECT name, ?, ?, ?, ?, ?, ?, ? FROM hosts WHERE name = ? ON CONFLICT (host) DO UPDATE SET "
                           "at_unix = excluded.at_unix, bundle_version = excluded.bundle_version, "
                           "tunnels_up = excluded.tunnels_up, tunnels_total = excluded.tunnels_total, "
                           "stale_sas = excluded.stale_sas, forced_renegotiations = excluded.forced_renegotiations, "
                           "report = excluded.report"));
    s->Bind(1, h.at_unix).Bind(2, static_cast<int64_t>(h.bundle_version));
    s->Bind(3, static_cast<int64_t>(h.tunnels_up)).Bind(4, static_cast<int64_t>(h.tunnels_total));
    s->Bind(5, static_cast<int64_t>(h.stale_sas));
    s->Bind(6, static_cast<int64_t>(h.forced_renegotiations)).BindBlob(7, h.report);
    return DeferChanging(s->Bind(8, h.host), "host", h.host);
  }

  // ---- desired inventory and generations ---------------------------------------------------
  absl::StatusOr<uint64_t> CurrentGeneration() override {
    IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare("SELECT coalesce(max(id), 0) FROM generations"));
    IPFLEET_ASSIGN_OR_RETURN(bool row, s->Step());
    return row ? s->UInt(0) : 0;
  }

  absl::StatusOr<Generation> GetGeneration(uint64_t id) override {
    IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare("SELECT id, created_unix, source, snapshot, comment "
                                               "FROM generations WHERE id = ?"));
    s->Bind(1, static_cast<int64_t>(id));
    IPFLEET_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) return NotFound("generation", std::to_string(id));
    Generation g;
    g.id = s->UInt(0);
    g.created_unix = s->Int(1);
    g.source = s->Text(2);
    g.snapshot = s->Blob(3);
    g.comment = s->Text(4);
    return g;
  }

  absl::StatusOr<DesiredInventory> GetDesired() override {
    DesiredInventory d;
    {
      IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare("SELECT name, spec FROM proposals ORDER BY name"));
      while (true) {
        IPFLEET_ASSIGN_OR_RETURN(bool row, s->Step());
        if (!row) break;
        d.proposals.push_back({s->Text(0), s->Blob(1)});
      }
    }
    {
      IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare("SELECT name, address, identity, auth, spec FROM "
                                                 "external_peers ORDER BY name"));
      while (true) {
        IPFLEET_ASSIGN_OR_RETURN(bool row, s->Step());
        if (!row) break;
        d.external_peers.push_back(
            {s->Text(0), s->Text(1), s->Text(2), static_cast<int>(s->Int(3)), s->Blob(4)});
      }
    }
    IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare("SELECT name, left_end, right_end, right_is_external, "
                                               "mode, auth, proposal, spec FROM tunnels ORDER BY name"));
    while (true) {
      IPFLEET_ASSIGN_OR_RETURN(bool row, s->Step());
      if (!row) break;
      TunnelRecord t;
      t.name = s->Text(0);
      t.left = s->Text(1);
      t.right = s->Text(2);
      t.right_is_external = s->Bool(3);
      t.mode = static_cast<int>(s->Int(4));
      t.auth = static_cast<int>(s->Int(5));
      t.proposal = s->Text(6);
      t.spec = s->Blob(7);
      d.tunnels.push_back(std::move(t));
    }
    return d;
  }

  absl::Status ReplaceDesired(const DesiredInventory& d) override {
    IPFLEET_RETURN_IF_ERROR(c_.Exec("DELETE FROM tunnels; DELETE FROM external_peers; DELETE FROM proposals;"));
    for (const auto& p : d.proposals) {
      IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare("INSERT INTO proposals (name, spec) VALUES (?, ?)"));
      IPFLEET_RETURN_IF_ERROR(s->Bind(1, p.name).BindBlob(2, p.spec).Defer(absl::OkStatus()));
    }
    for (const auto& p : d.external_peers) {
      IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare("INSERT INTO external_peers (name, address, identity, "
                                                 "auth, spec) VALUES (?, ?, ?, ?, ?)"));
      s->Bind(1, p.name).Bind(2, p.address).Bind(3, p.identity).Bind(4, static_cast<int64_t>(p.auth));
      IPFLEET_RETURN_IF_ERROR(s->BindBlob(5, p.spec).Defer(absl::OkStatus()));
    }
    return WriteRows("INSERT INTO tunnels (name, left_end, right_end, right_is_external, mode, auth, proposal, spec) "
                     "VALUES", 8, "", d.tunnels, [](Stmt& s, int at, const TunnelRecord& t) {
                       s.Bind(at, t.name).Bind(at + 1, t.left).Bind(at + 2, t.right).BindBool(at + 3, t.right_is_external);
                       s.Bind(at + 4, static_cast<int64_t>(t.mode)).Bind(at + 5, static_cast<int64_t>(t.auth));
                       s.Bind(at + 6, t.proposal).BindBlob(at + 7, t.spec);
                     });
  }

  absl::StatusOr<uint64_t> AddGeneration(const Generation& g) override {
    IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare("INSERT INTO generations (created_unix, source, "
                                               "snapshot, comment) VALUES (?, ?, ?, ?) RETURNING id"));
    s->Bind(1, g.created_unix).Bind(2, g.source).BindBlob(3, g.snapshot).Bind(4, g.comment);
    return InsertedId(*s);
  }

  // ---- bundles ----------------------------------------------------------------------------
  // The highest-version bundle of the host.
  static BundleRecord BundleFromRow(const Stmt& s) {
    return {s.Text(0), s.UInt(1), s.UInt(2), s.Int(3), s.Blob(4)};
  }

  absl::StatusOr<BundleRecord> LatestBundle(const std::string& host) override {
    IPFLEET_ASSIGN_OR_RETURN(std::vector<BundleRecord> one, LatestBundles({host}));
    if (one.empty()) return NotFound("bundle of host", host);
    return std::move(one.front());
  }

  absl::StatusOr<std::vector<BundleRecord>> LatestBundles(const std::vector<std::string>& hosts) override {
    IPFLEET_ASSIGN_OR_RETURN(
        auto s, c_.Prepare(absl::StrCat("SELECT b.host, b.version, b.generation, b.created_unix, b.signed_bundle "
                                        "FROM bundles b WHERE b.host IN (", dialect_.strings_of_json_array, ") AND "
                                        "b.version = (SELECT max(version) FROM bundles WHERE host = b.host)")));
    s->Bind(1, ToJson(hosts));
    std::vector<BundleRecord> out;
    while (true) {
      IPFLEET_ASSIGN_OR_RETURN(bool row, s->Step());
      if (!row) break;
      out.push_back(BundleFromRow(*s));
    }
    return out;
  }

  absl::StatusOr<uint64_t> NextBundleVersion(const std::string& host) override {
    IPFLEET_ASSIGN_OR_RETURN(std::vector<uint64_t> one, NextBundleVersions({host}));
    return one.front();
  }

  absl::StatusOr<std::vector<uint64_t>> NextBundleVersions(const std::vector<std::string>& hosts) override {
    IPFLEET_ASSIGN_OR_RETURN(
        auto s, c_.Prepare(absl::StrCat("SELECT h.name, h.applied_bundle_version, h.desired_bundle_version, "
                                        "coalesce((SELECT max(version) FROM bundles WHERE host = h.name), 0) "
                                        "FROM hosts h WHERE h.name IN (", dialect_.strings_of_json_array, ")")));
    s->Bind(1, ToJson(hosts));
    std::unordered_map<std::string, uint64_t> next;
    while (true) {
      IPFLEET_ASSIGN_OR_RETURN(bool row, s->Step());
      if (!row) break;
      next[s->Text(0)] = std::max({s->UInt(1), s->UInt(2), s->UInt(3)}) + 1;
    }
    std::vector<uint64_t> out;
    out.reserve(hosts.size());
    for (const std::string& h : hosts) {
      auto it = next.find(h);
      if (it == next.end()) return NotFound("host", h);
      out.push_back(it->second);
    }
    return out;
  }

  absl::Status PutBundle(const BundleRecord& b) override {
    IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare("INSERT INTO bundles (host, version, generation, "
                                               "created_unix, signed_bundle) VALUES (?, ?, ?, ?, ?)"));
    s->Bind(1, b.host).Bind(2, static_cast<int64_t>(b.version)).Bind(3, static_cast<int64_t>(b.generation));
    return s->Bind(4, b.created_unix).BindBlob(5, b.signed_bundle).Defer(absl::OkStatus());
  }

  // ---- rollouts ---------------------------------------------------------------------------
  absl::StatusOr<Rollout> QueryRollout(const char* sql, int64_t id) {
    Rollout r;
    {
      IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare(sql));
      if (id >= 0) s->Bind(1, id);
      IPFLEET_ASSIGN_OR_RETURN(bool row, s->Step());
      if (!row) {
        return id >= 0 ? NotFound("rollout", std::to_string(id))
                       : absl::NotFoundError("no rollout yet; start one with `ipfleet rollout start`");
      }
      r.id = s->UInt(0);
      r.generation = s->UInt(1);
      r.state = static_cast<RolloutState>(s->Int(2));
      r.current_wave = static_cast<uint32_t>(s->Int(3));
      r.waves = static_cast<uint32_t>(s->Int(4));
      r.canary_percent = static_cast<uint32_t>(s->Int(5));
      r.wave_size = static_cast<uint32_t>(s->Int(6));
      r.wave_timeout_seconds = static_cast<uint32_t>(s->Int(7));
      r.started_unix = s->Int(8);
      r.finished_unix = s->Int(9);
      r.error = s->Text(10);
    }
    IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare("SELECT host, wave, version, state, error, updated_unix "
                                               "FROM rollout_hosts WHERE rollout_id = ? ORDER BY wave, host"));
    s->Bind(1, static_cast<int64_t>(r.id));
    while (true) {
      IPFLEET_ASSIGN_OR_RETURN(bool row, s->Step());
      if (!row) break;
      RolloutHost h;
      h.host = s->Text(0);
      h.wave = static_cast<uint32_t>(s->Int(1));
      h.version = s->UInt(2);
      h.state = static_cast<HostRolloutState>(s->Int(3));
      h.error = s->Text(4);
      h.updated_unix = s->Int(5);
      r.hosts.push_back(std::move(h));
    }
    return r;
  }

  static constexpr const char* kRolloutCols =
      "SELECT id, generation, state, current_wave, waves, canary_percent, wave_size, "
      "wave_timeout_seconds, started_unix, finished_unix, error FROM rollouts ";

  absl::StatusOr<Rollout> GetRollout(uint64_t id) override {
    static const std::string sql = absl::StrCat(kRolloutCols, "WHERE id = ?");
    return QueryRollout(sql.c_str(), static_cast<int64_t>(id));
  }

  absl::StatusOr<Rollout> LatestRollout() override {
    static const std::string sql = absl::StrCat(kRolloutCols, "ORDER BY id DESC LIMIT 1");
    return QueryRollout(sql.c_str(), -1);
  }

  absl::StatusOr<uint64_t> CreateRollout(const Rollout& r) override {
    IPFLEET_ASSIGN_OR_RETURN(
        auto s, c_.Prepare("INSERT INTO rollouts (generation, state, current_wave, waves, canary_percent, "
                           "wave_size, wave_timeout_seconds, started_unix, finished_unix, error) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"));
    s->Bind(1, static_cast<int64_t>(r.generation)).Bind(2, static_cast<int64_t>(r.state));
    s->Bind(3, static_cast<int64_t>(r.current_wave)).Bind(4, static_cast<int64_t>(r.waves));
    s->Bind(5, static_cast<int64_t>(r.canary_percent)).Bind(6, static_cast<int64_t>(r.wave_size));
    s->Bind(7, static_cast<int64_t>(r.wave_timeout_seconds)).Bind(8, r.started_unix);
    IPFLEET_ASSIGN_OR_RETURN(uint64_t id, InsertedId(s->Bind(9, r.finished_unix).Bind(10, r.error)));
    IPFLEET_RETURN_IF_ERROR(PutRolloutHosts(id, r.hosts));
    return id;
  }

  absl::Status UpdateRollout(const Rollout& r) override {
    IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare("UPDATE rollouts SET state = ?, current_wave = ?, waves = ?, "
                                               "finished_unix = ?, error = ? WHERE id = ?"));
    s->Bind(1, static_cast<int64_t>(r.state)).Bind(2, static_cast<int64_t>(r.current_wave));
    s->Bind(3, static_cast<int64_t>(r.waves)).Bind(4, r.finished_unix).Bind(5, r.error);
    return DeferChanging(s->Bind(6, static_cast<int64_t>(r.id)), "rollout", std::to_string(r.id));
  }

  absl::Status PutRolloutHost(uint64_t rollout_id, const RolloutHost& h) override {
    return PutRolloutHosts(rollout_id, {h});
  }

  absl::Status PutRolloutHosts(uint64_t rollout_id, const std::vector<RolloutHost>& hosts) override {
    return WriteRows("INSERT INTO rollout_hosts (rollout_id, host, wave, version, state, error, updated_unix) VALUES",
                     7, "ON CONFLICT (rollout_id, host) DO UPDATE SET wave = excluded.wave, version = excluded.version, "
                     "state = excluded.state, error = excluded.error, updated_unix = excluded.updated_unix",
                     hosts, [rollout_id](Stmt& s, int at, const RolloutHost& h) {
                       s.Bind(at, static_cast<int64_t>(rollout_id)).Bind(at + 1, h.host);
                       s.Bind(at + 2, static_cast<int64_t>(h.wave)).Bind(at + 3, static_cast<int64_t>(h.version));
                       s.Bind(at + 4, static_cast<int64_t>(h.state)).Bind(at + 5, h.error).Bind(at + 6, h.updated_unix);
                     });
  }

  // ---- commands ---------------------------------------------------------------------------
  static constexpr const char* kCommandSelect =
      "SELECT id, host, kind, tunnel, peer, issued_unix, state, delivered_unix, finished_unix, result "
      "FROM commands ";

  CommandRecord CommandFromRow(const Stmt& s) {
    CommandRecord c;
    c.id = s.UInt(0);
    c.host = s.Text(1);
    c.kind = static_cast<int>(s.Int(2));
    c.tunnel = s.Text(3);
    c.peer = s.Text(4);
    c.issued_unix = s.Int(5);
    c.state = static_cast<CommandState>(s.Int(6));
    c.delivered_unix = s.Int(7);
    c.finished_unix = s.Int(8);
    c.result = s.Blob(9);
    return c;
  }

  absl::StatusOr<CommandRecord> GetCommand(uint64_t id) override {
    IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare(absl::StrCat(kCommandSelect, "WHERE id = ?")));
    s->Bind(1, static_cast<int64_t>(id));
    IPFLEET_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) return NotFound("command", std::to_string(id));
    return CommandFromRow(*s);
  }

  absl::StatusOr<std::vector<CommandRecord>> PendingCommands(const std::string& host,
                                                             uint64_t after_id) override {
    IPFLEET_ASSIGN_OR_RETURN(
        auto s, c_.Prepare(absl::StrCat(kCommandSelect, "WHERE host = ? AND id > ? AND state IN (1, 2) "
                                                        "ORDER BY id")));
    s->Bind(1, host).Bind(2, static_cast<int64_t>(after_id));
    std::vector<CommandRecord> out;
    while (true) {
      IPFLEET_ASSIGN_OR_RETURN(bool row, s->Step());
      if (!row) break;
      out.push_back(CommandFromRow(*s));
    }
    return out;
  }

  absl::StatusOr<uint64_t> CountPendingCommands() override {
    IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare("SELECT count(*) FROM commands WHERE state IN (1, 2)"));
    IPFLEET_ASSIGN_OR_RETURN(bool row, s->Step());
    return row ? s->UInt(0) : 0;
  }

  absl::StatusOr<uint64_t> EnqueueCommand(const CommandRecord& c) override {
    IPFLEET_ASSIGN_OR_RETURN(
        auto s, c_.Prepare("INSERT INTO commands (host, kind, tunnel, peer, issued_unix, state, "
                           "delivered_unix, finished_unix, result) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                           "RETURNING id"));
    s->Bind(1, c.host).Bind(2, static_cast<int64_t>(c.kind)).Bind(3, c.tunnel).Bind(4, c.peer);
    s->Bind(5, c.issued_unix).Bind(6, static_cast<int64_t>(c.state)).Bind(7, c.delivered_unix);
    IPFLEET_RETURN_IF_ERROR(ExpectHost(c.host));  // before the insert, as in PutHealth
    return InsertedId(s->Bind(8, c.finished_unix).BindBlob(9, c.result));
  }

  absl::Status UpdateCommand(const CommandRecord& c) override {
    IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare("UPDATE commands SET state = ?, delivered_unix = ?, "
                                               "finished_unix = ?, result = ? WHERE id = ?"));
    s->Bind(1, static_cast<int64_t>(c.state)).Bind(2, c.delivered_unix).Bind(3, c.finished_unix);
    return DeferChanging(s->BindBlob(4, c.result).Bind(5, static_cast<int64_t>(c.id)), "command", std::to_string(c.id));
  }

  // ---- audit ------------------------------------------------------------------------------
  absl::Status AppendAudit(const AuditEntry& e) override {
    IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare("INSERT INTO audit_log (at_unix, actor, action, target, "
                                               "detail, ok) VALUES (?, ?, ?, ?, ?, ?)"));
    s->Bind(1, e.at_unix).Bind(2, e.actor).Bind(3, e.action).Bind(4, e.target).Bind(5, e.detail);
    return s->BindBool(6, e.ok).Defer(absl::OkStatus());
  }

  absl::StatusOr<std::vector<AuditEntry>> ListAudit(size_t limit) override {
    IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare("SELECT id, at_unix, actor, action, target, detail, ok "
                                               "FROM audit_log ORDER BY id DESC LIMIT ?"));
    s->Bind(1, static_cast<int64_t>(limit));
    std::vector<AuditEntry> out;
    while (true) {
      IPFLEET_ASSIGN_OR_RETURN(bool row, s->Step());
      if (!row) break;
      out.push_back({s->UInt(0), s->Int(1), s->Text(2), s->Text(3), s->Text(4), s->Text(5), s->Bool(6)});
    }
    return out;
  }

  // ---- replicas and the bus ----------------------------------------------------------------
  absl::StatusOr<std::vector<ReplicaRecord>> ListReplicas() override {
    IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare("SELECT id, endpoint, started_unix, heartbeat_unix, leader "
                                               "FROM replicas ORDER BY id"));
    std::vector<ReplicaRecord> out;
    while (true) {
      IPFLEET_ASSIGN_OR_RETURN(bool row, s->Step());
      if (!row) break;
      out.push_back({s->Text(0), s->Text(1), s->Int(2), s->Int(3), s->Bool(4)});
    }
    return out;
  }

  absl::Status PutReplica(const ReplicaRecord& r) override {
    IPFLEET_ASSIGN_OR_RETURN(
        auto s, c_.Prepare("INSERT INTO replicas (id, endpoint, started_unix, heartbeat_unix, leader) "
                           "VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET endpoint = excluded.endpoint, "
                           "started_unix = excluded.started_unix, heartbeat_unix = excluded.heartbeat_unix, "
                           "leader = excluded.leader"));
    s->Bind(1, r.id).Bind(2, r.endpoint).Bind(3, r.started_unix).Bind(4, r.heartbeat_unix);
    IPFLEET_RETURN_IF_ERROR(s->BindBool(5, r.leader).Run());
    if (!r.leader) return absl::OkStatus();
    // Leadership is exclusive: a dead leader's row must not go on claiming it until its heartbeat ages.
    IPFLEET_ASSIGN_OR_RETURN(auto others, c_.Prepare("UPDATE replicas SET leader = 0 WHERE id <> ?"));
    return others->Bind(1, r.id).Run();
  }

  absl::Status SetHostReplica(const std::string& host, const std::string& replica) override {
    IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare("UPDATE hosts SET replica = ? WHERE name = ?"));
    return s->Bind(1, replica).Bind(2, host).Defer(absl::OkStatus());  // a host removed meanwhile: nothing
  }

  absl::Status ReleaseHostReplica(const std::string& host, const std::string& replica) override {
    IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare("UPDATE hosts SET replica = '' WHERE name = ? AND replica = ?"));
    return s->Bind(1, host).Bind(2, replica).Defer(absl::OkStatus());
  }

  absl::Status ClearHostsOfReplica(const std::string& replica) override {
    IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare("UPDATE hosts SET replica = '' WHERE replica = ?"));
    return s->Bind(1, replica).Run();
  }

  absl::StatusOr<std::vector<BusMessage>> ReadBus(uint64_t after_seq, size_t limit) override {
    IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare("SELECT seq, at_unix, origin, host, kind, payload FROM bus "
                                               "WHERE seq > ? ORDER BY seq LIMIT ?"));
    s->Bind(1, static_cast<int64_t>(after_seq)).Bind(2, static_cast<int64_t>(limit));
    std::vector<BusMessage> out;
    while (true) {
      IPFLEET_ASSIGN_OR_RETURN(bool row, s->Step());
      if (!row) break;
      out.push_back({s->UInt(0), s->Int(1), s->Text(2), s->Text(3), s->Text(4), s->Blob(5)});
    }
    return out;
  }

  absl::StatusOr<uint64_t> LastBusSeq() override {
    IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare("SELECT coalesce(max(seq), 0) FROM bus"));
    IPFLEET_ASSIGN_OR_RETURN(bool row, s->Step());
    return row ? s->UInt(0) : 0;
  }

  absl::Status AppendBus(const BusMessage& m) override {
    IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare("INSERT INTO bus (at_unix, origin, host, kind, payload) "
                                               "VALUES (?, ?, ?, ?, ?)"));
    s->Bind(1, m.at_unix).Bind(2, m.origin).Bind(3, m.host).Bind(4, m.kind).BindBlob(5, m.payload);
    return s->Defer(absl::OkStatus());
  }

  absl::Status PruneBus(int64_t before_unix) override {
    IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare("DELETE FROM bus WHERE at_unix < ?"));
    return s->Bind(1, before_unix).Run();
  }

 private:
  Connection& c_;
  const Dialect dialect_;
};

}  // namespace

std::unique_ptr<Tx> NewSqlOps(sql::Connection& connection, Dialect dialect) {
  return std::make_unique<SqlOps>(connection, std::move(dialect));
}

}  // namespace ipfleet::inventory
