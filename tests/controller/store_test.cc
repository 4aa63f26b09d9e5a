// Unit tests of the SQLite inventory store: schema, transactions, every table's round trip.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <filesystem>
#include <random>

#include "ipfleet/controller/inventory/sqlite_store.h"

namespace ipfleet::inventory {
namespace {

namespace fs = std::filesystem;

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("ipfleet-store-test-" + std::to_string(::getpid()) + "-" + std::to_string(std::random_device{}()));
    fs::create_directories(dir_);
    db_ = dir_ / "inventory.db";
    auto s = OpenSqliteStore(db_);
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(*s);
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(dir_);
  }

  Host MakeHost(const std::string& name) {
    Host h;
    h.name = name;
    h.addresses = {"192.0.2.10", "2001:db8::10"};
    h.dns_names = {name + ".example.net"};
    h.labels = {{"role", "web"}, {"site", "fra"}};
    h.created_unix = 1000;
    return h;
  }

  absl::Status Add(const Host& h) {
    return store_->Transact([&](Tx& tx) { return tx.AddHost(h); });
  }

  // Reads one integer with the sqlite3 C API directly: an independent judge of what is on disk.
  int64_t QueryInt(const std::string& sql) {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2(db_.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    int64_t v = -1;
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
  }

  fs::path dir_;
  fs::path db_;
  std::unique_ptr<Store> store_;
};

TEST_F(StoreTest, OpensWithWalForeignKeysAndLatestSchema) {
  EXPECT_GE(store_->SchemaVersion(), 1);
  EXPECT_EQ(QueryInt("PRAGMA user_version"), store_->SchemaVersion());
  struct stat st {};
  ASSERT_EQ(::stat(db_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // WAL is persistent in the file header: a fresh connection sees it.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(db_.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* s = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(s), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(s, 0)), "wal");
  sqlite3_finalize(s);
  sqlite3_close(db);
  for (const char* table : {"hosts", "host_addresses", "host_labels", "enrollment_tokens", "certificates",
                            "revocations", "health", "proposals", "external_peers", "tunnels",
                            "generations", "bundles", "rollouts", "rollout_hosts", "commands", "audit_log"}) {
    EXPECT_EQ(QueryInt(std::string("SELECT count(*) FROM sqlite_master WHERE type='table' AND name='") +
                       table + "'"),
              1)
        << table;
  }
}

TEST_F(StoreTest, ReopenKeepsDataAndDoesNotRemigrate) {
  ASSERT_TRUE(Add(MakeHost("web1")).ok());
  int v = store_->SchemaVersion();
  store_.reset();
  auto s = OpenSqliteStore(db_);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ((*s)->SchemaVersion(), v);
  auto h = (*s)->GetHost("web1");
  ASSERT_TRUE(h.ok()) << h.status();
}

TEST_F(StoreTest, RefusesNewerSchema) {
  store_.reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(db_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 999", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  auto s = OpenSqliteStore(db_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.status().message().find("newer"), std::string::npos) << s.status();
}

TEST_F(StoreTest, HostRoundTripAndDuplicates) {
  Host h = MakeHost("web1");
  ASSERT_TRUE(Add(h).ok());
  auto got = store_->GetHost("web1");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->addresses, h.addresses);
  EXPECT_EQ(got->dns_names, h.dns_names);
  EXPECT_EQ(got->labels, h.labels);
  EXPECT_FALSE(got->enrolled);
  EXPECT_EQ(Add(h).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(store_->GetHost("nope").status().code(), absl::StatusCode::kNotFound);

  ASSERT_TRUE(store_->Transact([](Tx& tx) { return tx.SetHostCertificate("web1", "abc1", 5000); }).ok());
  ASSERT_TRUE(store_->Transact([](Tx& tx) { return tx.SetHostSeen("web1", 4000, "0.1.0"); }).ok());
  ASSERT_TRUE(store_->Transact([](Tx& tx) { return tx.SetHostSeen("web1", 3000, ""); }).ok());
  got = store_->GetHost("web1");
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(got->enrolled);
  EXPECT_EQ(got->cert_serial, "abc1");
  EXPECT_EQ(got->last_seen_unix, 4000);  // last seen never goes backwards
  EXPECT_EQ(got->agent_version, "0.1.0");

  ASSERT_TRUE(Add(MakeHost("db1")).ok());
  auto all = store_->ListHosts();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].name, "db1");
  EXPECT_EQ((*all)[1].labels.at("site"), "fra");
}

TEST_F(StoreTest, FailedTransactionLeavesNothingBehind) {
  absl::Status st = store_->Transact([&](Tx& tx) -> absl::Status {
    IPFLEET_RETURN_IF_ERROR(tx.AddHost(MakeHost("web1")));
    IPFLEET_RETURN_IF_ERROR(tx.AppendAudit({0, 1, "test", "host.add", "web1", "", true}));
    return absl::AbortedError("caller changed its mind");
  });
  EXPECT_EQ(st.code(), absl::StatusCode::kAborted);
  EXPECT_EQ(store_->GetHost("web1").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(QueryInt("SELECT count(*) FROM host_addresses"), 0);
  EXPECT_EQ(QueryInt("SELECT count(*) FROM audit_log"), 0);
  // The store is usable after a rollback.
  EXPECT_TRUE(Add(MakeHost("web1")).ok());
}

TEST_F(StoreTest, EnrollmentTokenRefusals) {
  ASSERT_TRUE(Add(MakeHost("web1")).ok());
  ASSERT_TRUE(Add(MakeHost("web2")).ok());
  ASSERT_TRUE(store_->Transact([](Tx& tx) {
                  return tx.AddEnrollmentToken({"hash1", "web1", 100, 200, false, 0});
                }).ok());
  ASSERT_TRUE(store_->Transact([](Tx& tx) {
                  return tx.AddEnrollmentToken({"hash2", "web1", 100, 150, false, 0});
                }).ok());
  auto consume = [&](const std::string& hash, const std::string& host, int64_t now) {
    return store_->Transact([&](Tx& tx) { return tx.ConsumeEnrollmentToken(hash, host, now); });
  };
  EXPECT_EQ(consume("nohash", "web1", 120).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(consume("hash1", "web2", 120).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(consume("hash2", "web1", 150).code(), absl::StatusCode::kFailedPrecondition);  // expired
  EXPECT_TRUE(consume("hash1", "web1", 120).ok());
  absl::Status reuse = consume("hash1", "web1", 121);
  EXPECT_EQ(reuse.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(reuse.message().find("already used"), std::string::npos) << reuse;
  auto t = store_->GetEnrollmentToken("hash1");
  ASSERT_TRUE(t.ok());
  EXPECT_TRUE(t->used);
  EXPECT_EQ(t->used_unix, 120);
  // Only hashes are stored.
  EXPECT_EQ(QueryInt("SELECT count(*) FROM enrollment_tokens WHERE token_sha256 IN ('hash1','hash2')"), 2);
}

TEST_F(StoreTest, CertificatesAndRevocation) {
  Certificate c;
  c.serial = "1f";
  c.name = "web1";
  c.kind = "host";
  c.not_before_unix = 10;
  c.not_after_unix = 20;
  c.ip_addresses = {"192.0.2.10"};
  c.dns_names = {"web1.example.net"};
  c.pem = "-----BEGIN CERTIFICATE-----\n...";
  ASSERT_TRUE(store_->Transact([&](Tx& tx) { return tx.PutCertificate(c); }).ok());
  EXPECT_EQ(store_->Transact([&](Tx& tx) { return tx.PutCertificate(c); }).code(),
            absl::StatusCode::kAlreadyExists);
  Certificate c2 = c;
  c2.serial = "20";
  c2.not_before_unix = 11;
  ASSERT_TRUE(store_->Transact([&](Tx& tx) { return tx.PutCertificate(c2); }).ok());
  ASSERT_TRUE(store_->Transact([](Tx& tx) { return tx.RevokeCertificate("1f", "superseded", 30); }).ok());
  ASSERT_TRUE(store_->Transact([](Tx& tx) { return tx.RevokeCertificate("1f", "keyCompromise", 40); }).ok());
  auto got = store_->GetCertificate("1f");
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(got->revoked);
  EXPECT_EQ(got->revoked_unix, 30);
  EXPECT_EQ(got->revocation_reason, "superseded");
  EXPECT_EQ(got->ip_addresses, c.ip_addresses);
  auto live = store_->ListCertificates(false);
  ASSERT_TRUE(live.ok());
  ASSERT_EQ(live->size(), 1u);
  EXPECT_EQ(live->front().serial, "20");
  auto all = store_->ListCertificates(true);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 2u);
  auto mine = store_->CertificatesFor("web1");
  ASSERT_TRUE(mine.ok());
  ASSERT_EQ(mine->size(), 2u);
  EXPECT_EQ(mine->front().serial, "20");  // newest first
}

TEST_F(StoreTest, HealthLatestWinsAndNeedsHost) {
  ASSERT_TRUE(Add(MakeHost("web1")).ok());
  HealthRecord h{"web1", 100, 3, 2, 3, 1, 7, std::string("\x00\x01report", 8)};
  ASSERT_TRUE(store_->Transact([&](Tx& tx) { return tx.PutHealth(h); }).ok());
  h.at_unix = 200;
  h.tunnels_up = 3;
  ASSERT_TRUE(store_->Transact([&](Tx& tx) { return tx.PutHealth(h); }).ok());
  auto got = store_->GetHealth("web1");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->at_unix, 200);
  EXPECT_EQ(got->tunnels_up, 3u);
  EXPECT_EQ(got->report, h.report);  // binary safe
  HealthRecord orphan = h;
  orphan.host = "ghost";
  EXPECT_EQ(store_->Transact([&](Tx& tx) { return tx.PutHealth(orphan); }).code(),
            absl::StatusCode::kNotFound);
}

TEST_F(StoreTest, RemoveHostCascades) {
  ASSERT_TRUE(Add(MakeHost("web1")).ok());
  ASSERT_TRUE(store_->Transact([&](Tx& tx) -> absl::Status {
                  IPFLEET_RETURN_IF_ERROR(tx.AddEnrollmentToken({"h", "web1", 1, 2, false, 0}));
                  IPFLEET_RETURN_IF_ERROR(tx.PutHealth({"web1", 1, 0, 0, 0, 0, 0, ""}));
                  IPFLEET_RETURN_IF_ERROR(tx.PutBundle({"web1", 1, 1, 1, "b"}));
                  CommandRecord c;
                  c.host = "web1";
                  return tx.EnqueueCommand(c).status();
                }).ok());
  ASSERT_TRUE(store_->Transact([](Tx& tx) { return tx.RemoveHost("web1"); }).ok());
  for (const char* t : {"host_addresses", "host_labels", "enrollment_tokens", "health", "bundles", "commands"}) {
    EXPECT_EQ(QueryInt(std::string("SELECT count(*) FROM ") + t), 0) << t;
  }
  EXPECT_EQ(store_->Transact([](Tx& tx) { return tx.RemoveHost("web1"); }).code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(CheckSqliteIntegrity(db_).ok());
}

TEST_F(StoreTest, DesiredInventoryGenerationsAndBundles) {
  ASSERT_TRUE(Add(MakeHost("a")).ok());
  ASSERT_TRUE(Add(MakeHost("b")).ok());
  EXPECT_EQ(*store_->CurrentGeneration(), 0u);
  DesiredInventory d;
  d.proposals = {{"default", "P"}};
  d.external_peers = {{"router1", "203.0.113.5", "fqdn:router1", 1, "E"}};
  d.tunnels = {{"a--b", "a", "b", false, 1, 1, "default", "T1"},
               {"a--router1", "a", "router1", true, 1, 1, "default", "T2"}};
  uint64_t gen = 0;
  ASSERT_TRUE(store_->Transact([&](Tx& tx) -> absl::Status {
                  IPFLEET_RETURN_IF_ERROR(tx.ReplaceDesired(d));
                  IPFLEET_ASSIGN_OR_RETURN(gen, tx.AddGeneration({0, 5, "fleet.yaml", "snap", ""}));
                  return absl::OkStatus();
                }).ok());
  EXPECT_EQ(gen, 1u);
  EXPECT_EQ(*store_->CurrentGeneration(), 1u);
  auto got = store_->GetDesired();
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->tunnels.size(), 2u);
  EXPECT_EQ(got->tunnels[1].right, "router1");
  EXPECT_TRUE(got->tunnels[1].right_is_external);
  EXPECT_EQ(got->external_peers.at(0).identity, "fqdn:router1");
  EXPECT_EQ(store_->GetGeneration(1)->snapshot, "snap");

  // Replacing is total.
  d.tunnels.pop_back();
  ASSERT_TRUE(store_->Transact([&](Tx& tx) { return tx.ReplaceDesired(d); }).ok());
  EXPECT_EQ(store_->GetDesired()->tunnels.size(), 1u);

  // Bundle versions only go up, also past what the agent acknowledged.
  uint64_t v = 0;
  ASSERT_TRUE(store_->Transact([&](Tx& tx) -> absl::Status {
                  IPFLEET_ASSIGN_OR_RETURN(v, tx.NextBundleVersion("a"));
                  IPFLEET_RETURN_IF_ERROR(tx.PutBundle({"a", v, 1, 5, "signed"}));
                  return tx.SetDesiredBundleVersion("a", v);
                }).ok());
  EXPECT_EQ(v, 1u);
  ASSERT_TRUE(store_->Transact([](Tx& tx) { return tx.SetAppliedBundleVersion("a", 7); }).ok());
  ASSERT_TRUE(store_->Transact([&](Tx& tx) -> absl::Status {
                  IPFLEET_ASSIGN_OR_RETURN(v, tx.NextBundleVersion("a"));
                  return absl::OkStatus();
                }).ok());
  EXPECT_EQ(v, 8u);
  EXPECT_EQ(store_->LatestBundle("a")->signed_bundle, "signed");
  EXPECT_EQ(store_->LatestBundle("b").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Transact([&](Tx& tx) { return tx.PutBundle({"a", 1, 1, 5, "again"}); }).code(),
            absl::StatusCode::kAlreadyExists);
}

TEST_F(StoreTest, RolloutsAndCommands) {
  ASSERT_TRUE(Add(MakeHost("a")).ok());
  ASSERT_TRUE(Add(MakeHost("b")).ok());
  EXPECT_EQ(store_->LatestRollout().status().code(), absl::StatusCode::kNotFound);
  Rollout r;
  r.generation = 1;
  r.waves = 2;
  r.canary_percent = 50;
  r.hosts = {{"a", 0, 1, HostRolloutState::kPending, "", 1}, {"b", 1, 1, HostRolloutState::kPending, "", 1}};
  uint64_t id = 0;
  ASSERT_TRUE(store_->Transact([&](Tx& tx) -> absl::Status {
                  IPFLEET_ASSIGN_OR_RETURN(id, tx.CreateRollout(r));
                  return absl::OkStatus();
                }).ok());
  ASSERT_TRUE(store_->Transact([&](Tx& tx) -> absl::Status {
                  IPFLEET_RETURN_IF_ERROR(tx.PutRolloutHost(id, {"a", 0, 1, HostRolloutState::kDone, "", 2}));
                  Rollout u = r;
                  u.id = id;
                  u.state = RolloutState::kHalted;
                  u.current_wave = 1;
                  u.error = "b timed out";
                  return tx.UpdateRollout(u);
                }).ok());
  auto got = store_->LatestRollout();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->id, id);
  EXPECT_EQ(got->state, RolloutState::kHalted);
  ASSERT_EQ(got->hosts.size(), 2u);
  EXPECT_EQ(got->hosts[0].state, HostRolloutState::kDone);
  EXPECT_EQ(got->error, "b timed out");

  CommandRecord c;
  c.host = "a";
  c.kind = 1;
  uint64_t c1 = 0, c2 = 0;
  ASSERT_TRUE(store_->Transact([&](Tx& tx) -> absl::Status {
                  IPFLEET_ASSIGN_OR_RETURN(c1, tx.EnqueueCommand(c));
                  IPFLEET_ASSIGN_OR_RETURN(c2, tx.EnqueueCommand(c));
                  return absl::OkStatus();
                }).ok());
  EXPECT_LT(c1, c2);
  auto pending = store_->PendingCommands("a", c1);
  ASSERT_TRUE(pending.ok());
  ASSERT_EQ(pending->size(), 1u);
  EXPECT_EQ(pending->front().id, c2);
  CommandRecord done = *store_->GetCommand(c2);
  done.state = CommandState::kSucceeded;
  done.result = "res";
  ASSERT_TRUE(store_->Transact([&](Tx& tx) { return tx.UpdateCommand(done); }).ok());
  EXPECT_TRUE(store_->PendingCommands("a", c1)->empty());
  EXPECT_EQ(store_->GetCommand(c2)->result, "res");
  c.host = "ghost";
  EXPECT_EQ(store_->Transact([&](Tx& tx) { return tx.EnqueueCommand(c).status(); }).code(),
            absl::StatusCode::kNotFound);
}

TEST_F(StoreTest, AuditNewestFirst) {
  ASSERT_TRUE(store_->Transact([](Tx& tx) -> absl::Status {
                  IPFLEET_RETURN_IF_ERROR(tx.AppendAudit({0, 1, "unix:uid=0", "host.add", "a", "", true}));
                  return tx.AppendAudit({0, 2, "unix:uid=0", "cert.revoke", "a", "reason=x", false});
                }).ok());
  auto a = store_->ListAudit(10);
  ASSERT_TRUE(a.ok());
  ASSERT_EQ(a->size(), 2u);
  EXPECT_EQ((*a)[0].action, "cert.revoke");
  EXPECT_FALSE((*a)[0].ok);
}

}  // namespace
}  // namespace ipfleet::inventory
