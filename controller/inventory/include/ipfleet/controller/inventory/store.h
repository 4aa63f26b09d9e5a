// The inventory store interface: the controller's single source of truth.
//
// Reads go through `Reader`. Every write happens inside `Store::Transact`, which hands the
// callback a `Tx` (a Reader plus write methods) and commits when the callback returns OK,
// rolls back otherwise. Several writes that belong together (apply: replace tunnels, bump the
// generation, audit) therefore land atomically, and a crash at any point leaves either all or
// none of them. The SQLite implementation lives in sqlite_store.h; a PostgreSQL one can follow
// behind the same interface.
//
// Errors: NotFound when a named record does not exist, AlreadyExists on duplicates,
// FailedPrecondition / PermissionDenied for refused state transitions (e.g. a used token),
// Internal for storage failures (message names the failed SQLite call).
#pragma once

#include <absl/functional/function_ref.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "ipfleet/common/status.h"
#include "ipfleet/controller/inventory/types.h"

namespace ipfleet::inventory {

// The enrollment token rules, shared by every implementation and by callers that want to check
// before doing expensive work: `token` is the lookup result for the presented token's hash.
// NotFound (unknown), PermissionDenied (issued for another host), FailedPrecondition (used or
// expired); OK when the token may be consumed by `host` at `now_unix`.
absl::Status CheckEnrollmentToken(const absl::StatusOr<EnrollmentToken>& token, const std::string& host,
                                  int64_t now_unix);

class Reader {
 public:
  virtual ~Reader() = default;

  // Hosts
  virtual absl::StatusOr<Host> GetHost(const std::string& name) = 0;
  virtual absl::StatusOr<std::vector<Host>> ListHosts() = 0;  // ordered by name

  // Enrollment tokens (looked up by the SHA-256 of the token text)
  virtual absl::StatusOr<EnrollmentToken> GetEnrollmentToken(const std::string& token_sha256) = 0;

  // Certificates
  virtual absl::StatusOr<Certificate> GetCertificate(const std::string& serial) = 0;
  // Ordered by not_before; `include_revoked` false hides revoked ones.
  virtual absl::StatusOr<std::vector<Certificate>> ListCertificates(bool include_revoked) = 0;
  // Every revoked serial, oldest revocation first.
  virtual absl::StatusOr<std::vector<RevocationRecord>> ListRevocations() = 0;
  // Certificates whose subject is `name`, newest first.
  virtual absl::StatusOr<std::vector<Certificate>> CertificatesFor(const std::string& name) = 0;

  // Latest health per host
  virtual absl::StatusOr<HealthRecord> GetHealth(const std::string& host) = 0;  // NotFound if none
  virtual absl::StatusOr<std::vector<HealthRecord>> ListHealth() = 0;

  // Desired inventory and generations. CurrentGeneration is 0 before the first apply.
  virtual absl::StatusOr<uint64_t> CurrentGeneration() = 0;
  virtual absl::StatusOr<Generation> GetGeneration(uint64_t id) = 0;
  virtual absl::StatusOr<DesiredInventory> GetDesired() = 0;  // each list ordered by name

  // Bundles
  // The highest-version bundle of the host; NotFound if none.
  virtual absl::StatusOr<BundleRecord> LatestBundle(const std::string& host) = 0;
  // The same for many hosts in one query; hosts without a bundle are left out.
  virtual absl::StatusOr<std::vector<BundleRecord>> LatestBundles(const std::vector<std::string>& hosts) = 0;

  // Rollouts (with their hosts)
  virtual absl::StatusOr<Rollout> GetRollout(uint64_t id) = 0;
  virtual absl::StatusOr<Rollout> LatestRollout() = 0;  // NotFound when none yet

  // Commands
  virtual absl::StatusOr<CommandRecord> GetCommand(uint64_t id) = 0;
  // Commands of `host` with id > after_id not yet finished (queued or delivered), by id.
  virtual absl::StatusOr<std::vector<CommandRecord>> PendingCommands(const std::string& host,
                                                                      uint64_t after_id) = 0;
  // Commands of every host not yet finished (queued or delivered).
  virtual absl::StatusOr<uint64_t> CountPendingCommands() = 0;

  // Audit log, newest first, at most `limit` entries.
  virtual absl::StatusOr<std::vector<AuditEntry>> ListAudit(size_t limit) = 0;

  // Replicas (ordered by id) and the message bus between them.
  virtual absl::StatusOr<std::vector<ReplicaRecord>> ListReplicas() = 0;
  // Messages with seq > after_seq, oldest first, at most `limit`.
  virtual absl::StatusOr<std::vector<BusMessage>> ReadBus(uint64_t after_seq, size_t limit) = 0;
  // The highest seq written so far (0 when none): where a starting replica begins to read.
  virtual absl::StatusOr<uint64_t> LastBusSeq() = 0;
};

class Tx : public Reader {
 public:
  // Hosts. AddHost: AlreadyExists if the name is taken. UpdateHost rewrites addresses, DNS names
  // and labels. RemoveHost deletes the host with its tokens, health, bundles, commands and
  // rollout rows; certificates stay (revoke them first, in the same transaction).
  virtual absl::Status AddHost(const Host& host) = 0;
  virtual absl::Status UpdateHost(const Host& host) = 0;
  virtual absl::Status RemoveHost(const std::string& name) = 0;
  // Records the certificate now in use by the host and marks it enrolled.
  virtual absl::Status SetHostCertificate(const std::string& host, const std::string& serial,
                                          int64_t not_after_unix) = 0;
  virtual absl::Status SetHostSeen(const std::string& host, int64_t last_seen_unix,
                                   const std::string& agent_version) = 0;
  virtual absl::Status SetAppliedBundleVersion(const std::string& host, uint64_t version) = 0;
  virtual absl::Status SetDesiredBundleVersion(const std::string& host, uint64_t version) = 0;

  // Enrollment tokens
  virtual absl::Status AddEnrollmentToken(const EnrollmentToken& token) = 0;
  // Atomically checks and consumes a token for `host` at `now`. Refusals:
  // NotFound (unknown token), PermissionDenied (issued for another host), FailedPrecondition
  // (already used / expired); messages say what to do.
  virtual absl::Status ConsumeEnrollmentToken(const std::string& token_sha256,
                                              const std::string& host, int64_t now_unix) = 0;

  // Certificates
  virtual absl::Status PutCertificate(const Certificate& cert) = 0;  // AlreadyExists on serial
  // Records a revocation (the serial need not be in the certificates table: certificates issued
  // by the offline `ca issue` command are revocable too). Revoking twice keeps the first date and
  // reason.
  virtual absl::Status RevokeCertificate(const std::string& serial, const std::string& reason,
                                         int64_t now_unix) = 0;

  // Health: replaces the host's latest record.
  virtual absl::Status PutHealth(const HealthRecord& health) = 0;

  // Desired inventory: replaces all proposals, external peers and tunnels.
  virtual absl::Status ReplaceDesired(const DesiredInventory& desired) = 0;
  // Appends a generation and makes it current; returns its id (1, 2, ...).
  virtual absl::StatusOr<uint64_t> AddGeneration(const Generation& generation) = 0;

  // Bundles: the next free version for a host (1 + the highest version ever stored or
  // acknowledged), and storing a built bundle (AlreadyExists if host+version exists).
  virtual absl::StatusOr<uint64_t> NextBundleVersion(const std::string& host) = 0;
  // The same for many hosts in one query, in the order given; NotFound names a missing host.
  virtual absl::StatusOr<std::vector<uint64_t>> NextBundleVersions(const std::vector<std::string>& hosts) = 0;
  virtual absl::Status PutBundle(const BundleRecord& bundle) = 0;

  // Rollouts. CreateRollout stores the rollout and its hosts, returns the id.
  // UpdateRollout rewrites state/current_wave/waves/finished/error (not the hosts).
  virtual absl::StatusOr<uint64_t> CreateRollout(const Rollout& rollout) = 0;
  virtual absl::Status UpdateRollout(const Rollout& rollout) = 0;
  virtual absl::Status PutRolloutHost(uint64_t rollout_id, const RolloutHost& host) = 0;
  // The same for many hosts (each at most once), in few statements.
  virtual absl::Status PutRolloutHosts(uint64_t rollout_id, const std::vector<RolloutHost>& hosts) = 0;

  // Commands. EnqueueCommand assigns the id. UpdateCommand rewrites state, delivered/finished
  // times and result.
  virtual absl::StatusOr<uint64_t> EnqueueCommand(const CommandRecord& command) = 0;
  virtual absl::Status UpdateCommand(const CommandRecord& command) = 0;

  // Audit (call it in the same transaction as the action it records).
  virtual absl::Status AppendAudit(const AuditEntry& entry) = 0;

  // Replicas: PutReplica inserts or rewrites the row of replica.id; a leader's row clears the
  // leader flag of every other row (leadership is exclusive, and a dead leader cannot clear its own).
  virtual absl::Status PutReplica(const ReplicaRecord& replica) = 0;
  // Records which replica holds the host's session. An unknown host (removed meanwhile) is ignored.
  virtual absl::Status SetHostReplica(const std::string& host, const std::string& replica) = 0;
  // Clears the host's replica if it is still `replica` (a later session elsewhere stays recorded).
  virtual absl::Status ReleaseHostReplica(const std::string& host, const std::string& replica) = 0;
  // Clears the replica of every host whose session `replica` held (a replica starting or stopping).
  virtual absl::Status ClearHostsOfReplica(const std::string& replica) = 0;
  // Bus: appends a message (its seq grows in commit order, as write transactions are serialised;
  // ReadBus returns it);
  // PruneBus drops messages written before `before_unix`.
  virtual absl::Status AppendBus(const BusMessage& message) = 0;
  virtual absl::Status PruneBus(int64_t before_unix) = 0;
};

class Store : public Reader {
 public:
  // Runs `fn` in one write transaction; commits if it returns OK, rolls back otherwise and
  // returns its error. Transactions are serialized; do not call Store methods from inside `fn`
  // (use the Tx), and do no network I/O there.
  virtual absl::Status Transact(absl::FunctionRef<absl::Status(Tx&)> fn) = 0;

  // The schema version after migrations (for diagnostics).
  virtual int SchemaVersion() const = 0;

  // Told how long each Transact took (waiting for the lock, the callback and the commit) and
  // whether it committed: the controller's inventory write latency metric. Set it before the
  // store is shared between threads.
  using TransactionObserver = std::function<void(std::chrono::nanoseconds elapsed, bool committed)>;
  virtual void SetTransactionObserver(TransactionObserver observer) = 0;

  // True when other controllers may share this inventory (PostgreSQL): then leadership and the
  // bus decide who does what. A SQLite inventory has one controller (the data directory lock).
  virtual bool Shared() const = 0;
  // Leadership among the replicas. Acquires it when free, or checks it is still held; false
  // when another replica holds it, an error when the database cannot be reached (then this
  // replica does not lead). SQLite: always true.
  virtual absl::StatusOr<bool> HoldLeadership() = 0;
  virtual void ReleaseLeadership() = 0;
  // Reaches the database (readiness): OK, or Unavailable with the reason.
  virtual absl::Status Ping() = 0;
  // "sqlite:PATH" or "postgresql://host:port/db" (never a password): for logs and errors.
  virtual std::string Describe() const = 0;
};

// Calls the observer with the time from construction to destruction (for Transact bodies).
class TransactionTimer {
 public:
  explicit TransactionTimer(const Store::TransactionObserver& observer)
      : observer_(observer), start_(std::chrono::steady_clock::now()) {}
  ~TransactionTimer() {
    if (observer_) observer_(std::chrono::steady_clock::now() - start_, committed_);
  }
  void committed() { committed_ = true; }

 private:
  const Store::TransactionObserver& observer_;
  std::chrono::steady_clock::time_point start_;
  bool committed_ = false;
};

}  // namespace ipfleet::inventory
