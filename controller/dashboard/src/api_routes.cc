#include "api_routes.h"

#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>

#include "ipfleet/controller/views/json.h"

namespace ipfleet::controller::dashboard {
namespace {

constexpr char kJson[] = "application/json";
constexpr char kHostPattern[] = "([A-Za-z0-9][A-Za-z0-9._-]{0,252})";

int HttpStatus(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::NOT_FOUND: return 404;
    case grpc::StatusCode::INVALID_ARGUMENT: return 400;
    case grpc::StatusCode::PERMISSION_DENIED: return 403;
    case grpc::StatusCode::UNAUTHENTICATED: return 401;
    case grpc::StatusCode::UNAVAILABLE: return 503;
    case grpc::StatusCode::DEADLINE_EXCEEDED: return 504;
    default: return 500;
  }
}

std::unique_ptr<grpc::ClientContext> CallContext() {
  auto c = std::make_unique<grpc::ClientContext>();
  c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  return c;
}

// One GET endpoint: build the request from the path, call, convert the answer with its view.
template <typename Req, typename Resp>
void Route(httplib::Server& server, const std::string& pattern, v1::AdminService::Stub& admin,
           grpc::Status (v1::AdminService::Stub::*call)(grpc::ClientContext*, const Req&, Resp*),
           std::function<void(const httplib::Request&, Req*)> fill, nlohmann::json (*view)(const Resp&)) {
  server.Get(pattern, [&admin, call, fill, view](const httplib::Request& req, httplib::Response& res) {
    Req request;
    if (fill) fill(req, &request);
    Resp response;
    grpc::Status st = (admin.*call)(CallContext().get(), request, &response);
    if (!st.ok()) return ReplyError(res, HttpStatus(st.error_code()), st.error_message());
    res.set_content(view(response).dump(), kJson);
  });
}

}  // namespace

void ReplyError(httplib::Response& res, int http_status, const std::string& message) {
  res.status = http_status;
  res.set_content(nlohmann::json{{"error", message}}.dump(), kJson);
}

void AddApiRoutes(httplib::Server& s, v1::AdminService::Stub& admin) {
  using Stub = v1::AdminService::Stub;
  std::string host = kHostPattern;
  Route<v1::FleetStatusRequest, v1::FleetStatusResponse>(s, "/api/status", admin, &Stub::FleetStatus, {},
                                                         &views::FleetStatusJson);
  Route<v1::ListHostsRequest, v1::ListHostsResponse>(s, "/api/hosts", admin, &Stub::ListHosts, {},
                                                     &views::HostListJson);
  Route<v1::GetHostRequest, v1::HostInfo>(
      s, "/api/hosts/" + host, admin, &Stub::GetHost,
      [](const httplib::Request& r, v1::GetHostRequest* q) { q->set_name(r.matches[1]); }, &views::HostJson);
  Route<v1::HostSasRequest, v1::HostSasResponse>(
      s, "/api/hosts/" + host + "/sas", admin, &Stub::HostSas,
      [](const httplib::Request& r, v1::HostSasRequest* q) { q->set_host(r.matches[1]); }, &views::HostSasJson);
  Route<v1::ListTunnelsRequest, v1::ListTunnelsResponse>(s, "/api/tunnels", admin, &Stub::ListTunnels, {},
                                                         &views::TunnelsJson);
  Route<v1::ListExternalPeersRequest, v1::ListExternalPeersResponse>(s, "/api/peers", admin, &Stub::ListExternalPeers,
                                                                     {}, &views::PeersJson);
  Route<v1::GetRolloutRequest, v1::RolloutStatus>(s, "/api/rollout", admin, &Stub::GetRollout, {}, &views::RolloutJson);
  Route<v1::ListCertificatesRequest, v1::ListCertificatesResponse>(s, "/api/certificates", admin,
                                                                   &Stub::ListCertificates, {},
                                                                   &views::CertificatesJson);
}

}  // namespace ipfleet::controller::dashboard
