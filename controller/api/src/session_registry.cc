#include "ipfleet/controller/api/session_registry.h"

#include <grpcpp/support/status.h>
#include <spdlog/spdlog.h>

#include "ipfleet/controller/inventory/types.h"

namespace ipfleet::controller {

bool SessionRegistry::Push(const std::string& host, v1::ControllerMessage msg) {
  std::shared_ptr<SessionSink> sink;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = sessions_.find(host);
    if (it == sessions_.end()) return false;
    sink = it->second.sink;
  }
  return sink->Send(std::move(msg));
}

bool SessionRegistry::IsConnected(const std::string& host) const {
  std::lock_guard<std::mutex> lock(mu_);
  return sessions_.count(host) > 0;
}

std::vector<std::string> SessionRegistry::ConnectedHosts() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> out;
  out.reserve(sessions_.size());
  for (const auto& [host, e] : sessions_) out.push_back(host);
  return out;
}

size_t SessionRegistry::ConnectedCount() const {
  std::lock_guard<std::mutex> lock(mu_);
  return sessions_.size();
}

int64_t SessionRegistry::LastSeen(const std::string& host) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = last_seen_.find(host);
  return it == last_seen_.end() ? 0 : it->second;
}

void SessionRegistry::Attach(const std::string& host, std::shared_ptr<SessionSink> sink, int64_t now) {
  for (const auto& h : attach_) h(host);  // before the sink is visible (see OnAttach)
  std::shared_ptr<SessionSink> old;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Entry& e = sessions_[host];
    old = std::move(e.sink);
    e.sink = std::move(sink);
    e.last_seen = now;
    last_seen_[host] = now;
  }
  if (old) {
    spdlog::info("event=session_replaced host={}", host);
    old->Close(grpc::StatusCode::ABORTED, "replaced by a newer session of the same host");
  }
}

bool SessionRegistry::Detach(const std::string& host, const SessionSink* sink) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = sessions_.find(host);
    if (it == sessions_.end() || it->second.sink.get() != sink) return false;
    sessions_.erase(it);
  }
  for (const auto& h : disconnect_) h(host);
  return true;
}

void SessionRegistry::Touch(const std::string& host, int64_t now) {
  std::lock_guard<std::mutex> lock(mu_);
  last_seen_[host] = now;
  if (auto it = sessions_.find(host); it != sessions_.end()) it->second.last_seen = now;
}

void SessionRegistry::Kick(const std::string& host, const std::string& message) {
  std::shared_ptr<SessionSink> sink;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = sessions_.find(host);
    if (it == sessions_.end()) return;
    sink = it->second.sink;
  }
  sink->Close(grpc::StatusCode::PERMISSION_DENIED, message);
}

void SessionRegistry::CloseAll(const std::string& message) {
  std::map<std::string, Entry> all;
  {
    std::lock_guard<std::mutex> lock(mu_);
    all.swap(sessions_);
  }
  for (auto& [host, e] : all) e.sink->Close(grpc::StatusCode::UNAVAILABLE, message);
}

void SessionRegistry::DispatchHello(const std::string& host, const v1::Hello& m, bool from_replica) const {
  for (const auto& h : hello_) h(host, m);
  if (upstream_ && !from_replica) upstream_(host, inventory::bus_kind::kHello, m);
}
void SessionRegistry::DispatchAck(const std::string& host, const v1::BundleAck& m, bool from_replica) const {
  for (const auto& h : ack_) h(host, m);
  if (upstream_ && !from_replica) upstream_(host, inventory::bus_kind::kAck, m);
}
void SessionRegistry::DispatchHealth(const std::string& host, const v1::HealthReport& m, bool from_replica) const {
  for (const auto& h : health_) h(host, m);
  if (upstream_ && !from_replica) upstream_(host, inventory::bus_kind::kHealth, m);
}
void SessionRegistry::DispatchCommandResult(const std::string& host, const v1::CommandResult& m) const {
  for (const auto& h : result_) h(host, m);
}

}  // namespace ipfleet::controller
