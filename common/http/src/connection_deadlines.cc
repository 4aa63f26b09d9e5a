#include "connection_deadlines.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>

namespace ipfleet::http {
namespace {

// What an SSL carries in its ex_data slot: who tracks it, under which id.
struct Ticket {
  ConnectionDeadlines* owner;
  uint64_t id;
};

int SslIndex(CRYPTO_EX_free* on_free) {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, on_free);
  return index;
}

int CtxIndex() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

}  // namespace

ConnectionDeadlines::ConnectionDeadlines(std::chrono::seconds max_life) : max_life_(max_life) {
  reaper_ = std::thread([this] { ReapLoop(); });
}

ConnectionDeadlines::~ConnectionDeadlines() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  reaper_.join();
}

void ConnectionDeadlines::Install(SSL_CTX* ctx) {
  SslIndex(&ConnectionDeadlines::OnFree);
  SSL_CTX_set_ex_data(ctx, CtxIndex(), this);
  SSL_CTX_set_info_callback(ctx, &ConnectionDeadlines::OnInfo);
}

size_t ConnectionDeadlines::tracked() {
  std::lock_guard lock(mu_);
  return connections_.size();
}

void ConnectionDeadlines::OnInfo(const SSL* ssl, int where, int) {
  if (!(where & SSL_CB_HANDSHAKE_START)) return;
  auto* self = static_cast<ConnectionDeadlines*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), CtxIndex()));
  // OpenSSL hands info callbacks a const SSL; setting our own ex_data slot on it is safe.
  if (self) self->Register(const_cast<SSL*>(ssl));
}

void ConnectionDeadlines::Register(SSL* ssl) {
  int index = SslIndex(&ConnectionDeadlines::OnFree);
  if (SSL_get_ex_data(ssl, index)) return;  // a renegotiation or TLS 1.3 key update: already tracked
  int fd = SSL_get_fd(ssl);
  if (fd < 0) return;
  std::lock_guard lock(mu_);
  uint64_t id = next_id_++;
  connections_[id] = {fd, std::chrono::steady_clock::now() + max_life_};
  SSL_set_ex_data(ssl, index, new Ticket{this, id});
}

void ConnectionDeadlines::OnFree(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  // Called for every SSL in the process (gRPC's too); only ours carry a ticket.
  auto* ticket = static_cast<Ticket*>(ptr);
  if (!ticket) return;
  ticket->owner->Forget(ticket->id);
  delete ticket;
}

void ConnectionDeadlines::Forget(uint64_t id) {
  std::lock_guard lock(mu_);
  connections_.erase(id);
}

void ConnectionDeadlines::ReapLoop() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, std::chrono::milliseconds(250));
    auto now = std::chrono::steady_clock::now();
    for (auto& [id, c] : connections_) {
      if (c.shut || now < c.deadline) continue;
      // Held under mu_: Forget (before the library closes the socket) cannot run meanwhile.
      ::shutdown(c.fd, SHUT_RDWR);
      c.shut = true;
      spdlog::debug("event=http_connection_expired max_life_s={}", max_life_.count());
    }
  }
}

}  // namespace ipfleet::http
