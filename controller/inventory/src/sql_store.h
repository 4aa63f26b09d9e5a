// The part of a Store that is the same for SQLite and PostgreSQL: a connection guarded by a mutex
// for writes (in Transact, between the backend's begin/commit/rollback) and reads, or a second one
// for reads outside transactions. A backend supplies begin/commit/rollback and its identity.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "ipfleet/controller/inventory/store.h"
#include "sql.h"
#include "sql_ops.h"

namespace ipfleet::inventory {

class SqlStore : public Store {
 public:
  // `reads`, when given, serves the reads outside transactions, so that they do not queue behind
  // a write transaction's round trips (PostgreSQL); without it they share `conn` (SQLite).
  SqlStore(std::unique_ptr<sql::Connection> conn, const Dialect& dialect, int schema,
           std::unique_ptr<sql::Connection> reads = nullptr)
      : writes_(std::move(conn), dialect), schema_(schema) {
    if (reads) own_reads_ = std::make_unique<Session>(std::move(reads), dialect);
    reads_ = own_reads_ ? own_reads_.get() : &writes_;
  }

#define IPFLEET_LOCKED_READ(sig, call)                             \
  sig override {                                                   \
    std::lock_guard<std::mutex> lock(reads_->mu);                  \
    IPFLEET_RETURN_IF_ERROR(reads_->conn->EnsureConnected());      \
    return reads_->ops->call;                                      \
  }
  IPFLEET_LOCKED_READ(absl::StatusOr<Host> GetHost(const std::string& n), GetHost(n))
  IPFLEET_LOCKED_READ(absl::StatusOr<std::vector<Host>> ListHosts(), ListHosts())
  IPFLEET_LOCKED_READ(absl::StatusOr<EnrollmentToken> GetEnrollmentToken(const std::string& h),
                      GetEnrollmentToken(h))
  IPFLEET_LOCKED_READ(absl::StatusOr<Certificate> GetCertificate(const std::string& s), GetCertificate(s))
  IPFLEET_LOCKED_READ(absl::StatusOr<std::vector<Certificate>> ListCertificates(bool r), ListCertificates(r))
  IPFLEET_LOCKED_READ(absl::StatusOr<std::vector<Certificate>> CertificatesFor(const std::string& n),
                      CertificatesFor(n))
  IPFLEET_LOCKED_READ(absl::StatusOr<std::vector<RevocationRecord>> ListRevocations(), ListRevocations())
  IPFLEET_LOCKED_READ(absl::StatusOr<HealthRecord> GetHealth(const std::string& h), GetHealth(h))
  IPFLEET_LOCKED_READ(absl::StatusOr<std::vector<HealthRecord>> ListHealth(), ListHealth())
  IPFLEET_LOCKED_READ(absl::StatusOr<uint64_t> CurrentGeneration(), CurrentGeneration())
  IPFLEET_LOCKED_READ(absl::StatusOr<Generation> GetGeneration(uint64_t id), GetGeneration(id))
  IPFLEET_LOCKED_READ(absl::StatusOr<DesiredInventory> GetDesired(), GetDesired())
  IPFLEET_LOCKED_READ(absl::StatusOr<BundleRecord> LatestBundle(const std::string& h), LatestBundle(h))
  IPFLEET_LOCKED_READ(absl::StatusOr<std::vector<BundleRecord>> LatestBundles(const std::vector<std::string>& h),
                      LatestBundles(h))
  IPFLEET_LOCKED_READ(absl::StatusOr<Rollout> GetRollout(uint64_t id), GetRollout(id))
  IPFLEET_LOCKED_READ(absl::StatusOr<Rollout> LatestRollout(), LatestRollout())
  IPFLEET_LOCKED_READ(absl::StatusOr<CommandRecord> GetCommand(uint64_t id), GetCommand(id))
  IPFLEET_LOCKED_READ(
      absl::StatusOr<std::vector<CommandRecord>> PendingCommands(const std::string& h, uint64_t a),
      PendingCommands(h, a))
  IPFLEET_LOCKED_READ(absl::StatusOr<uint64_t> CountPendingCommands(), CountPendingCommands())
  IPFLEET_LOCKED_READ(absl::StatusOr<std::vector<AuditEntry>> ListAudit(size_t n), ListAudit(n))
  IPFLEET_LOCKED_READ(absl::StatusOr<std::vector<ReplicaRecord>> ListReplicas(), ListReplicas())
  IPFLEET_LOCKED_READ(absl::StatusOr<std::vector<BusMessage>> ReadBus(uint64_t a, size_t n), ReadBus(a, n))
  IPFLEET_LOCKED_READ(absl::StatusOr<uint64_t> LastBusSeq(), LastBusSeq())
#undef IPFLEET_LOCKED_READ

  absl::Status Transact(absl::FunctionRef<absl::Status(Tx&)> fn) override;
  int SchemaVersion() const override { return schema_; }
  void SetTransactionObserver(TransactionObserver observer) override { on_transaction_ = std::move(observer); }
  absl::Status Ping() override;

 protected:
  // On the write connection, with its mutex held.
  virtual absl::Status Begin() = 0;
  virtual absl::Status Commit() { return connection().Exec("COMMIT"); }
  virtual absl::Status Rollback() { return connection().Exec("ROLLBACK"); }

  sql::Connection& connection() { return *writes_.conn; }

 private:
  struct Session {
    Session(std::unique_ptr<sql::Connection> c, const Dialect& dialect)
        : conn(std::move(c)), ops(NewSqlOps(*conn, dialect)) {}
    std::mutex mu;
    std::unique_ptr<sql::Connection> conn;
    std::unique_ptr<Tx> ops;
  };
  Session writes_;
  std::unique_ptr<Session> own_reads_;
  Session* reads_;
  int schema_;
  TransactionObserver on_transaction_;
};

}  // namespace ipfleet::inventory
