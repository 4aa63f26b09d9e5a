#include "ipfleet/controller/replication/replication.h"

#include <absl/strings/str_cat.h>
#include <spdlog/spdlog.h>

#include <chrono>

#include "ipfleet/controller/api/session_registry.h"
#include "ipfleet/controller/inventory/store.h"

namespace ipfleet::controller {
namespace {

// Messages queued while the inventory is unreachable are kept up to this many; beyond it the
// oldest go (agents repeat their state on the next hello and health report anyway).
constexpr size_t kMaxOutbox = 200000;
constexpr size_t kBusPage = 1000;

}  // namespace

Replication::Replication(ControllerContext& ctx, FleetModule* fleet, ReplicationOptions options)
    : ctx_(ctx), fleet_(fleet), options_(std::move(options)) {}

Replication::~Replication() { Stop(); }

void Replication::Queue(const std::string& host, const char* kind, std::string payload) {
  std::lock_guard lock(mu_);
  if (outbox_.size() >= kMaxOutbox) {
    spdlog::warn("event=replication_outbox_full dropped_kind={} host={}", outbox_.front().kind, outbox_.front().host);
    outbox_.erase(outbox_.begin());
  }
  outbox_.push_back({0, ctx_.clock(), options_.replica_id, host, kind, std::move(payload)});
}

void Replication::Wire() {
  const bool shared = ctx_.store->Shared();
  if (shared) {
    ctx_.sessions->SetUpstream(
        [this](const std::string& host, const char* kind, const google::protobuf::MessageLite& message) {
          if (!leader_.load()) Queue(host, kind, message.SerializeAsString());  // the leader has it already
        });
    ctx_.sessions->OnAttach([this](const std::string& host) {
      std::lock_guard lock(mu_);
      holders_.emplace_back(host, options_.replica_id);
    });
    ctx_.sessions->OnDisconnect([this](const std::string& host) {
      std::lock_guard lock(mu_);
      holders_.emplace_back(host, "");
    });
  }
}

absl::Status Replication::Start() {
  started_unix_ = ctx_.clock();
  if (ctx_.store->Shared()) {
    IPFLEET_RETURN_IF_ERROR(ctx_.store->Transact([&](inventory::Tx& tx) {
      // Sessions this replica id held before a crash are gone.
      return tx.ClearHostsOfReplica(options_.replica_id);
    }));
    IPFLEET_ASSIGN_OR_RETURN(last_seq_, ctx_.store->LastBusSeq());
  }
  CheckLease(ctx_.clock());
  notify_changes_ = true;  // from now on: the start itself is announced by the daemon (READY=1)
  thread_ = std::thread([this] { Loop(); });
  return absl::OkStatus();
}

void Replication::Stop() {
  if (!thread_.joinable()) return;  // never started, or stopped already
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  if (leader_.load()) SetLeader(false, "shutting down");
  ctx_.store->ReleaseLeadership();
  if (!ctx_.store->Shared()) return;
  Flush();
  (void)ctx_.store->Transact([&](inventory::Tx& tx) -> absl::Status {
    IPFLEET_RETURN_IF_ERROR(tx.ClearHostsOfReplica(options_.replica_id));
    return tx.PutReplica({options_.replica_id, options_.endpoint, started_unix_, ctx_.clock(), false});
  });
}

void Replication::SetLeader(bool leads, const std::string& why) {
  if (leads == leader_.load()) return;
  if (leads) {
    spdlog::info("event=leadership_acquired replica={} inventory={}", options_.replica_id, ctx_.store->Describe());
    leader_.store(true);
    if (fleet_) fleet_->Start();  // resumes a running rollout from the inventory
  } else {
    spdlog::warn("event=leadership_lost replica={} reason=\"{}\"", options_.replica_id, why);
    leader_.store(false);
    if (fleet_) fleet_->Stop();
  }
  if (on_change_ && notify_changes_) on_change_();
}

void Replication::CheckLease(int64_t now) {
  absl::Status ping = ctx_.store->Ping();
  if (ping.ok() != ready_.load()) {
    ready_.store(ping.ok());
    if (ping.ok()) {
      spdlog::info("event=inventory_available inventory={}", ctx_.store->Describe());
    } else {
      spdlog::error("event=inventory_unavailable inventory={} error=\"{}\"", ctx_.store->Describe(),
                    std::string(ping.message()));
    }
    if (on_change_ && notify_changes_) on_change_();
  }
  absl::StatusOr<bool> leads = ctx_.store->HoldLeadership();
  if (!leads.ok()) {
    SetLeader(false, std::string(leads.status().message()));
  } else {
    SetLeader(*leads, "another replica holds the leadership lock");
  }
  // A lone (SQLite) controller has nobody to tell that it is alive.
  if (!ready_.load() || !ctx_.store->Shared()) return;
  absl::Status st = ctx_.store->Transact([&](inventory::Tx& tx) -> absl::Status {
    IPFLEET_RETURN_IF_ERROR(
        tx.PutReplica({options_.replica_id, options_.endpoint, started_unix_, now, leader_.load()}));
    if (leader_.load()) IPFLEET_RETURN_IF_ERROR(tx.PruneBus(now - options_.bus_retention_seconds));
    return absl::OkStatus();
  });
  if (!st.ok()) spdlog::warn("event=replica_heartbeat_failed error=\"{}\"", std::string(st.message()));
}

void Replication::Flush() {
  std::vector<inventory::BusMessage> out;
  std::vector<std::pair<std::string, std::string>> holders;
  {
    std::lock_guard lock(mu_);
    out.swap(outbox_);
    holders.swap(holders_);
  }
  if (out.empty() && holders.empty()) return;
  absl::Status st = ctx_.store->Transact([&](inventory::Tx& tx) -> absl::Status {
    for (const auto& [host, replica] : holders) {
      IPFLEET_RETURN_IF_ERROR(replica.empty() ? tx.ReleaseHostReplica(host, options_.replica_id)
                                              : tx.SetHostReplica(host, replica));
    }
    for (const auto& m : out) IPFLEET_RETURN_IF_ERROR(tx.AppendBus(m));
    return absl::OkStatus();
  });
  if (st.ok()) return;
  spdlog::warn("event=replication_flush_failed messages={} error=\"{}\"", out.size(), std::string(st.message()));
  std::lock_guard lock(mu_);  // keep them, in order, for the next tick
  out.insert(out.end(), std::make_move_iterator(outbox_.begin()), std::make_move_iterator(outbox_.end()));
  outbox_.swap(out);
  if (outbox_.size() > kMaxOutbox) outbox_.erase(outbox_.begin(), outbox_.begin() + (outbox_.size() - kMaxOutbox));
  holders.insert(holders.end(), holders_.begin(), holders_.end());
  holders_.swap(holders);
}

void Replication::ReadBus() {
  for (int page = 0; page < 100; ++page) {  // bounded: at most 100,000 messages per tick
    absl::StatusOr<std::vector<inventory::BusMessage>> batch = ctx_.store->ReadBus(last_seq_, kBusPage);
    if (!batch.ok()) return;  // readiness reports the outage
    std::vector<std::string> bundles;  // hosts here with a new stored bundle: read in one query
    for (const inventory::BusMessage& m : *batch) {
      last_seq_ = m.seq;
      if (m.origin != options_.replica_id) Apply(m, &bundles);
    }
    if (fleet_ && !bundles.empty()) fleet_->SendStoredBundles(bundles);
    if (batch->size() < kBusPage) return;
  }
}

void Replication::Apply(const inventory::BusMessage& m, std::vector<std::string>* bundles) {
  SessionRegistry& sessions = *ctx_.sessions;
  if (m.kind == inventory::bus_kind::kBundle || m.kind == inventory::bus_kind::kCommand) {
    if (!fleet_ || !sessions.IsConnected(m.host)) return;  // not ours
    if (m.kind == inventory::bus_kind::kBundle) {
      bundles->push_back(m.host);
    } else {
      fleet_->SendQueuedCommands(m.host);
    }
    return;
  }
  if (!leader_.load()) return;  // agents' reports are for the rollout engine, which runs on the leader
  if (m.kind == inventory::bus_kind::kHello) {
    v1::Hello h;
    if (h.ParseFromString(m.payload)) sessions.DispatchHello(m.host, h, /*from_replica=*/true);
  } else if (m.kind == inventory::bus_kind::kAck) {
    v1::BundleAck a;
    if (a.ParseFromString(m.payload)) sessions.DispatchAck(m.host, a, true);
  } else if (m.kind == inventory::bus_kind::kHealth) {
    v1::HealthReport r;
    if (r.ParseFromString(m.payload)) sessions.DispatchHealth(m.host, r, true);
  }
}

std::string Replication::DescribeLeader() const {
  if (leader_.load()) return absl::StrCat("replica ", options_.replica_id, " (", options_.endpoint, ")");
  absl::StatusOr<std::vector<inventory::ReplicaRecord>> all = ctx_.store->ListReplicas();
  if (all.ok()) {
    for (const auto& r : *all) {
      if (r.leader) return absl::StrCat("replica ", r.id, " (", r.endpoint, ")");
    }
  }
  return "unknown (no replica leads right now)";
}

void Replication::Loop() {
  auto next_lease = std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.lease_ms);
  std::unique_lock lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, std::chrono::milliseconds(options_.tick_ms), [&] { return stop_; });
    if (stop_) break;
    lock.unlock();
    if (std::chrono::steady_clock::now() >= next_lease) {
      CheckLease(ctx_.clock());
      next_lease = std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.lease_ms);
    }
    if (ready_.load() && ctx_.store->Shared()) {
      Flush();
      ReadBus();
    }
    lock.lock();
  }
}

}  // namespace ipfleet::controller
