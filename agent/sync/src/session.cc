#include "ipfleet/agent/sync/session.h"

#include <chrono>

#include <spdlog/spdlog.h>

namespace ipfleet::agent {
namespace {
constexpr size_t kMaxOutbox = 1024;
constexpr int64_t kStableStreamMs = 5000;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

SessionClient::SessionClient(SessionOptions options, Agent& agent)
    : o_(std::move(options)), agent_(agent), backoff_(o_.backoff) {}

SessionClient::~SessionClient() { Stop(); }

void SessionClient::Start() {
  stop_ = false;
  session_thread_ = std::thread([this] { SessionLoop(); });
  tick_thread_ = std::thread([this] { TickLoop(); });
}

void SessionClient::Stop() {
  if (stop_.exchange(true)) return;
  {
    std::lock_guard lock(stream_mu_);
    if (ctx_) ctx_->TryCancel();
  }
  wait_cv_.notify_all();
  if (session_thread_.joinable()) session_thread_.join();
  if (tick_thread_.joinable()) tick_thread_.join();
}

void SessionClient::Reconnect() {
  std::lock_guard lock(stream_mu_);
  if (ctx_) ctx_->TryCancel();
}

bool SessionClient::WriteNow(const v1::AgentMessage& msg) {
  // stream_mu_ held by the caller.
  return stream_ && stream_->Write(msg);
}

void SessionClient::Send(const v1::AgentMessage& msg) {
  std::lock_guard lock(stream_mu_);
  if (connected_ && WriteNow(msg)) return;
  // Only what must not be lost waits for the next connection; health is rebuilt fresh anyway.
  if (msg.has_health()) return;
  if (outbox_.size() >= kMaxOutbox) outbox_.pop_front();
  outbox_.push_back(msg);
}

void SessionClient::FlushOutbox() {
  std::lock_guard lock(stream_mu_);
  while (!outbox_.empty() && WriteNow(outbox_.front())) outbox_.pop_front();
}

void SessionClient::SendHealth() {
  v1::AgentMessage m;
  *m.mutable_health() = agent_.BuildHealth(/*consume=*/false);
  std::lock_guard lock(stream_mu_);
  if (connected_ && WriteNow(m)) {
    // Forced renegotiations are "since the previous report": drop exactly those delivered.
    agent_.ConsumeForced(static_cast<size_t>(m.health().forced_size()));
  }
}

bool SessionClient::RunStream() {
  grpc::ChannelArguments args;
  if (!o_.tls_server_name.empty()) args.SetSslTargetNameOverride(o_.tls_server_name);
  // Keepalive pings notice a dead controller (or a path cut) within seconds, not minutes.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  const std::string target = o_.targets.empty() ? std::string() : o_.targets[target_index_ % o_.targets.size()];
  auto channel = grpc::CreateCustomChannel(target, o_.credentials(), args);
  auto stub = v1::AgentService::NewStub(channel);
  grpc::ClientContext ctx;
  auto stream = stub->Session(&ctx);
  {
    std::lock_guard lock(stream_mu_);
    ctx_ = &ctx;
    stream_ = stream.get();
    if (stop_) ctx.TryCancel();
  }
  const int64_t started = NowMs();
  v1::AgentMessage hello;
  *hello.mutable_hello() = agent_.BuildHello(o_.cert_serial ? o_.cert_serial() : "");
  bool ok;
  {
    std::lock_guard lock(stream_mu_);
    ok = WriteNow(hello);
  }
  if (ok) {
    connected_ = true;
    ++connections_;
    spdlog::info("event=session_connected target={} bundle_version={} last_command_id={}", target,
                 hello.hello().bundle_version(), hello.hello().last_command_id());
    // The last result may have been lost with the previous stream; the controller ignores repeats.
    if (auto last = agent_.LastResult()) {
      v1::AgentMessage m;
      *m.mutable_command_result() = *last;
      std::lock_guard lock(stream_mu_);
      WriteNow(m);
    }
    FlushOutbox();
    SendHealth();
    v1::ControllerMessage in;
    while (stream->Read(&in)) {
      switch (in.msg_case()) {
        case v1::ControllerMessage::kBundle: {
          v1::AgentMessage out;
          *out.mutable_bundle_ack() = agent_.HandleBundle(in.bundle());
          Send(out);
          SendHealth();
          break;
        }
        case v1::ControllerMessage::kCommand: {
          if (auto r = agent_.HandleCommand(in.command())) {
            v1::AgentMessage out;
            *out.mutable_command_result() = *r;
            Send(out);
          }
          wait_cv_.notify_all();  // let the tick loop pick the command up promptly
          break;
        }
        case v1::ControllerMessage::kRenewal:
          if (on_renewal) on_renewal(in.renewal());
          break;
        default:
          break;
      }
    }
  }
  {
    std::lock_guard lock(stream_mu_);
    connected_ = false;
    stream_ = nullptr;
  }
  stream->WritesDone();
  grpc::Status st = stream->Finish();
  {
    std::lock_guard lock(stream_mu_);
    ctx_ = nullptr;
  }
  spdlog::warn("event=session_closed target={} code={} error=\"{}\" lasted_ms={}", target,
               static_cast<int>(st.error_code()), st.error_message(), NowMs() - started);
  return NowMs() - started >= kStableStreamMs;
}

void SessionClient::SessionLoop() {
  size_t failed_in_a_row = 0;
  while (!stop_) {
    if (RunStream()) {
      backoff_.Reset();
      failed_in_a_row = 0;
    } else {
      ++failed_in_a_row;
    }
    if (stop_) break;
    const size_t n = std::max<size_t>(o_.targets.size(), 1);
    target_index_ = (target_index_ + 1) % n;  // the next replica
    // Within the first round over the replicas, a short jittered pause; after a whole round
    // failed, the growing backoff (a fleet that lost every controller does not hammer them).
    if (failed_in_a_row < n) backoff_.Reset();
    auto delay = backoff_.Next();
    spdlog::info("event=session_reconnect_wait delay_ms={} attempt={} next={}", delay.count(), backoff_.attempt(),
                 o_.targets.empty() ? "" : o_.targets[target_index_]);
    std::unique_lock lock(wait_mu_);
    wait_cv_.wait_for(lock, delay, [this] { return stop_.load(); });
  }
}

void SessionClient::TickLoop() {
  int64_t last_health = NowMs();
  while (!stop_) {
    {
      std::unique_lock lock(wait_mu_);
      wait_cv_.wait_for(lock, std::chrono::milliseconds(o_.tick_interval_ms), [this] { return stop_.load(); });
    }
    if (stop_) break;
    auto r = agent_.Tick();
    for (const auto& res : r.finished) {
      v1::AgentMessage m;
      *m.mutable_command_result() = res;
      Send(m);
    }
    if (r.changed || NowMs() - last_health >= o_.health_interval_ms) {
      last_health = NowMs();
      SendHealth();
    }
  }
}

}  // namespace ipfleet::agent
