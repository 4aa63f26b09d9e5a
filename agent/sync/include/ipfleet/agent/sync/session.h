// The long-lived Session stream to the controller: Hello, bundles in / acks out, commands in /
// results out, health reports (periodic and on change), certificate renewal. With several
// controller replicas, a closed or failed stream moves on to the next endpoint after a short
// jittered pause; the exponential backoff grows only once every endpoint failed in a row.
// Results that could not be sent wait in an outbox.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "ipfleet/agent/sync/agent.h"
#include "ipfleet/agent/sync/backoff.h"
#include "ipfleet/v1/agent_service.grpc.pb.h"

namespace ipfleet::agent {

struct SessionOptions {
  std::vector<std::string> targets;  // "ADDR:PORT" of each controller replica, tried in turn
  // Called before every connection attempt, so a renewed certificate is used at once.
  std::function<std::shared_ptr<grpc::ChannelCredentials>()> credentials;
  // Overrides the TLS name checked against the controller certificate (empty: the target host).
  std::string tls_server_name;
  std::function<std::string()> cert_serial;  // for Hello
  int64_t health_interval_ms = 10000;
  int64_t tick_interval_ms = 500;
  Backoff::Options backoff;
};

class SessionClient {
 public:
  SessionClient(SessionOptions options, Agent& agent);
  ~SessionClient();

  void Start();
  void Stop();
  // Drops the current stream; the loop reconnects (with fresh credentials).
  void Reconnect();

  // Queues a message for the controller (sent now when connected, else after reconnecting).
  void Send(const v1::AgentMessage& msg);

  bool connected() const { return connected_; }
  int connections() const { return connections_; }
  std::function<void(const v1::CertificateRenewal&)> on_renewal;

 private:
  void SessionLoop();
  void TickLoop();
  bool RunStream();
  bool WriteNow(const v1::AgentMessage& msg);
  void FlushOutbox();
  void SendHealth();

  SessionOptions o_;
  size_t target_index_ = 0;  // the endpoint of the next stream (session thread only)
  Agent& agent_;
  Backoff backoff_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> connected_{false};
  std::atomic<int> connections_{0};

  std::mutex stream_mu_;  // guards stream_, ctx_ and writes
  grpc::ClientContext* ctx_ = nullptr;
  grpc::ClientReaderWriter<v1::AgentMessage, v1::ControllerMessage>* stream_ = nullptr;
  std::deque<v1::AgentMessage> outbox_;

  std::mutex wait_mu_;
  std::condition_variable wait_cv_;
  std::thread session_thread_, tick_thread_;
};

}  // namespace ipfleet::agent
