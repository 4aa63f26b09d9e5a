// A hard cap on the life of each TLS connection of one http::Server. cpp-httplib's timeouts are
// per read, so a client sending one byte every few seconds (slowloris) would hold a worker for
// as long as it likes; with a fixed pool, a handful of such clients would stall every other user.
//
// How: an info callback on the server's SSL_CTX registers each connection's socket when its
// handshake starts; a reaper thread shuts down (shutdown(2), never close) sockets past their
// deadline, which makes the blocked worker's next read fail and the library close the
// connection. The SSL object's ex_data free hook unregisters the socket when httplib frees the
// SSL, which it does before closing the socket, so a registered descriptor is always still the
// connection's own (never a reused number).
#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <unordered_map>

namespace ipfleet::http {

class ConnectionDeadlines {
 public:
  explicit ConnectionDeadlines(std::chrono::seconds max_life);
  ~ConnectionDeadlines();
  ConnectionDeadlines(const ConnectionDeadlines&) = delete;
  ConnectionDeadlines& operator=(const ConnectionDeadlines&) = delete;

  // Hooks the context; every SSL made from it is tracked.
  void Install(SSL_CTX* ctx);
  size_t tracked();

 private:
  struct Connection {
    int fd;
    std::chrono::steady_clock::time_point deadline;
    bool shut = false;
  };
  static void OnInfo(const SSL* ssl, int where, int ret);
  static void OnFree(void* parent, void* ptr, CRYPTO_EX_DATA* ad, int idx, long argl, void* argp);
  void Register(SSL* ssl);
  void Forget(uint64_t id);
  void ReapLoop();

  std::chrono::seconds max_life_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  uint64_t next_id_ = 1;
  std::unordered_map<uint64_t, Connection> connections_;
  std::thread reaper_;
};

}  // namespace ipfleet::http
