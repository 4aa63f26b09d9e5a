// Several controller replicas on one shared inventory (PostgreSQL): who leads, who holds which
// agent session, and the messages between them, all through the database, never through a side
// channel of our own (docs/high-availability.md).
//
// Every replica serves agents and the admin API. Exactly one leads: it runs the fleet module
// (rollout engine, resumed from the inventory when it takes over). Leadership is the store's
// (a PostgreSQL advisory lock held by a connection: a dead leader's lock goes with its
// connection, and a standby takes it within a second). What crosses replicas goes on the bus
// table (inventory::bus_kind):
//   leader -> holder  "bundle"   a bundle was stored for a host whose session is elsewhere
//   any    -> holder  "command"  a command was queued for such a host
//     (both written in the transaction that stores the bundle or the command, NoticeToHolder,
//      so a replica that dies right after cannot lose them)
//   holder -> leader  "hello", "ack", "health"  what agents said, for the rollout engine
//     (queued here and written every tick: an agent repeats them on its next session anyway)
// Each replica reads every message after the last one it saw and acts on the ones that concern
// it. The holder of a session is recorded per host (`ipfleet status` shows it).
//
// With SQLite (one controller) the store always grants leadership, and nothing is forwarded or
// written: the replica machinery only checks that the inventory answers.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ipfleet/controller/api/context.h"
#include "ipfleet/controller/api/fleet_module.h"
#include "ipfleet/controller/inventory/types.h"

namespace ipfleet::controller {

struct ReplicationOptions {
  std::string replica_id;  // unique among replicas (default: hostname:agent port)
  std::string endpoint;    // the agent endpoint this replica advertises
  int tick_ms = 100;       // bus reads and writes
  int lease_ms = 1000;     // leadership check, heartbeat, readiness
  int bus_retention_seconds = 120;
};

class Replication {
 public:
  Replication(ControllerContext& ctx, FleetModule* fleet, ReplicationOptions options);
  ~Replication();

  // Hooks the session registry (call before the servers start).
  void Wire();
  // First leadership check (the module starts here when this replica leads), then the thread.
  absl::Status Start();
  // Stops the module if leading, releases leadership, forgets the sessions held here.
  void Stop();

  bool leader() const { return leader_.load(); }
  // False while the inventory cannot be reached (admin writes fail then; agents keep sessions).
  bool ready() const { return ready_.load(); }
  const std::string& replica_id() const { return options_.replica_id; }
  // "replica r2 (127.0.0.1:7444)" of the current leader as the inventory knows it, or "unknown".
  std::string DescribeLeader() const;
  // Called when readiness or leadership changes (sd_notify STATUS, metrics).
  void OnChange(std::function<void()> f) { on_change_ = std::move(f); }

 private:
  void Loop();
  void CheckLease(int64_t now);
  void Flush();       // writes the queued bus messages and session holders in one transaction
  void ReadBus();
  // Acts on one message; hosts with a new stored bundle are collected into `bundles`.
  void Apply(const inventory::BusMessage& m, std::vector<std::string>* bundles);
  void Queue(const std::string& host, const char* kind, std::string payload);
  void SetLeader(bool leads, const std::string& why);

  ControllerContext& ctx_;
  FleetModule* fleet_;
  ReplicationOptions options_;
  int64_t started_unix_ = 0;

  std::atomic<bool> leader_{false};
  std::atomic<bool> ready_{true};
  std::function<void()> on_change_;
  bool notify_changes_ = false;  // set before the thread starts, read by it

  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::vector<inventory::BusMessage> outbox_;
  std::vector<std::pair<std::string, std::string>> holders_;  // host, replica ("" when closed)
  uint64_t last_seq_ = 0;
  std::thread thread_;
};

}  // namespace ipfleet::controller
