// The controller's web dashboard (read-only): fleet overview, tunnel topology, rollout progress by
// wave, a page per host with its SAs, and the controller's /metrics, over HTTPS on cpp-httplib.
// The pages are static assets compiled into the binary; they poll JSON endpoints that call the
// AdminService in process and answer with the same documents as `ipfleet ... -o json`
// (ipfleet/controller/views). See docs/dashboard.md.
//
// Access: an admin client certificate (TLS, issued by `ipfleet cert issue --kind admin`), or a
// login token from `ipfleet dashboard token` (cookie after /login, or Authorization: Bearer).
// Without either, only loopback clients are let in (unless anonymous_loopback is off); presented
// credentials that do not verify are refused even from loopback.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "ipfleet/common/status.h"
#include "ipfleet/controller/api/context.h"

namespace ipfleet::controller {

struct DashboardOptions {
  std::string address = "127.0.0.1";  // IP literal
  int port = 8443;                     // 0 picks a free port
  bool anonymous_loopback = true;
  int workers = 16;
  int max_connection_seconds = 30;  // slow clients are cut off after this (see ipfleet/common/http)
  int read_timeout_seconds = 5;
};

class Dashboard {
 public:
  // Binds the HTTPS port (so url() is known before anything can ask for it) with the
  // controller's TLS identity. ctx.dashboard_tokens must be set.
  static absl::StatusOr<std::unique_ptr<Dashboard>> Bind(ControllerContext& ctx, const std::string& tls_chain_pem,
                                                         const std::string& tls_key_pem,
                                                         const DashboardOptions& options);
  ~Dashboard();
  // Starts answering; `admin` is an in-process channel to the controller's AdminService.
  void Serve(std::shared_ptr<grpc::Channel> admin);
  void Stop();
  int port() const;
  // "https://ADDRESS:PORT" (IPv6 in brackets; a wildcard address is shown as loopback).
  std::string url() const;

  struct Impl;

 private:
  explicit Dashboard(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// "ADDRESS:PORT" or "[V6]:PORT" -> options.address/port; InvalidArgument naming the text.
absl::Status ParseDashboardAddress(const std::string& text, DashboardOptions* options);

}  // namespace ipfleet::controller
