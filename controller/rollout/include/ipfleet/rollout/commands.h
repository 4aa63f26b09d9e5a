// Remote commands (flush-sa, rekey, re-enroll): stored per host, sent on the session, executed
// once. Exactly-once rests on two facts: the agent executes an id at most once, and on every Hello
// it says the highest id it executed, so the controller resends only later ones - across
// reconnects and controller restarts alike (the queue is in the inventory, not in memory).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
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

  void OnHello(const std::string& host, const v1::Hello& hello);
  void OnResult(const std::string& host, const v1::CommandResult& result);
  void Stop();  // wakes waiters

  static v1::Command ToWire(const inventory::CommandRecord& c);

 private:
  controller::ControllerContext& ctx_;
  std::mutex send_mu_;  // orders Send against Hello resends so one session never gets an id twice
  std::mutex wait_mu_;
  std::condition_variable finished_;
  bool stopping_ = false;
};

}  // namespace ipfleet::rollout
