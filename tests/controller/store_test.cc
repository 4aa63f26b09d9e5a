// The inventory store's test suite, run against both backends: SQLite in a temp dir and
// PostgreSQL on a throwaway server (tests/support/postgres_server.h; skipped with the reason when
// the server binaries are missing). One suite, so both stores keep the same semantics.
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <random>
#include <thread>

#include "ipfleet/controller/inventory/copy_inventory.h"
#include "ipfleet/controller/inventory/open_store.h"
#include "ipfleet/controller/inventory/postgres_store.h"
#include "ipfleet/controller/inventory/sqlite_store.h"
#include "postgres_server.h"

namespace ipfleet::inventory {
namespace {

namespace fs = std::filesystem;

enum class Backend { kSqlite, kPostgres };

// One server for the whole binary; each test gets its own database.
testing::PostgresServer* SharedServer(std::string* why) {
  static std::unique_ptr<testing::PostgresServer> server;
  static std::string error;
  static bool tried = false;
  if (!tried) {
    tried = true;
    error = testing::PostgresServer::MissingReason();
    if (error.empty()) {
      auto s = testing::PostgresServer::Start();
      if (s.ok()) {
        server = std::move(*s);
      } else {
        error = std::string(s.status().message());
      }
    }
  }
  *why = error;
  return server.get();
}

class StoreTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("ipfleet-store-test-" + std::to_string(::getpid()) + "-" + std::to_string(std::random_device{}()));
    fs::create_directories(dir_);
    db_ = dir_ / "inventory.db";
    if (GetParam() == Backend::kPostgres) {
      std::string why;
      testing::PostgresServer* server = SharedServer(&why);
      if (!server) {
        // Missing binaries skip; a server that is installed but does not start is a failure.
        if (why.find("not found") != std::string::npos) GTEST_SKIP() << why;
        FAIL() << why;
      }
      static std::atomic<int> n{0};
      auto uri = server->CreateDatabase("store_" + std::to_string(::getpid()) + "_" + std::to_string(n++));
      ASSERT_TRUE(uri.ok()) << uri.status();
      spec_ = *uri;
    } else {
      spec_ = "sqlite:" + db_.string();
    }
    auto s = Open();
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(*s);
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(dir_);
  }

  // Another store on the same inventory (a second connection, as a second replica has).
  absl::StatusOr<std::unique_ptr<Store>> Open() { return OpenStore(spec_, db_); }

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

  // Runs one statement with the database's own C API, apart from the store: an independent judge
  // of what is stored. Returns the first column of the first row as an integer, -1 on failure.
  int64_t QueryInt(const std::string& sql) {
    int64_t v = -1;
    if (GetParam() == Backend::kSqlite) {
      sqlite3* db = nullptr;
      EXPECT_EQ(sqlite3_open_v2(db_.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
      sqlite3_stmt* st = nullptr;
      EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
      int rc = sqlite3_step(st);
      if (rc == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
      if (rc == SQLITE_DONE) v = 0;
      sqlite3_finalize(st);
      sqlite3_close(db);
      return v;
    }
    PGconn* c = PQconnectdb(spec_.c_str());
    PGresult* r = PQexec(c, sql.c_str());
    ExecStatusType st = PQresultStatus(r);
    EXPECT_TRUE(st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) << sql << ": " << PQresultErrorMessage(r);
    if (st == PGRES_TUPLES_OK && PQntuples(r) > 0) v = std::atoll(PQgetvalue(r, 0, 0));
    if (st == PGRES_COMMAND_OK) v = 0;
    PQclear(r);
    PQfinish(c);
    return v;
  }

  fs::path dir_;
  fs::path db_;
  std::string spec_;
  std::unique_ptr<Store> store_;
};

INSTANTIATE_TEST_SUITE_P(Backends, StoreTest, ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         [](const ::testing::TestParamInfo<Backend>& i) {
                           return i.param == Backend::kSqlite ? "Sqlite" : "Postgres";
                         });

TEST_P(StoreTest, OpensWithLatestSchemaAndEveryTable) {
  EXPECT_GE(store_->SchemaVersion(), 2);
  EXPECT_EQ(QueryInt(GetParam() == Backend::kSqlite ? "PRAGMA user_version" : "SELECT version FROM ipfleet_schema"),
            store_->SchemaVersion());
  for (const char* table : {"hosts", "host_addresses", "host_labels", "enrollment_tokens", "certificates",
                            "revocations", "health", "proposals", "external_peers", "tunnels", "generations",
                            "bundles", "rollouts", "rollout_hosts", "commands", "audit_log", "replicas", "bus"}) {
    EXPECT_EQ(QueryInt(std::string("SELECT count(*) FROM ") + table), 0) << table;
  }
  if (GetParam() != Backend::kSqlite) return;
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
}

TEST_P(StoreTest, ReopenKeepsDataAndDoesNotRemigrate) {
  ASSERT_TRUE(Add(MakeHost("web1")).ok());
  int v = store_->SchemaVersion();
  store_.reset();
  auto s = Open();
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ((*s)->SchemaVersion(), v);
  auto h = (*s)->GetHost("web1");
  ASSERT_TRUE(h.ok()) << h.status();
}

TEST_P(StoreTest, RefusesNewerSchemaAndChangesNothing) {
  ASSERT_TRUE(Add(MakeHost("web1")).ok());
  store_.reset();
  QueryInt(GetParam() == Backend::kSqlite ? "PRAGMA user_version = 999" : "UPDATE ipfleet_schema SET version = 999");
  auto s = Open();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.status().message().find("newer"), std::string::npos) << s.status();
  EXPECT_EQ(QueryInt("SELECT count(*) FROM hosts"), 1);
  EXPECT_EQ(QueryInt(GetParam() == Backend::kSqlite ? "PRAGMA user_version" : "SELECT version FROM ipfleet_schema"),
            999);
}

TEST_P(StoreTest, ReplicasHostsAndTheBus) {
  ASSERT_TRUE(Add(MakeHost("a")).ok());
  ASSERT_TRUE(store_->Transact([](Tx& tx) -> absl::Status {
                  IPFLEET_RETURN_IF_ERROR(tx.PutReplica({"r2", "127.0.0.1:2", 10, 11, false}));
                  IPFLEET_RETURN_IF_ERROR(tx.PutReplica({"r1", "127.0.0.1:1", 10, 11, true}));
                  IPFLEET_RETURN_IF_ERROR(tx.PutReplica({"r1", "127.0.0.1:1", 10, 15, false}));
                  return tx.SetHostReplica("a", "r2");
                }).ok());
  auto replicas = store_->ListReplicas();
  ASSERT_TRUE(replicas.ok()) << replicas.status();
  ASSERT_EQ(replicas->size(), 2u);
  EXPECT_EQ((*replicas)[0].id, "r1");
  EXPECT_EQ((*replicas)[0].heartbeat_unix, 15);
  EXPECT_FALSE((*replicas)[0].leader);
  ASSERT_TRUE(store_->Transact([](Tx& tx) -> absl::Status {
                  IPFLEET_RETURN_IF_ERROR(tx.PutReplica({"r1", "127.0.0.1:1", 10, 16, true}));
                  return tx.PutReplica({"r2", "127.0.0.1:2", 10, 17, true});  // r1 died, r2 took over
                }).ok());
  replicas = store_->ListReplicas();
  ASSERT_TRUE(replicas.ok()) << replicas.status();
  EXPECT_FALSE((*replicas)[0].leader);
  EXPECT_TRUE((*replicas)[1].leader);
  EXPECT_EQ(store_->GetHost("a")->replica, "r2");
  // A host removed while its session was open: nothing to record, and no row appears.
  ASSERT_TRUE(store_->Transact([](Tx& tx) { return tx.SetHostReplica("ghost", "r1"); }).ok());
  EXPECT_TRUE(absl::IsNotFound(store_->GetHost("ghost").status()));
  ASSERT_TRUE(store_->Transact([](Tx& tx) { return tx.ReleaseHostReplica("a", "r1"); }).ok());
  EXPECT_EQ(store_->GetHost("a")->replica, "r2");  // the session moved on: r1 closing changes nothing
  ASSERT_TRUE(store_->Transact([](Tx& tx) { return tx.ReleaseHostReplica("a", "r2"); }).ok());
  EXPECT_EQ(store_->GetHost("a")->replica, "");
  ASSERT_TRUE(store_->Transact([](Tx& tx) { return tx.SetHostReplica("a", "r2"); }).ok());
  ASSERT_TRUE(store_->Transact([](Tx& tx) { return tx.ClearHostsOfReplica("r2"); }).ok());
  EXPECT_EQ(store_->GetHost("a")->replica, "");

  EXPECT_EQ(*store_->LastBusSeq(), 0u);
  std::string binary("\0\x01\xff\\x", 5);
  ASSERT_TRUE(store_->Transact([&](Tx& tx) -> absl::Status {
                  IPFLEET_RETURN_IF_ERROR(tx.AppendBus({0, 100, "r1", "a", "bundle", binary}));
                  return tx.AppendBus({0, 200, "r2", "a", "ack", "x"});
                }).ok());
  auto written = store_->ReadBus(0, 10);
  ASSERT_TRUE(written.ok()) << written.status();
  ASSERT_EQ(written->size(), 2u);
  const uint64_t s1 = (*written)[0].seq, s2 = (*written)[1].seq;
  EXPECT_LT(s1, s2);
  EXPECT_EQ((*written)[1].kind, "ack");
  EXPECT_EQ(*store_->LastBusSeq(), s2);
  auto after = store_->ReadBus(s1, 10);
  ASSERT_TRUE(after.ok()) << after.status();
  ASSERT_EQ(after->size(), 1u);
  EXPECT_EQ(after->front().kind, "ack");
  auto all = store_->ReadBus(0, 10);
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ(all->front().payload, binary);  // bytes survive, NUL and backslash included
  EXPECT_EQ(all->front().origin, "r1");
  ASSERT_TRUE(store_->Transact([](Tx& tx) { return tx.PruneBus(150); }).ok());
  EXPECT_EQ(store_->ReadBus(0, 10)->size(), 1u);
}

// Two stores on one inventory, as two replicas: exactly one leads at a time, and a write that
// checks before it writes (consuming a token) succeeds exactly once when both race.
TEST_P(StoreTest, TwoStoresOnOneInventory) {
  auto second = Open();
  ASSERT_TRUE(second.ok()) << second.status();
  auto first_leads = store_->HoldLeadership();
  ASSERT_TRUE(first_leads.ok()) << first_leads.status();
  EXPECT_TRUE(*first_leads);
  auto second_leads = (*second)->HoldLeadership();
  ASSERT_TRUE(second_leads.ok()) << second_leads.status();
  if (GetParam() == Backend::kPostgres) {
    EXPECT_TRUE(store_->Shared());
    EXPECT_FALSE(*second_leads);
    EXPECT_TRUE(*store_->HoldLeadership());  // still held
    store_->ReleaseLeadership();
    EXPECT_TRUE(*(*second)->HoldLeadership());
    EXPECT_FALSE(*store_->HoldLeadership());
  } else {
    EXPECT_FALSE(store_->Shared());  // one controller per SQLite inventory: it always leads
    EXPECT_TRUE(*second_leads);
  }

  ASSERT_TRUE(Add(MakeHost("web1")).ok());
  for (int i = 0; i < 20; ++i) {
    std::string hash = "race" + std::to_string(i);
    ASSERT_TRUE(store_->Transact([&](Tx& tx) { return tx.AddEnrollmentToken({hash, "web1", 1, 1000, false, 0}); }).ok());
    std::atomic<int> wins{0};
    auto consume = [&](Store* s) {
      if (s->Transact([&](Tx& tx) { return tx.ConsumeEnrollmentToken(hash, "web1", 5); }).ok()) ++wins;
    };
    std::thread a(consume, store_.get()), b(consume, second->get());
    a.join();
    b.join();
    EXPECT_EQ(wins.load(), 1) << hash;
  }
}

TEST_P(StoreTest, DescribeNeverShowsAPassword) {
  if (GetParam() == Backend::kSqlite) {
    EXPECT_EQ(store_->Describe(), "sqlite:" + db_.string());
    return;
  }
  EXPECT_EQ(store_->Describe().find("secret"), std::string::npos);
  auto bad = OpenStore("postgresql://ipfleet:secret@127.0.0.1:1/none?connect_timeout=2", db_);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(bad.status().message().find("127.0.0.1"), std::string::npos) << bad.status();
  EXPECT_EQ(bad.status().message().find("secret"), std::string::npos) << bad.status();
}

TEST(OpenStoreTest, UnknownSpecIsRefusedWithWhatIsAccepted) {
  auto s = OpenStore("mysql://root:pw@db/x", "/nonexistent/inventory.db");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("postgresql://"), std::string::npos) << s.status();
  EXPECT_EQ(s.status().message().find("pw"), std::string::npos) << s.status();
}

TEST_P(StoreTest, HostRoundTripAndDuplicates) {
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

TEST_P(StoreTest, FailedTransactionLeavesNothingBehind) {
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

TEST_P(StoreTest, EnrollmentTokenRefusals) {
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

TEST_P(StoreTest, CertificatesAndRevocation) {
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

TEST_P(StoreTest, HealthLatestWinsAndNeedsHost) {
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

TEST_P(StoreTest, RemoveHostCascades) {
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
  if (GetParam() == Backend::kSqlite) {
    EXPECT_TRUE(CheckSqliteIntegrity(db_).ok());
  }
}

TEST_P(StoreTest, DesiredInventoryGenerationsAndBundles) {
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

  // Many hosts in one query, in the order asked; an unknown host is named.
  std::vector<uint64_t> many;
  ASSERT_TRUE(store_->Transact([&](Tx& tx) -> absl::Status {
                  IPFLEET_ASSIGN_OR_RETURN(many, tx.NextBundleVersions({"b", "a"}));
                  return absl::OkStatus();
                }).ok());
  EXPECT_EQ(many, (std::vector<uint64_t>{1, 8}));
  absl::Status unknown = store_->Transact([&](Tx& tx) { return tx.NextBundleVersions({"a", "ghost"}).status(); });
  EXPECT_EQ(unknown.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(unknown.message().find("ghost"), std::string::npos) << unknown;
}

// Bulk writes go in statements of many rows and the rest one by one: every row arrives intact,
// whatever the count (here two full statements and a remainder).
TEST_P(StoreTest, ManyRowsInFewStatementsArriveIntact) {
  ASSERT_TRUE(Add(MakeHost("a")).ok());
  DesiredInventory d;
  d.proposals = {{"default", "P"}};
  for (int i = 0; i < 150; ++i) {
    std::string n = absl::StrCat("t", 1000 + i);
    d.tunnels.push_back({n, "a", "peer" + n, true, i % 2, 1, "default", std::string("spec\0\xff", 6) + n});
  }
  ASSERT_TRUE(store_->Transact([&](Tx& tx) { return tx.ReplaceDesired(d); }).ok());
  auto got = store_->GetDesired();
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->tunnels.size(), 150u);
  for (size_t i = 0; i < 150; ++i) {
    EXPECT_EQ(got->tunnels[i].name, d.tunnels[i].name);
    EXPECT_EQ(got->tunnels[i].right, d.tunnels[i].right);
    EXPECT_EQ(got->tunnels[i].mode, d.tunnels[i].mode);
    EXPECT_EQ(got->tunnels[i].spec, d.tunnels[i].spec);
  }

  std::vector<std::string> names;
  for (int i = 0; i < 130; ++i) {
    names.push_back(absl::StrCat("h", 100 + i));
    ASSERT_TRUE(Add(MakeHost(names.back())).ok());
  }
  Rollout r;
  r.generation = 1;
  for (size_t i = 0; i < names.size(); ++i) r.hosts.push_back({names[i], static_cast<uint32_t>(i % 3), 0, HostRolloutState::kPending, "", 1});
  uint64_t id = 0;
  ASSERT_TRUE(store_->Transact([&](Tx& tx) -> absl::Status {
                  IPFLEET_ASSIGN_OR_RETURN(id, tx.CreateRollout(r));
                  return absl::OkStatus();
                }).ok());
  for (auto& h : r.hosts) {
    h.state = HostRolloutState::kDone;
    h.version = 4;
  }
  r.hosts.pop_back();  // the last host stays pending
  ASSERT_TRUE(store_->Transact([&](Tx& tx) { return tx.PutRolloutHosts(id, r.hosts); }).ok());
  auto stored = store_->GetRollout(id);
  ASSERT_TRUE(stored.ok()) << stored.status();
  ASSERT_EQ(stored->hosts.size(), names.size());
  int done = 0;
  for (const auto& h : stored->hosts) done += h.state == HostRolloutState::kDone && h.version == 4;
  EXPECT_EQ(done, 129);

  // The newest bundle of many hosts in one query; hosts without one are left out.
  ASSERT_TRUE(store_->Transact([&](Tx& tx) -> absl::Status {
                  IPFLEET_RETURN_IF_ERROR(tx.PutBundle({"a", 1, 1, 5, "old"}));
                  IPFLEET_RETURN_IF_ERROR(tx.PutBundle({"a", 2, 1, 5, "new"}));
                  return tx.PutBundle({"h100", 7, 1, 5, "h"});
                }).ok());
  auto latest = store_->LatestBundles({"a", "h100", "h101", "ghost"});
  ASSERT_TRUE(latest.ok()) << latest.status();
  std::map<std::string, std::string> by_host;
  for (const auto& b : *latest) by_host[b.host] = b.signed_bundle;
  EXPECT_EQ(by_host, (std::map<std::string, std::string>{{"a", "new"}, {"h100", "h"}}));
}

// Frequent writes may reach PostgreSQL pipelined (sql::Statement::Defer): a failure among
// hundreds of them still fails the transaction with its own error, and nothing of it stays.
TEST_P(StoreTest, AFailedWriteAmongManyRollsBackTheWholeTransaction) {
  ASSERT_TRUE(Add(MakeHost("a")).ok());
  constexpr int kMany = 700;  // more than the PostgreSQL side keeps unanswered at once
  absl::Status st = store_->Transact([&](Tx& tx) -> absl::Status {
    for (int i = 1; i <= kMany; ++i) IPFLEET_RETURN_IF_ERROR(tx.PutBundle({"a", static_cast<uint64_t>(i), 1, 5, "b"}));
    IPFLEET_RETURN_IF_ERROR(tx.SetDesiredBundleVersion("a", kMany));
    IPFLEET_RETURN_IF_ERROR(tx.PutBundle({"a", 3, 1, 5, "duplicate"}));  // fails
    return tx.SetHostSeen("a", 99, "v9");
  });
  EXPECT_EQ(st.code(), absl::StatusCode::kAlreadyExists) << st;
  EXPECT_EQ(store_->LatestBundle("a").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->GetHost("a")->desired_bundle_version, 0u);
  EXPECT_EQ(store_->GetHost("a")->agent_version, "");

  st = store_->Transact([&](Tx& tx) -> absl::Status {
    IPFLEET_RETURN_IF_ERROR(tx.SetHostSeen("a", 99, "v9"));
    return tx.SetAppliedBundleVersion("ghost", 1);  // changes no row
  });
  EXPECT_EQ(st.code(), absl::StatusCode::kNotFound) << st;
  EXPECT_NE(st.message().find("ghost"), std::string::npos) << st;
  EXPECT_EQ(store_->GetHost("a")->agent_version, "");

  // And the same writes without the failure all land, read back in the same transaction.
  uint64_t next = 0;
  ASSERT_TRUE(store_->Transact([&](Tx& tx) -> absl::Status {
                  for (int i = 1; i <= kMany; ++i) {
                    IPFLEET_RETURN_IF_ERROR(tx.PutBundle({"a", static_cast<uint64_t>(i), 1, 5, "b"}));
                  }
                  IPFLEET_RETURN_IF_ERROR(tx.SetHostSeen("a", 99, "v9"));
                  IPFLEET_ASSIGN_OR_RETURN(next, tx.NextBundleVersion("a"));
                  return absl::OkStatus();
                }).ok());
  EXPECT_EQ(next, kMany + 1u);
  EXPECT_EQ(store_->LatestBundle("a")->version, static_cast<uint64_t>(kMany));
  EXPECT_EQ(store_->GetHost("a")->agent_version, "v9");
}

TEST_P(StoreTest, RolloutsAndCommands) {
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

TEST_P(StoreTest, AuditNewestFirst) {
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

namespace ipfleet::inventory {
namespace {

// migrate-inventory: a SQLite inventory copied into an empty PostgreSQL one keeps every row and id,
// later ids continue after the copied ones, and a second copy into the now full database is refused.
TEST(CopyInventoryTest, SqliteToPostgresKeepsRowsAndIds) {
  std::string why;
  testing::PostgresServer* server = SharedServer(&why);
  if (!server) {
    if (why.find("not found") != std::string::npos) GTEST_SKIP() << why;
    FAIL() << why;
  }
  fs::path dir = fs::temp_directory_path() / ("ipfleet-copy-test-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  fs::path db = dir / "inventory.db";
  uint64_t command_id = 0;
  {
    auto src = OpenSqliteStore(db);
    ASSERT_TRUE(src.ok()) << src.status();
    ASSERT_TRUE((*src)->Transact([&](Tx& tx) -> absl::Status {
                   Host h;
                   h.name = "web1";
                   h.addresses = {"192.0.2.10"};
                   h.labels = {{"role", "web"}};
                   IPFLEET_RETURN_IF_ERROR(tx.AddHost(h));
                   IPFLEET_RETURN_IF_ERROR(tx.PutCertificate({"aa01", "web1", "host", 1, 2, {"192.0.2.10"}, {}, "PEM", false, 0, ""}));
                   IPFLEET_RETURN_IF_ERROR(tx.RevokeCertificate("aa01", "keyCompromise", 3));
                   IPFLEET_RETURN_IF_ERROR(tx.AddGeneration({0, 5, "fleet.yaml", std::string("\0snap", 5), ""}).status());
                   IPFLEET_RETURN_IF_ERROR(tx.PutBundle({"web1", 1, 1, 6, std::string("\xff\0b", 3)}));
                   CommandRecord c;
                   c.host = "web1";
                   c.kind = 1;
                   IPFLEET_RETURN_IF_ERROR(tx.EnqueueCommand(c).status());
                   IPFLEET_ASSIGN_OR_RETURN(command_id, tx.EnqueueCommand(c));
                   return absl::OkStatus();
                 }).ok());
  }
  auto uri = server->CreateDatabase("copy_" + std::to_string(::getpid()));
  ASSERT_TRUE(uri.ok()) << uri.status();
  std::vector<std::string> tables;
  absl::Status st = CopyInventory("sqlite:" + db.string(), *uri, db,
                                  [&](const std::string& t, int64_t) { tables.push_back(t); });
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_EQ(tables.size(), 16u);

  auto dst = OpenStore(*uri, db);
  ASSERT_TRUE(dst.ok()) << dst.status();
  auto h = (*dst)->GetHost("web1");
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->labels.at("role"), "web");
  auto cert = (*dst)->GetCertificate("aa01");
  ASSERT_TRUE(cert.ok());
  EXPECT_TRUE(cert->revoked);
  EXPECT_EQ((*dst)->LatestBundle("web1")->signed_bundle, std::string("\xff\0b", 3));
  EXPECT_EQ((*dst)->GetGeneration(1)->snapshot, std::string("\0snap", 5));
  EXPECT_EQ((*dst)->GetCommand(command_id)->host, "web1");
  uint64_t next = 0;
  ASSERT_TRUE((*dst)->Transact([&](Tx& tx) -> absl::Status {
                 CommandRecord c;
                 c.host = "web1";
                 c.kind = 1;
                 IPFLEET_ASSIGN_OR_RETURN(next, tx.EnqueueCommand(c));
                 return absl::OkStatus();
               }).ok());
  EXPECT_EQ(next, command_id + 1);  // the identity continues after the copied ids

  absl::Status again = CopyInventory("sqlite:" + db.string(), *uri, db);
  EXPECT_EQ(again.code(), absl::StatusCode::kFailedPrecondition) << again;
  EXPECT_NE(again.message().find("not empty"), std::string::npos) << again;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace ipfleet::inventory
