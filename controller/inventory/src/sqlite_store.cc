#include "ipfleet/controller/inventory/sqlite_store.h"

#include <absl/strings/str_cat.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <nlohmann/json.hpp>

#include "migrations.h"
#include "sqlite.h"

namespace ipfleet::inventory {
namespace {

using sqlite::Connection;
using sqlite::Stmt;

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
class SqliteOps final : public Tx {
 public:
  explicit SqliteOps(Connection& c) : c_(c) {}

  // ---- hosts ------------------------------------------------------------------------------
  static constexpr const char* kHostCols =
      "name, created_unix, cert_serial, cert_not_after_unix, enrolled, last_seen_unix, "
      "agent_version, applied_bundle_version, desired_bundle_version";

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
    return h;
  }

  absl::Status LoadHostDetails(Host& h) {
    {
      IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare("SELECT kind, value FROM host_addresses "
                                                 "WHERE host = ? ORDER BY kind, position"));
      s->Bind(1, h.name);
      while (true) {
        IPFLEET_ASSIGN_OR_RETURN(bool row, s->Step());
        if (!row) break;
        (s->Text(0) == "ip" ? h.addresses : h.dns_names).push_back(s->Text(1));
      }
    }
    IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare("SELECT key, value FROM host_labels WHERE host = ?"));
    s->Bind(1, h.name);
    while (true) {
      IPFLEET_ASSIGN_OR_RETURN(bool row, s->Step());
      if (!row) break;
      h.labels[s->Text(0)] = s->Text(1);
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
    IPFLEET_RETURN_IF_ERROR(LoadHostDetails(h));
    return h;
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
    for (Host& h : hosts) IPFLEET_RETURN_IF_ERROR(LoadHostDetails(h));
    return hosts;
  }

  absl::Status WriteHostDetails(const Host& h) {
    {
      IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare("DELETE FROM host_addresses WHERE host = ?"));
      IPFLEET_RETURN_IF_ERROR(s->Bind(1, h.name).Run());
    }
    {
      IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare("DELETE FROM host_labels WHERE host = ?"));
      IPFLEET_RETURN_IF_ERROR(s->Bind(1, h.name).Run());
    }
    auto put_addr = [&](const char* kind, const std::vector<std::string>& values) -> absl::Status {
      for (size_t i = 0; i < values.size(); ++i) {
        IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare("INSERT INTO host_addresses (host, kind, "
                                                   "position, value) VALUES (?, ?, ?, ?)"));
        IPFLEET_RETURN_IF_ERROR(
            s->Bind(1, h.name).Bind(2, kind).Bind(3, static_cast<int64_t>(i)).Bind(4, values[i]).Run());
      }
      return absl::OkStatus();
    };
    IPFLEET_RETURN_IF_ERROR(put_addr("ip", h.addresses));
    IPFLEET_RETURN_IF_ERROR(put_addr("dns", h.dns_names));
    for (const auto& [k, v] : h.labels) {
      IPFLEET_ASSIGN_OR_RETURN(
          auto s, c_.Prepare("INSERT INTO host_labels (host, key, value) VALUES (?, ?, ?)"));
      IPFLEET_RETURN_IF_ERROR(s->Bind(1, h.name).Bind(2, k).Bind(3, v).Run());
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

  absl::Status ExpectChanged(std::string_view what, std::string_view name) {
    return c_.Changes() > 0 ? absl::OkStatus() : NotFound(what, name);
  }

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
        auto s, c_.Prepare("UPDATE hosts SET last_seen_unix = max(last_seen_unix, ?), "
                           "agent_version = CASE WHEN ? = '' THEN agent_version ELSE ? END "
                           "WHERE name = ?"));
    IPFLEET_RETURN_IF_ERROR(
        s->Bind(1, last_seen).Bind(2, agent_version).Bind(3, agent_version).Bind(4, host).Run());
    return ExpectChanged("host", host);
  }

  absl::Status SetAppliedBundleVersion(const std::string& host, uint64_t version) override {
    IPFLEET_ASSIGN_OR_RETURN(
        auto s, c_.Prepare("UPDATE hosts SET applied_bundle_version = ? WHERE name = ?"));
    IPFLEET_RETURN_IF_ERROR(s->Bind(1, static_cast<int64_t>(version)).Bind(2, host).Run());
    return ExpectChanged("host", host);
  }

  absl::Status SetDesiredBundleVersion(const std::string& host, uint64_t version) override {
    IPFLEET_ASSIGN_OR_RETURN(
        auto s, c_.Prepare("UPDATE hosts SET desired_bundle_version = ? WHERE name = ?"));
    IPFLEET_RETURN_IF_ERROR(s->Bind(1, static_cast<int64_t>(version)).Bind(2, host).Run());
    return ExpectChanged("host", host);
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
      "c.dns_names, c.pem, r.serial IS NOT NULL, coalesce(r.revoked_unix, 0), "
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
    return QueryCerts("WHERE c.name = ? ORDER BY c.not_before_unix DESC, c.rowid DESC", &name);
  }

  absl::Status PutCertificate(const Certificate& c) override {
    IPFLEET_ASSIGN_OR_RETURN(
        auto s, c_.Prepare("INSERT INTO certificates (serial, name, kind, not_before_unix, "
                           "not_after_unix, ip_addresses, dns_names, pem) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"));
    s->Bind(1, c.serial).Bind(2, c.name).Bind(3, c.kind).Bind(4, c.not_before_unix);
    s->Bind(5, c.not_after_unix).Bind(6, ToJson(c.ip_addresses)).Bind(7, ToJson(c.dns_names));
    s->Bind(8, c.pem);
    IPFLEET_RETURN_IF_ERROR(s->Run());
    if (c.revoked) return RevokeCertificate(c.serial, c.revocation_reason, c.revoked_unix);
    return absl::OkStatus();
  }

  absl::Status RevokeCertificate(const std::string& serial, const std::string& reason,
                                 int64_t now) override {
    IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare("INSERT OR IGNORE INTO revocations (serial, "
                                               "revoked_unix, reason) VALUES (?, ?, ?)"));
    return s->Bind(1, serial).Bind(2, now).Bind(3, reason).Run();
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
    IPFLEET_ASSIGN_OR_RETURN(
        auto s, c_.Prepare("INSERT OR REPLACE INTO health (host, at_unix, bundle_version, tunnels_up, "
                           "tunnels_total, stale_sas, forced_renegotiations, report) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"));
    s->Bind(1, h.host).Bind(2, h.at_unix).Bind(3, static_cast<int64_t>(h.bundle_version));
    s->Bind(4, static_cast<int64_t>(h.tunnels_up)).Bind(5, static_cast<int64_t>(h.tunnels_total));
    s->Bind(6, static_cast<int64_t>(h.stale_sas));
    s->Bind(7, static_cast<int64_t>(h.forced_renegotiations)).BindBlob(8, h.report);
    absl::Status st = s->Run();
    if (!st.ok()) {
      // A foreign key failure means the host is unknown: say so.
      IPFLEET_RETURN_IF_ERROR(GetHost(h.host).status());
    }
    return st;
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
      IPFLEET_RETURN_IF_ERROR(s->Bind(1, p.name).BindBlob(2, p.spec).Run());
    }
    for (const auto& p : d.external_peers) {
      IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare("INSERT INTO external_peers (name, address, identity, "
                                                 "auth, spec) VALUES (?, ?, ?, ?, ?)"));
      s->Bind(1, p.name).Bind(2, p.address).Bind(3, p.identity).Bind(4, static_cast<int64_t>(p.auth));
      IPFLEET_RETURN_IF_ERROR(s->BindBlob(5, p.spec).Run());
    }
    for (const auto& t : d.tunnels) {
      IPFLEET_ASSIGN_OR_RETURN(
          auto s, c_.Prepare("INSERT INTO tunnels (name, left_end, right_end, right_is_external, mode, "
                             "auth, proposal, spec) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"));
      s->Bind(1, t.name).Bind(2, t.left).Bind(3, t.right).BindBool(4, t.right_is_external);
      s->Bind(5, static_cast<int64_t>(t.mode)).Bind(6, static_cast<int64_t>(t.auth));
      IPFLEET_RETURN_IF_ERROR(s->Bind(7, t.proposal).BindBlob(8, t.spec).Run());
    }
    return absl::OkStatus();
  }

  absl::StatusOr<uint64_t> AddGeneration(const Generation& g) override {
    IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare("INSERT INTO generations (created_unix, source, "
                                               "snapshot, comment) VALUES (?, ?, ?, ?)"));
    s->Bind(1, g.created_unix).Bind(2, g.source).BindBlob(3, g.snapshot).Bind(4, g.comment);
    IPFLEET_RETURN_IF_ERROR(s->Run());
    return static_cast<uint64_t>(c_.LastInsertRowId());
  }

  // ---- bundles ----------------------------------------------------------------------------
  // The highest-version bundle of the host.
  absl::StatusOr<BundleRecord> LatestBundle(const std::string& host) override {
    IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare("SELECT host, version, generation, created_unix, signed_bundle "
                                               "FROM bundles WHERE host = ? ORDER BY version DESC LIMIT 1"));
    s->Bind(1, host);
    IPFLEET_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) return NotFound("bundle of host", host);
    BundleRecord b;
    b.host = s->Text(0);
    b.version = s->UInt(1);
    b.generation = s->UInt(2);
    b.created_unix = s->Int(3);
    b.signed_bundle = s->Blob(4);
    return b;
  }

  absl::StatusOr<uint64_t> NextBundleVersion(const std::string& host) override {
    IPFLEET_ASSIGN_OR_RETURN(
        auto s, c_.Prepare("SELECT max(h.applied_bundle_version, h.desired_bundle_version, "
                           "coalesce((SELECT max(version) FROM bundles WHERE host = h.name), 0)) "
                           "FROM hosts h WHERE h.name = ?"));
    s->Bind(1, host);
    IPFLEET_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) return NotFound("host", host);
    return s->UInt(0) + 1;
  }

  absl::Status PutBundle(const BundleRecord& b) override {
    IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare("INSERT INTO bundles (host, version, generation, "
                                               "created_unix, signed_bundle) VALUES (?, ?, ?, ?, ?)"));
    s->Bind(1, b.host).Bind(2, static_cast<int64_t>(b.version)).Bind(3, static_cast<int64_t>(b.generation));
    return s->Bind(4, b.created_unix).BindBlob(5, b.signed_bundle).Run();
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
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
    s->Bind(1, static_cast<int64_t>(r.generation)).Bind(2, static_cast<int64_t>(r.state));
    s->Bind(3, static_cast<int64_t>(r.current_wave)).Bind(4, static_cast<int64_t>(r.waves));
    s->Bind(5, static_cast<int64_t>(r.canary_percent)).Bind(6, static_cast<int64_t>(r.wave_size));
    s->Bind(7, static_cast<int64_t>(r.wave_timeout_seconds)).Bind(8, r.started_unix);
    IPFLEET_RETURN_IF_ERROR(s->Bind(9, r.finished_unix).Bind(10, r.error).Run());
    uint64_t id = static_cast<uint64_t>(c_.LastInsertRowId());
    for (const RolloutHost& h : r.hosts) IPFLEET_RETURN_IF_ERROR(PutRolloutHost(id, h));
    return id;
  }

  absl::Status UpdateRollout(const Rollout& r) override {
    IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare("UPDATE rollouts SET state = ?, current_wave = ?, waves = ?, "
                                               "finished_unix = ?, error = ? WHERE id = ?"));
    s->Bind(1, static_cast<int64_t>(r.state)).Bind(2, static_cast<int64_t>(r.current_wave));
    s->Bind(3, static_cast<int64_t>(r.waves)).Bind(4, r.finished_unix).Bind(5, r.error);
    IPFLEET_RETURN_IF_ERROR(s->Bind(6, static_cast<int64_t>(r.id)).Run());
    return ExpectChanged("rollout", std::to_string(r.id));
  }

  absl::Status PutRolloutHost(uint64_t rollout_id, const RolloutHost& h) override {
    IPFLEET_ASSIGN_OR_RETURN(
        auto s, c_.Prepare("INSERT OR REPLACE INTO rollout_hosts (rollout_id, host, wave, version, state, "
                           "error, updated_unix) VALUES (?, ?, ?, ?, ?, ?, ?)"));
    s->Bind(1, static_cast<int64_t>(rollout_id)).Bind(2, h.host).Bind(3, static_cast<int64_t>(h.wave));
    s->Bind(4, static_cast<int64_t>(h.version)).Bind(5, static_cast<int64_t>(h.state));
    return s->Bind(6, h.error).Bind(7, h.updated_unix).Run();
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
                           "delivered_unix, finished_unix, result) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"));
    s->Bind(1, c.host).Bind(2, static_cast<int64_t>(c.kind)).Bind(3, c.tunnel).Bind(4, c.peer);
    s->Bind(5, c.issued_unix).Bind(6, static_cast<int64_t>(c.state)).Bind(7, c.delivered_unix);
    absl::Status st = s->Bind(8, c.finished_unix).BindBlob(9, c.result).Run();
    if (!st.ok()) {
      IPFLEET_RETURN_IF_ERROR(GetHost(c.host).status());
      return st;
    }
    return static_cast<uint64_t>(c_.LastInsertRowId());
  }

  absl::Status UpdateCommand(const CommandRecord& c) override {
    IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare("UPDATE commands SET state = ?, delivered_unix = ?, "
                                               "finished_unix = ?, result = ? WHERE id = ?"));
    s->Bind(1, static_cast<int64_t>(c.state)).Bind(2, c.delivered_unix).Bind(3, c.finished_unix);
    IPFLEET_RETURN_IF_ERROR(s->BindBlob(4, c.result).Bind(5, static_cast<int64_t>(c.id)).Run());
    return ExpectChanged("command", std::to_string(c.id));
  }

  // ---- audit ------------------------------------------------------------------------------
  absl::Status AppendAudit(const AuditEntry& e) override {
    IPFLEET_ASSIGN_OR_RETURN(auto s, c_.Prepare("INSERT INTO audit_log (at_unix, actor, action, target, "
                                               "detail, ok) VALUES (?, ?, ?, ?, ?, ?)"));
    s->Bind(1, e.at_unix).Bind(2, e.actor).Bind(3, e.action).Bind(4, e.target).Bind(5, e.detail);
    return s->BindBool(6, e.ok).Run();
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

 private:
  Connection& c_;
};

// Reads take the mutex and run on the shared connection; writes run inside Transact.
class SqliteStore final : public Store {
 public:
  SqliteStore(std::unique_ptr<Connection> conn, int schema)
      : conn_(std::move(conn)), ops_(*conn_), schema_(schema) {}

#define IPFLEET_LOCKED_READ(sig, call)      \
  sig override {                            \
    std::lock_guard<std::mutex> lock(mu_);  \
    return ops_.call;                       \
  }
  IPFLEET_LOCKED_READ(absl::StatusOr<Host> GetHost(const std::string& n), GetHost(n))
  IPFLEET_LOCKED_READ(absl::StatusOr<std::vector<Host>> ListHosts(), ListHosts())
  IPFLEET_LOCKED_READ(absl::StatusOr<EnrollmentToken> GetEnrollmentToken(const std::string& h),
                      GetEnrollmentToken(h))
  IPFLEET_LOCKED_READ(absl::StatusOr<Certificate> GetCertificate(const std::string& s), GetCertificate(s))
  IPFLEET_LOCKED_READ(absl::StatusOr<std::vector<Certificate>> ListCertificates(bool r),
                      ListCertificates(r))
  IPFLEET_LOCKED_READ(absl::StatusOr<std::vector<Certificate>> CertificatesFor(const std::string& n),
                      CertificatesFor(n))
  IPFLEET_LOCKED_READ(absl::StatusOr<HealthRecord> GetHealth(const std::string& h), GetHealth(h))
  IPFLEET_LOCKED_READ(absl::StatusOr<std::vector<HealthRecord>> ListHealth(), ListHealth())
  IPFLEET_LOCKED_READ(absl::StatusOr<uint64_t> CurrentGeneration(), CurrentGeneration())
  IPFLEET_LOCKED_READ(absl::StatusOr<Generation> GetGeneration(uint64_t id), GetGeneration(id))
  IPFLEET_LOCKED_READ(absl::StatusOr<DesiredInventory> GetDesired(), GetDesired())
  IPFLEET_LOCKED_READ(absl::StatusOr<BundleRecord> LatestBundle(const std::string& h), LatestBundle(h))
  IPFLEET_LOCKED_READ(absl::StatusOr<Rollout> GetRollout(uint64_t id), GetRollout(id))
  IPFLEET_LOCKED_READ(absl::StatusOr<Rollout> LatestRollout(), LatestRollout())
  IPFLEET_LOCKED_READ(absl::StatusOr<CommandRecord> GetCommand(uint64_t id), GetCommand(id))
  IPFLEET_LOCKED_READ(
      absl::StatusOr<std::vector<CommandRecord>> PendingCommands(const std::string& h, uint64_t a),
      PendingCommands(h, a))
  IPFLEET_LOCKED_READ(absl::StatusOr<uint64_t> CountPendingCommands(), CountPendingCommands())
  IPFLEET_LOCKED_READ(absl::StatusOr<std::vector<AuditEntry>> ListAudit(size_t n), ListAudit(n))
#undef IPFLEET_LOCKED_READ

  absl::Status Transact(absl::FunctionRef<absl::Status(Tx&)> fn) override {
    TransactionTimer timer(on_transaction_);
    std::lock_guard<std::mutex> lock(mu_);
    // IMMEDIATE takes the write lock up front, so a busy database fails here (after
    // busy_timeout), not half-way through the callback.
    IPFLEET_RETURN_IF_ERROR(conn_->Exec("BEGIN IMMEDIATE"));
    absl::Status st = fn(ops_);
    if (st.ok()) {
      st = conn_->Exec("COMMIT");
      if (st.ok()) {
        timer.committed();
        return st;
      }
    }
    absl::Status rb = conn_->Exec("ROLLBACK");
    if (!rb.ok()) spdlog::error("event=sqlite_rollback_failed error=\"{}\"", std::string(rb.message()));
    return st;
  }

  int SchemaVersion() const override { return schema_; }
  void SetTransactionObserver(TransactionObserver observer) override { on_transaction_ = std::move(observer); }

 private:
  std::mutex mu_;
  std::unique_ptr<Connection> conn_;
  SqliteOps ops_;
  int schema_;
  TransactionObserver on_transaction_;
};

absl::StatusOr<int> UserVersion(Connection& c) {
  IPFLEET_ASSIGN_OR_RETURN(auto s, c.Prepare("PRAGMA user_version"));
  IPFLEET_ASSIGN_OR_RETURN(bool row, s->Step());
  return row ? static_cast<int>(s->Int(0)) : 0;
}

absl::StatusOr<int> Migrate(Connection& c, const std::string& path) {
  IPFLEET_ASSIGN_OR_RETURN(int current, UserVersion(c));
  const auto& all = Migrations();
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
  return std::unique_ptr<Store>(new SqliteStore(std::move(conn), schema));
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
