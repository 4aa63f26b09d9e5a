// An HTTP(S) server on cpp-httplib (Debian's libcpp-httplib), with the limits every ipfleet
// endpoint needs: bounded request heads and bodies, read/write timeouts, a worker pool of fixed
// size, and for TLS a hard cap on how long one connection may live, so that slow clients
// (slowloris) can hold a worker only for a bounded time. The caller registers its routes on
// routes() before Start(); the server runs on its own threads until Stop().
#pragma once

#include <httplib.h>

#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "ipfleet/common/status.h"

namespace ipfleet::http {

struct ServerOptions {
  std::string address = "127.0.0.1";  // an IP literal
  int port = 0;                        // 0 picks a free port (see Server::port())
  // Refuse to bind anything but a loopback address (endpoints without authentication).
  bool loopback_only = false;
  // TLS when both are set: the certificate chain (leaf first) and its private key, PEM.
  std::string tls_chain_pem;
  std::string tls_key_pem;
  // With TLS: ask clients for a certificate issued by this CA (PEM). Optional: a client without
  // one still connects; ClientCertificatePem() tells the handler what was presented.
  std::string client_ca_pem;
  int workers = 16;
  int read_timeout_seconds = 5;
  int write_timeout_seconds = 5;
  // TLS only: a connection is shut down this long after its handshake began, whatever it does.
  int max_connection_seconds = 30;
  size_t max_body_bytes = 64 * 1024;
  std::string name = "http";  // for log lines ("metrics", "dashboard")
};

class ConnectionDeadlines;

class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  httplib::Server& routes() { return *server_; }
  // Binds and starts serving; errors name the address and the reason.
  absl::Status Start();
  // The same in two steps, for callers that need the port before the routes exist.
  absl::Status Bind();
  void Serve();
  void Stop();
  int port() const { return port_; }
  bool tls() const { return tls_; }

  // The PEM certificate a TLS client presented (unverified: the handler decides whom it trusts),
  // or empty.
  static std::string ClientCertificatePem(const httplib::Request& req);

 private:
  ServerOptions o_;
  bool tls_ = false;
  std::unique_ptr<ConnectionDeadlines> deadlines_;
  std::unique_ptr<httplib::Server> server_;
  std::string setup_error_;
  std::thread thread_;
  int port_ = 0;
};

// 127.0.0.0/8, ::1 and ::ffff:127.x (IPv4-mapped loopback).
bool IsLoopbackAddress(std::string_view ip);

}  // namespace ipfleet::http
