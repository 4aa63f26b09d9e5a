#include "ipfleet/kernel/fake_xfrm.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <ctime>

#include <absl/strings/str_cat.h>
#include <absl/strings/str_format.h>

#include "internal.h"

namespace ipfleet::kernel {
namespace {

// The fake words its errors like the netlink implementation (operation, id, errno text).
absl::Status Exists(const char* op, const std::string& what) {
  return absl::AlreadyExistsError(absl::StrCat(op, " ", what, ": File exists"));
}
absl::Status Missing(const char* op, const std::string& what, const char* text) {
  return absl::NotFoundError(absl::StrCat(op, " ", what, ": ", text));
}
uint64_t Now() { return static_cast<uint64_t>(std::time(nullptr)); }

}  // namespace

FakeXfrm::FakeXfrm() { event_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

FakeXfrm::~FakeXfrm() {
  if (event_fd_ >= 0) close(event_fd_);
}

absl::Status FakeXfrm::TakeFailure(const std::string& operation) {
  ++operations_;
  auto it = failures_.find(operation);
  if (it == failures_.end() || it->second.empty()) return absl::OkStatus();
  absl::Status s = it->second.front();
  it->second.pop_front();
  return s;
}

void FakeXfrm::FailNext(const std::string& operation, absl::Status status) {
  failures_[operation].push_back(std::move(status));
}

absl::StatusOr<uint32_t> FakeXfrm::AllocSpi(const SpiRequest& r) {
  if (auto s = TakeFailure("AllocSpi"); !s.ok()) return s;
  if (r.min_spi > r.max_spi || r.src.family != r.dst.family ||
      r.src.family == IpAddress::Family::kUnspec) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "XFRM_MSG_ALLOCSPI dst=%s range=0x%x-0x%x: Invalid argument", r.dst.ToString(), r.min_spi,
        r.max_spi));
  }
  uint64_t span = static_cast<uint64_t>(r.max_spi) - r.min_spi + 1;
  for (uint64_t tries = 0; tries < span && tries < 1000000; ++tries) {
    uint32_t spi = r.min_spi + static_cast<uint32_t>((next_spi_++) % span);
    SaId id{r.dst, spi, r.proto, r.mark};
    if (sas_.count(id) != 0) continue;
    SaState larval;  // like the kernel's larval (ACQ) state: addresses, reqid, no algorithms
    larval.params.src = r.src;
    larval.params.dst = r.dst;
    larval.params.spi = spi;
    larval.params.proto = r.proto;
    larval.params.mode = r.mode;
    larval.params.reqid = r.reqid;
    larval.params.mark = r.mark;
    larval.params.replay_window = 0;
    larval.counters.add_time = Now();
    sas_[id] = larval;
    return spi;
  }
  return absl::ResourceExhaustedError(absl::StrFormat(
      "XFRM_MSG_ALLOCSPI dst=%s range=0x%x-0x%x: No space left", r.dst.ToString(), r.min_spi,
      r.max_spi));
}

absl::Status FakeXfrm::AddSa(const SaParams& sa) {
  if (auto s = TakeFailure("AddSa"); !s.ok()) return s;
  if (auto s = internal::ValidateSa(sa, "XFRM_MSG_NEWSA"); !s.ok()) return s;
  if (sas_.count(sa.id()) != 0) return Exists("XFRM_MSG_NEWSA", sa.id().ToString());
  SaState st;
  st.params = sa;
  st.counters.add_time = Now();
  sas_[sa.id()] = st;
  return absl::OkStatus();
}

absl::Status FakeXfrm::UpdateSa(const SaParams& sa) {
  if (auto s = TakeFailure("UpdateSa"); !s.ok()) return s;
  if (auto s = internal::ValidateSa(sa, "XFRM_MSG_UPDSA"); !s.ok()) return s;
  auto it = sas_.find(sa.id());
  if (it == sas_.end()) return Missing("XFRM_MSG_UPDSA", sa.id().ToString(), "No such process");
  it->second.params = sa;
  return absl::OkStatus();
}

absl::Status FakeXfrm::DeleteSa(const SaId& id) {
  if (auto s = TakeFailure("DeleteSa"); !s.ok()) return s;
  if (sas_.erase(id) == 0) return Missing("XFRM_MSG_DELSA", id.ToString(), "No such process");
  return absl::OkStatus();
}

absl::StatusOr<SaState> FakeXfrm::QuerySa(const SaId& id) {
  if (auto s = TakeFailure("QuerySa"); !s.ok()) return s;
  auto it = sas_.find(id);
  if (it == sas_.end()) return Missing("XFRM_MSG_GETSA", id.ToString(), "No such process");
  return it->second;
}

absl::StatusOr<std::vector<SaState>> FakeXfrm::DumpSas() {
  if (auto s = TakeFailure("DumpSas"); !s.ok()) return s;
  std::vector<SaState> out;
  for (const auto& [id, st] : sas_) out.push_back(st);
  return out;
}

uint32_t FakeXfrm::AssignIndex(Direction dir) {
  for (;;) {
    uint32_t index = internal::OwnedPolicyIndex(next_index_++, dir);
    bool used = false;
    for (const auto& [id, p] : policies_) used = used || p.params.index == index;
    if (!used) return index;
  }
}

absl::Status FakeXfrm::StorePolicy(const PolicyParams& policy, bool update, const char* op) {
  if (auto s = internal::ValidatePolicy(policy, op); !s.ok()) return s;
  auto it = policies_.find(policy.id());
  if (it != policies_.end() && !update) return Exists(op, policy.id().ToString());
  PolicyState st;
  st.params = policy;
  st.add_time = Now();
  if (it != policies_.end()) {
    st.params.index = it->second.params.index;  // the kernel keeps the index on replace
  } else if (st.params.index == 0) {
    st.params.index = AssignIndex(policy.dir);
  }
  policies_[policy.id()] = st;
  return absl::OkStatus();
}

absl::Status FakeXfrm::AddPolicy(const PolicyParams& policy) {
  if (auto s = TakeFailure("AddPolicy"); !s.ok()) return s;
  return StorePolicy(policy, false, "XFRM_MSG_NEWPOLICY");
}

absl::Status FakeXfrm::UpdatePolicy(const PolicyParams& policy) {
  if (auto s = TakeFailure("UpdatePolicy"); !s.ok()) return s;
  return StorePolicy(policy, true, "XFRM_MSG_UPDPOLICY");
}

absl::Status FakeXfrm::DeletePolicy(const PolicyId& id) {
  if (auto s = TakeFailure("DeletePolicy"); !s.ok()) return s;
  if (policies_.erase(id) == 0) {
    return Missing("XFRM_MSG_DELPOLICY", id.ToString(), "No such file or directory");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<PolicyState>> FakeXfrm::DumpPolicies() {
  if (auto s = TakeFailure("DumpPolicies"); !s.ok()) return s;
  std::vector<PolicyState> out;
  for (const auto& [id, st] : policies_) out.push_back(st);
  return out;
}

std::vector<absl::Status> FakeXfrm::Apply(std::span<const BatchOp> ops) {
  return ApplyOneByOne(*this, ops);
}

absl::Status FakeXfrm::Subscribe(EventCallback callback) {
  if (event_fd_ < 0) return absl::InternalError("FakeXfrm: eventfd failed at construction");
  callback_ = std::move(callback);
  return absl::OkStatus();
}

int FakeXfrm::event_fd() const { return callback_ ? event_fd_ : -1; }

absl::StatusOr<size_t> FakeXfrm::Dispatch() {
  if (!callback_) return absl::FailedPreconditionError("Dispatch: Subscribe() first");
  uint64_t drained = 0;
  (void)!read(event_fd_, &drained, sizeof drained);  // EAGAIN when nothing pending: fine
  size_t n = 0;
  while (!events_.empty()) {
    XfrmEvent ev = std::move(events_.front());
    events_.pop_front();
    callback_(ev);
    ++n;
  }
  return n;
}

void FakeXfrm::InjectEvent(const XfrmEvent& event) {
  events_.push_back(event);
  uint64_t one = 1;
  (void)!write(event_fd_, &one, sizeof one);
}

absl::Status FakeXfrm::SetCounters(const SaId& id, const SaCounters& counters) {
  auto it = sas_.find(id);
  if (it == sas_.end()) return absl::NotFoundError(absl::StrCat("SetCounters ", id.ToString()));
  it->second.counters = counters;
  return absl::OkStatus();
}

absl::Status FakeXfrm::ExpireSa(const SaId& id, bool hard) {
  auto it = sas_.find(id);
  if (it == sas_.end()) return absl::NotFoundError(absl::StrCat("ExpireSa ", id.ToString()));
  ExpireEvent ev;
  ev.id = id;
  ev.src = it->second.params.src;
  ev.reqid = it->second.params.reqid;
  ev.hard = hard;
  ev.counters = it->second.counters;
  if (hard) sas_.erase(it);
  InjectEvent(ev);
  return absl::OkStatus();
}

void FakeXfrm::InsertForeignSa(const SaParams& sa) {
  SaState st;
  st.params = sa;
  st.counters.add_time = Now();
  sas_[sa.id()] = st;
}

void FakeXfrm::InsertForeignPolicy(const PolicyParams& policy) {
  PolicyState st;
  st.params = policy;
  st.add_time = Now();
  policies_[policy.id()] = st;
}

absl::StatusOr<FlushReport> FakeXfrm::FlushOwned() { return FlushOwnedWith(*this); }

absl::StatusOr<ReconcileReport> FakeXfrm::Reconcile(const DesiredState& desired) {
  return ReconcileWith(*this, desired);
}

}  // namespace ipfleet::kernel
