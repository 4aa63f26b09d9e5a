#include "ipfleet/rollout/commands.h"

#include <spdlog/spdlog.h>

#include <absl/strings/str_cat.h>

#include "ipfleet/controller/api/holder_notice.h"
#include "ipfleet/controller/api/session_registry.h"
#include "ipfleet/controller/inventory/store.h"

namespace ipfleet::rollout {

using inventory::CommandState;

v1::Command CommandQueue::ToWire(const inventory::CommandRecord& c) {
  v1::Command w;
  w.set_id(c.id);
  w.set_kind(static_cast<v1::CommandKind>(c.kind));
  w.set_tunnel(c.tunnel);
  w.set_peer(c.peer);
  w.set_issued_unix(c.issued_unix);
  return w;
}

absl::StatusOr<inventory::CommandRecord> CommandQueue::Send(const std::string& host, v1::CommandKind kind,
                                                            const std::string& tunnel, const std::string& peer) {
  if (kind == v1::COMMAND_KIND_UNSPECIFIED) return absl::InvalidArgumentError("command kind missing");
  std::lock_guard lock(send_mu_);
  inventory::CommandRecord c;
  c.host = host;
  c.kind = kind;
  c.tunnel = tunnel;
  c.peer = peer;
  c.issued_unix = ctx_.clock();
  c.state = CommandState::kQueued;
  IPFLEET_RETURN_IF_ERROR(ctx_.store->Transact([&](inventory::Tx& tx) -> absl::Status {
    IPFLEET_RETURN_IF_ERROR(tx.GetHost(host).status());
    IPFLEET_ASSIGN_OR_RETURN(c.id, tx.EnqueueCommand(c));
    return controller::NoticeToHolder(ctx_, tx, host, inventory::bus_kind::kCommand);
  }));
  v1::ControllerMessage msg;
  *msg.mutable_command() = ToWire(c);
  // Not greeted: no session here, or one whose Hello pass has not run yet; that pass sends it.
  // No session here: the replica holding one (if any) sends it, told in the transaction above.
  bool pushed = greeted_.count(host) > 0 && ctx_.sessions->Push(host, std::move(msg));
  if (pushed) {
    IPFLEET_RETURN_IF_ERROR(MarkDelivered(c.id));
    c.state = CommandState::kDelivered;
    c.delivered_unix = ctx_.clock();
  }
  spdlog::info("event=command_queued id={} host={} kind={} tunnel={} delivered={}", c.id, host, static_cast<int>(kind),
               tunnel, pushed);
  return c;
}

absl::Status CommandQueue::MarkDelivered(uint64_t id) {
  int64_t now = ctx_.clock();
  return ctx_.store->Transact([&](inventory::Tx& tx) -> absl::Status {
    IPFLEET_ASSIGN_OR_RETURN(inventory::CommandRecord cur, tx.GetCommand(id));
    if (cur.state != CommandState::kQueued) return absl::OkStatus();  // delivered before, or finished
    cur.state = CommandState::kDelivered;
    cur.delivered_unix = now;
    return tx.UpdateCommand(cur);
  });
}

void CommandQueue::OnAttach(const std::string& host) {
  std::lock_guard lock(send_mu_);
  greeted_.erase(host);
}

bool CommandQueue::SendPending(const std::string& host, uint64_t after_id, bool queued_only, const char* why) {
  absl::StatusOr<std::vector<inventory::CommandRecord>> pending = ctx_.store->PendingCommands(host, after_id);
  if (!pending.ok()) {
    spdlog::error("event=command_send_failed host={} on={} error=\"{}\"", host, why,
                  std::string(pending.status().message()));
    return false;
  }
  for (const inventory::CommandRecord& c : *pending) {
    if (queued_only && c.state != CommandState::kQueued) continue;  // delivered already: the agent has it
    v1::ControllerMessage msg;
    *msg.mutable_command() = ToWire(c);
    if (!ctx_.sessions->Push(host, std::move(msg))) return false;  // session gone: the next Hello resends
    if (absl::Status st = MarkDelivered(c.id); !st.ok()) {
      spdlog::error("event=command_update_failed id={} error=\"{}\"", c.id, std::string(st.message()));
    }
    spdlog::info("event=command_sent id={} host={} on={} agent_last={}", c.id, host, why, after_id);
  }
  return true;
}

void CommandQueue::OnHello(const std::string& host, const v1::Hello& hello) {
  std::lock_guard lock(send_mu_);
  if (SendPending(host, hello.last_command_id(), /*queued_only=*/false, "hello")) greeted_.insert(host);
}

void CommandQueue::SendQueued(const std::string& host) {
  std::lock_guard lock(send_mu_);
  if (!greeted_.count(host)) return;  // the Hello pass (still to run) sends everything pending
  SendPending(host, 0, /*queued_only=*/true, "replica");
}

void CommandQueue::Resume() {
  std::lock_guard lock(wait_mu_);
  stopping_ = false;
}

void CommandQueue::OnResult(const std::string&, const v1::CommandResult&) {
  // The AgentService stored the result before dispatching; wake whoever waits for it.
  std::lock_guard lock(wait_mu_);
  finished_.notify_all();
}

void CommandQueue::Stop() {
  std::lock_guard lock(wait_mu_);
  stopping_ = true;
  finished_.notify_all();
}

absl::StatusOr<inventory::CommandRecord> CommandQueue::Get(uint64_t id, uint32_t wait_seconds) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(wait_seconds);
  for (;;) {
    absl::StatusOr<inventory::CommandRecord> c = ctx_.store->GetCommand(id);
    if (!c.ok()) {
      if (absl::IsNotFound(c.status())) return absl::NotFoundError(absl::StrCat("no command with id ", id));
      return c.status();
    }
    bool done = c->state == CommandState::kSucceeded || c->state == CommandState::kFailed;
    if (done || wait_seconds == 0) return c;
    std::unique_lock lock(wait_mu_);
    if (stopping_ || std::chrono::steady_clock::now() >= deadline) return c;
    // Bounded wait: results wake us, the timeout re-checks the store (a result may land between
    // the read above and this wait).
    finished_.wait_until(lock, std::min(deadline, std::chrono::steady_clock::now() + std::chrono::milliseconds(200)));
  }
}

}  // namespace ipfleet::rollout
