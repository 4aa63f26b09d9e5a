// In-memory Xfrm with the kernel's semantics, for unit and in-process tests:
//   duplicate AddSa/AddPolicy -> AlreadyExists; Update/Delete/Query of a missing entry -> NotFound;
//   AllocSpi creates a larval SA (no algorithms) that UpdateSa completes, like the kernel;
//   counters are settable; events are injected and delivered through Dispatch() (event_fd() is
//   an eventfd that is readable while events are pending, so poll loops work unchanged).
#pragma once

#include <deque>
#include <map>
#include <optional>
#include <vector>

#include "ipfleet/kernel/xfrm.h"

namespace ipfleet::kernel {

class FakeXfrm : public Xfrm {
 public:
  FakeXfrm();
  ~FakeXfrm() override;
  FakeXfrm(const FakeXfrm&) = delete;
  FakeXfrm& operator=(const FakeXfrm&) = delete;

  absl::StatusOr<uint32_t> AllocSpi(const SpiRequest& request) override;
  absl::Status AddSa(const SaParams& sa) override;
  absl::Status UpdateSa(const SaParams& sa) override;
  absl::Status DeleteSa(const SaId& id) override;
  absl::StatusOr<SaState> QuerySa(const SaId& id) override;
  absl::StatusOr<std::vector<SaState>> DumpSas() override;

  absl::Status AddPolicy(const PolicyParams& policy) override;
  absl::Status UpdatePolicy(const PolicyParams& policy) override;
  absl::Status DeletePolicy(const PolicyId& id) override;
  absl::StatusOr<std::vector<PolicyState>> DumpPolicies() override;

  std::vector<absl::Status> Apply(std::span<const BatchOp> ops) override;

  absl::Status Subscribe(EventCallback callback) override;
  int event_fd() const override;
  absl::StatusOr<size_t> Dispatch() override;

  absl::StatusOr<FlushReport> FlushOwned() override;
  absl::StatusOr<ReconcileReport> Reconcile(const DesiredState& desired) override;

  // ---- Test controls ----
  // Sets the counters of an installed SA (NotFound if absent).
  absl::Status SetCounters(const SaId& id, const SaCounters& counters);
  // Queues an event for the next Dispatch().
  void InjectEvent(const XfrmEvent& event);
  // Makes the next call of an operation fail: e.g. FailNext("AddSa", absl::UnavailableError(..)).
  // Names: AllocSpi AddSa UpdateSa DeleteSa QuerySa DumpSas AddPolicy UpdatePolicy DeletePolicy
  // DumpPolicies.
  void FailNext(const std::string& operation, absl::Status status);
  // Simulates a hard expire: removes the SA and queues its EXPIRE event (hard=true).
  absl::Status ExpireSa(const SaId& id, bool hard);
  // Installs state as a foreign tool would (no ownership checks, no index assignment).
  void InsertForeignSa(const SaParams& sa);
  void InsertForeignPolicy(const PolicyParams& policy);

  size_t sa_count() const { return sas_.size(); }
  size_t policy_count() const { return policies_.size(); }
  // Number of operations executed (each batch op counts once); lets tests assert batching use.
  size_t operation_count() const { return operations_; }

 private:
  absl::Status TakeFailure(const std::string& operation);
  uint32_t AssignIndex(Direction dir);
  absl::Status StorePolicy(const PolicyParams& policy, bool update, const char* op);

  std::map<SaId, SaState> sas_;
  std::map<PolicyId, PolicyState> policies_;
  std::deque<XfrmEvent> events_;
  std::map<std::string, std::deque<absl::Status>> failures_;
  EventCallback callback_;
  int event_fd_ = -1;
  uint32_t next_spi_ = 0;
  uint32_t next_index_ = 0;
  size_t operations_ = 0;
};

}  // namespace ipfleet::kernel
