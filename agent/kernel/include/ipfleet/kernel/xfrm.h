// The agent's only way to the kernel's IPsec tables (XFRM). Two implementations:
//   NewNetlinkXfrm() (ipfleet/kernel/netlink_xfrm.h): libmnl over NETLINK_XFRM.
//   FakeXfrm (ipfleet/kernel/fake_xfrm.h): in memory, same semantics, for unit tests.
// Errors name the operation, the SPI or selector and the reason, e.g.
//   "XFRM_MSG_NEWSA spi=0x1f000001 dst=192.0.2.2 proto=esp: File exists" (AlreadyExists).
// Status codes: duplicate add -> AlreadyExists, missing update/delete/query -> NotFound,
// bad parameters -> InvalidArgument, anything else the kernel refuses -> errno-mapped code.
// Not thread-safe: one owner (the agent's kernel task) calls it from one thread.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include "ipfleet/kernel/types.h"

namespace ipfleet::kernel {

// ---- SPI allocation --------------------------------------------------------------------------
struct SpiRequest {
  IpAddress src;
  IpAddress dst;  // the local address for an inbound SA
  uint32_t reqid = 0;
  IpsecProto proto = IpsecProto::kEsp;
  Mode mode = Mode::kTunnel;
  Mark mark;
  uint32_t min_spi = 0x100;  // RFC 4303: 1..255 are reserved
  uint32_t max_spi = 0xFFFFFFFF;
};

// ---- Batch operations ------------------------------------------------------------------------
// Many operations go to the kernel in one sendmsg (as many as fit), each with its own
// acknowledgement. The results come back one per operation, in the same order.
struct AddSa { SaParams sa; };        // XFRM_MSG_NEWSA: AlreadyExists if present
struct UpdateSa { SaParams sa; };     // XFRM_MSG_UPDSA: replaces (e.g. a larval SPI state)
struct DeleteSa { SaId id; };         // XFRM_MSG_DELSA
struct AddPolicy { PolicyParams policy; };     // XFRM_MSG_NEWPOLICY: AlreadyExists if present
struct UpdatePolicy { PolicyParams policy; };  // XFRM_MSG_UPDPOLICY: add or replace
struct DeletePolicy { PolicyId id; };          // XFRM_MSG_DELPOLICY
using BatchOp = std::variant<AddSa, UpdateSa, DeleteSa, AddPolicy, UpdatePolicy, DeletePolicy>;

// ---- Events ----------------------------------------------------------------------------------
// XFRM_MSG_ACQUIRE: an outbound packet matched a policy whose template has no SA yet.
struct AcquireEvent {
  Selector selector;          // the packet's flow
  PolicyTemplate templ;       // the template without SA (endpoints, reqid, mode)
  uint32_t policy_index = 0;  // the policy that matched
  Direction dir = Direction::kOut;
  uint32_t seq = 0;           // kernel acquire sequence number
};
// XFRM_MSG_EXPIRE: an SA reached its soft (rekey now) or hard (deleted) lifetime.
struct ExpireEvent {
  SaId id;
  IpAddress src;
  uint32_t reqid = 0;
  bool hard = false;
  SaCounters counters;
};
// XFRM_MSG_POLEXPIRE: a policy reached its lifetime.
struct PolicyExpireEvent {
  PolicyId id;
  uint32_t index = 0;
  bool hard = false;
};
using XfrmEvent = std::variant<AcquireEvent, ExpireEvent, PolicyExpireEvent>;
using EventCallback = std::function<void(const XfrmEvent&)>;

// ---- Ownership / reconcile -------------------------------------------------------------------
struct FlushReport {
  size_t sas_deleted = 0;
  size_t policies_deleted = 0;
  size_t foreign_sas_kept = 0;
  size_t foreign_policies_kept = 0;
};

// What the agent wants in the kernel. Only owned entries may appear here.
struct DesiredState {
  std::vector<SaParams> sas;
  std::vector<PolicyParams> policies;
};

struct ReconcileReport {
  size_t sas_added = 0;       // desired, missing in the kernel
  size_t sas_replaced = 0;    // present with different parameters
  size_t sas_removed = 0;     // owned leftovers not desired
  size_t policies_added = 0;
  size_t policies_replaced = 0;
  size_t policies_removed = 0;
};

class Xfrm {
 public:
  virtual ~Xfrm() = default;

  // SAs.
  virtual absl::StatusOr<uint32_t> AllocSpi(const SpiRequest& request) = 0;
  virtual absl::Status AddSa(const SaParams& sa) = 0;
  virtual absl::Status UpdateSa(const SaParams& sa) = 0;
  virtual absl::Status DeleteSa(const SaId& id) = 0;
  virtual absl::StatusOr<SaState> QuerySa(const SaId& id) = 0;
  virtual absl::StatusOr<std::vector<SaState>> DumpSas() = 0;

  // Policies. AddPolicy/UpdatePolicy assign an owned index when params.index is 0.
  virtual absl::Status AddPolicy(const PolicyParams& policy) = 0;
  virtual absl::Status UpdatePolicy(const PolicyParams& policy) = 0;
  virtual absl::Status DeletePolicy(const PolicyId& id) = 0;
  virtual absl::StatusOr<std::vector<PolicyState>> DumpPolicies() = 0;

  // One status per op, same order. Operations run in order; a failed one does not stop the
  // rest. A transport failure (socket error) marks every op not acknowledged with that error.
  virtual std::vector<absl::Status> Apply(std::span<const BatchOp> ops) = 0;

  // Events. Subscribe() joins the ACQUIRE and EXPIRE groups (EXPIRE carries POLEXPIRE too).
  // Then either poll(event_fd(), POLLIN) and call Dispatch(), or call Dispatch() periodically:
  // it delivers every pending event to the callback without blocking and returns how many.
  virtual absl::Status Subscribe(EventCallback callback) = 0;
  virtual int event_fd() const = 0;  // -1 before Subscribe()
  virtual absl::StatusOr<size_t> Dispatch() = 0;

  // Deletes every owned SA and policy, leaves the rest alone.
  virtual absl::StatusOr<FlushReport> FlushOwned() = 0;
  // Brings the owned part of the kernel to `desired`: removes owned leftovers, adds what is
  // missing, replaces what differs. Foreign state is never touched. Used after a restart.
  virtual absl::StatusOr<ReconcileReport> Reconcile(const DesiredState& desired) = 0;
};

// Runs ops one by one through the single-op methods; what a Xfrm without native batching
// (the fake) uses for Apply().
std::vector<absl::Status> ApplyOneByOne(Xfrm& xfrm, std::span<const BatchOp> ops);

// A Reconcile() built on Dump*/Apply, shared by both implementations so they agree.
absl::StatusOr<ReconcileReport> ReconcileWith(Xfrm& xfrm, const DesiredState& desired);
absl::StatusOr<FlushReport> FlushOwnedWith(Xfrm& xfrm);

}  // namespace ipfleet::kernel
