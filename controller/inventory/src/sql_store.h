// The part of a Store that is the same for SQLite and PostgreSQL: one connection guarded by a
// mutex, reads on it, writes in Transact between the backend's begin/commit/rollback. A backend
// supplies those three, a readiness check run before every use (reconnect), and its identity.
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
  SqlStore(std::unique_ptr<sql::Connection> conn, Dialect dialect, int schema)
      : conn_(std::move(conn)), ops_(NewSqlOps(*conn_, std::move(dialect))), schema_(schema) {}

#define IPFLEET_LOCKED_READ(sig, call)              \
  sig override {                                    \
    std::lock_guard<std::mutex> lock(mu_);          \
    IPFLEET_RETURN_IF_ERROR(EnsureConnected());     \
    return ops_->call;                              \
  }
  IPFLEET_LOCKED_READ(absl::StatusOr<Host> GetHost(const std::string& n), GetHost(n))
  IPFLEET_LOCKED_READ(absl::StatusOr<std::vector<Host>> ListHosts(), ListHosts())
  IPFLEET_LOCKED_READ(absl::StatusOr<EnrollmentToken> GetEnrollmentToken(const std::string& h),
                      GetEnrollmentToken(h))
  IPFLEET_LOCKED_READ(absl::StatusOr<Certificate> GetCertificate(const std::string& s), GetCertificate(s))
  IPFLEET_LOCKED_READ(absl::StatusOr<std::vector<Certificate>> ListCertificates(bool r), ListCertificates(r))
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
  IPFLEET_LOCKED_READ(absl::StatusOr<std::vector<ReplicaRecord>> ListReplicas(), ListReplicas())
  IPFLEET_LOCKED_READ(absl::StatusOr<std::vector<BusMessage>> ReadBus(uint64_t a, size_t n), ReadBus(a, n))
  IPFLEET_LOCKED_READ(absl::StatusOr<uint64_t> LastBusSeq(), LastBusSeq())
#undef IPFLEET_LOCKED_READ

  absl::Status Transact(absl::FunctionRef<absl::Status(Tx&)> fn) override;
  int SchemaVersion() const override { return schema_; }
  void SetTransactionObserver(TransactionObserver observer) override { on_transaction_ = std::move(observer); }
  absl::Status Ping() override;

 protected:
  // With mu_ held. Reconnects a backend whose connection was lost; Unavailable when it cannot.
  virtual absl::Status EnsureConnected() { return absl::OkStatus(); }
  virtual absl::Status Begin() = 0;
  virtual absl::Status Commit() { return conn_->Exec("COMMIT"); }
  virtual absl::Status Rollback() { return conn_->Exec("ROLLBACK"); }

  sql::Connection& connection() { return *conn_; }

 private:
  std::mutex mu_;
  std::unique_ptr<sql::Connection> conn_;
  std::unique_ptr<Tx> ops_;
  int schema_;
  TransactionObserver on_transaction_;
};

}  // namespace ipfleet::inventory
