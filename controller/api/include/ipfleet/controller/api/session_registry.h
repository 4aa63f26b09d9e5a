// Live agent sessions, one per host. The AgentService registers each authenticated Session
// stream here; everything else in the controller (rollouts, commands) talks to agents only
// through this class: push a ControllerMessage to one host, and subscribe to what agents send.
//
// Handlers are called in the order the agent sent the messages, after the controller recorded
// them in the inventory (applied bundle version, health, command result, last seen): Hello and
// command results on the session's gRPC callback thread, health reports and bundle acks on the
// AgentService's session-writer thread once their batch transaction committed. Keep them short:
// no blocking network I/O, store writes are fine.
// Register handlers before the server starts.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "ipfleet/v1/agent_service.pb.h"

namespace ipfleet::controller {

// The sending side of one live Session stream (implemented by the AgentService).
class SessionSink {
 public:
  virtual ~SessionSink() = default;
  // Queues `msg` for the agent; false when the stream is already closing.
  virtual bool Send(v1::ControllerMessage msg) = 0;
  // Ends the stream with `code`/`message` (e.g. replaced by a newer session, shutdown).
  virtual void Close(int grpc_code, const std::string& message) = 0;
};

class SessionRegistry {
 public:
  using HelloHandler = std::function<void(const std::string& host, const v1::Hello&)>;
  using AckHandler = std::function<void(const std::string& host, const v1::BundleAck&)>;
  using HealthHandler = std::function<void(const std::string& host, const v1::HealthReport&)>;
  using CommandResultHandler = std::function<void(const std::string& host, const v1::CommandResult&)>;
  using DisconnectHandler = std::function<void(const std::string& host)>;
  using AttachHandler = std::function<void(const std::string& host)>;

  // --- for the rest of the controller ------------------------------------------------------
  // Queues `msg` on the host's live session. False when the host has no session now (the caller
  // keeps the message in the inventory and sends it on the next hello).
  // Takes `msg` by value: a caller done with it moves it in (a 10,000-host wave pushes ~45 MB of
  // bundles; copies would double that).
  bool Push(const std::string& host, v1::ControllerMessage msg);

  // --- replication (see controller/replication) --------------------------------------------
  // Told every hello, ack and health report after the local handlers ran (it serializes only
  // what it forwards).
  using Upstream =
      std::function<void(const std::string& host, const char* kind, const google::protobuf::MessageLite& message)>;
  void SetUpstream(Upstream u) { upstream_ = std::move(u); }
  bool IsConnected(const std::string& host) const;
  std::vector<std::string> ConnectedHosts() const;  // sorted
  size_t ConnectedCount() const;
  // Last time anything arrived from the host on a session, 0 if never (since this start).
  int64_t LastSeen(const std::string& host) const;
  // Messages accepted by sessions and not yet written to their connections (or dropped with their
  // stream). The rollout paces a wave by it, so a 10,000-host wave is never in gRPC's buffers at
  // once (each queued bundle is held ~3 times: message, serialized, encrypted).
  int64_t OutboundQueued() const { return outbound_queued_.load(std::memory_order_relaxed); }

  void OnHello(HelloHandler h) { hello_.push_back(std::move(h)); }
  void OnBundleAck(AckHandler h) { ack_.push_back(std::move(h)); }
  void OnHealth(HealthHandler h) { health_.push_back(std::move(h)); }
  void OnCommandResult(CommandResultHandler h) { result_.push_back(std::move(h)); }
  void OnDisconnect(DisconnectHandler h) { disconnect_.push_back(std::move(h)); }
  // Called by Attach *before* the new session becomes visible to Push/IsConnected (also when it
  // replaces an older one, which fires no disconnect). A handler can thus forget per-session
  // state (e.g. "this session has had its Hello resends") with no window in which a concurrent
  // Push already reaches the new session while the state still describes the old one.
  void OnAttach(AttachHandler h) { attach_.push_back(std::move(h)); }

  // --- for the AgentService ----------------------------------------------------------------
  // Sinks add what they queue and subtract what they wrote or dropped (see OutboundQueued).
  std::atomic<int64_t>& outbound_queued_counter() { return outbound_queued_; }
  // Makes `sink` the host's session; a previous one is closed ("replaced by a newer session").
  void Attach(const std::string& host, std::shared_ptr<SessionSink> sink, int64_t now_unix);
  // Removes the host's session if it is still `sink` (a replaced session detaches nothing).
  // Returns true if it was the live one (then disconnect handlers ran).
  bool Detach(const std::string& host, const SessionSink* sink);
  void Touch(const std::string& host, int64_t now_unix);
  // Ends the host's live session, if any (host removed, certificate revoked).
  void Kick(const std::string& host, const std::string& message);
  // Closes every session (shutdown).
  void CloseAll(const std::string& message);

  // `from_replica`: the message came over the bus from the replica holding the session (it is
  // not passed upstream again).
  void DispatchHello(const std::string& host, const v1::Hello& m, bool from_replica = false) const;
  void DispatchAck(const std::string& host, const v1::BundleAck& m, bool from_replica = false) const;
  void DispatchHealth(const std::string& host, const v1::HealthReport& m, bool from_replica = false) const;
  void DispatchCommandResult(const std::string& host, const v1::CommandResult& m) const;

 private:
  struct Entry {
    std::shared_ptr<SessionSink> sink;
    int64_t last_seen = 0;
  };
  mutable std::mutex mu_;
  std::atomic<int64_t> outbound_queued_{0};
  std::map<std::string, Entry> sessions_;
  std::map<std::string, int64_t> last_seen_;  // survives disconnects
  std::vector<HelloHandler> hello_;
  std::vector<AckHandler> ack_;
  std::vector<HealthHandler> health_;
  std::vector<CommandResultHandler> result_;
  std::vector<DisconnectHandler> disconnect_;
  std::vector<AttachHandler> attach_;
  Upstream upstream_;
};

}  // namespace ipfleet::controller
