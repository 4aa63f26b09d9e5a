// Remote commands (flush-sa, rekey, re-enroll): stored per host, sent on the session, executed
// once. Exactly-once rests on two facts: the agent executes an id at most once, and on every Hello
// it says the highest id it executed, so the controller resends only later ones - across
// reconnects and controller restarts alike (the queue is in the inventory, not in memory).
//
// Two races that broke this (a flaky RolloutTest.FlushSa... under load), and what prevents them:
// - Send pushed a command and only then, in a second transaction, wrote `delivered`. A fast agent's
//   result (stored by the AgentService on another thread) could land in between and be overwritten
//   by the stale record: the command stayed `delivered` forever. The queued -> delivered step is
//   now a conditional transition (MarkDelivered) that never touches a finished command.
// - A new session is visible as soon as it is attached, but its Hello resends run later. Send in
//   between pushed the new command on the new session and the Hello pass pushed it again; worse,
//   with an older unexecuted command pending, the agent could execute the newer id first and then
//   skip the older one (ids at most once means "not below the highest executed"). Send now pushes
//   only to a session whose Hello pass has run (`greeted_`, reset by OnAttach before the session
//   is visible); otherwise the command stays queued and the Hello pass sends it, in id order.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <set>
#include <string>

#include "ipfleet/common/status.h"
#include "ipfleet/controller/api/context.h"
#include "ipfleet/controller/inventory/types.h"
#include "ipfleet/v1/agent_service.pb.h"

namespace ipfleet::rollout {

class CommandQueue {
 public:
  explicit CommandQueue(controller::ControllerContext& ctx) : ctx_(ctx) {}

  // Stores the command and sends it right away when the host is connected.
  absl::StatusOr<inventory::CommandRecord> Send(const std::string& host, v1::CommandKind kind, const std::string& tunnel,
                                                const std::string& peer);
  // The command; with wait_seconds > 0 blocks until it finished or the time is up.
  absl::StatusOr<inventory::CommandRecord> Get(uint64_t id, uint32_t wait_seconds);

  void OnAttach(const std::string& host);  // wire to SessionRegistry::OnAttach
  void OnHello(const std::string& host, const v1::Hello& hello);
  void OnResult(const std::string& host, const v1::CommandResult& result);
  void Stop();    // wakes waiters
  void Resume();  // after Stop, when this replica leads again
  // Another replica queued commands for a host whose session is here: push the queued ones.
  void SendQueued(const std::string& host);

  static v1::Command ToWire(const inventory::CommandRecord& c);

 private:
  // queued -> delivered, unless the command moved on meanwhile (its result already stored).
  absl::Status MarkDelivered(uint64_t id);
  // With send_mu_ held: pushes the host's unfinished commands with id > after_id (only those
  // still queued when `queued_only`) and marks them delivered. False when the inventory could
  // not be read or the session went away (the next Hello sends the rest).
  bool SendPending(const std::string& host, uint64_t after_id, bool queued_only, const char* why);

  controller::ControllerContext& ctx_;
  std::mutex send_mu_;  // orders Send against Hello resends so one session never gets an id twice
  std::set<std::string> greeted_;  // hosts whose current session had its Hello pass (send_mu_)
  std::mutex wait_mu_;
  std::condition_variable finished_;
  bool stopping_ = false;
};

}  // namespace ipfleet::rollout
