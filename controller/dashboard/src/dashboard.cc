#include "ipfleet/controller/dashboard/dashboard.h"

#include <absl/strings/numbers.h>
#include <absl/strings/str_cat.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "api_routes.h"
#include "assets.h"
#include "auth.h"
#include "ipfleet/common/http/metrics_endpoint.h"
#include "ipfleet/common/http/server.h"
#include "ipfleet/common/metrics.h"
#include "ipfleet/controller/api/dashboard_tokens.h"
#include "ipfleet/controller/api/pki.h"
#include "ipfleet/v1/admin_service.grpc.pb.h"

namespace ipfleet::controller {
namespace {

// Pages load only our own scripts and styles; nothing from elsewhere, no framing.
constexpr char kContentSecurityPolicy[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

void ServeAsset(httplib::Response& res, const dashboard::Asset& a) {
  res.set_header("Content-Security-Policy", kContentSecurityPolicy);
  res.set_header("X-Frame-Options", "DENY");
  res.set_header("Referrer-Policy", "no-referrer");
  res.set_content(std::string(a.body), std::string(a.content_type).c_str());
}

bool WantsHtml(const httplib::Request& req) {
  return req.path == "/" || req.path == "/index.html" || req.path == "/login";
}

void Refuse(const httplib::Request& req, httplib::Response& res, const absl::Status& why) {
  res.status = absl::IsPermissionDenied(why) ? 403 : 401;
  std::string message(why.message());
  if (req.path.rfind("/api/", 0) == 0) return dashboard::ReplyError(res, res.status, message);
  if (const dashboard::Asset* page = dashboard::FindAsset("/login.html"); page && WantsHtml(req)) {
    ServeAsset(res, *page);  // keeps the status: set_content does not touch it
    res.set_header("X-Ipfleet-Refused", message);
    return;
  }
  res.set_content(message + "\n", "text/plain; charset=utf-8");
}

}  // namespace

struct Dashboard::Impl {
  ControllerContext* ctx = nullptr;
  DashboardOptions options;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::AdminService::Stub> admin;
  std::unique_ptr<http::Server> server;
};

Dashboard::Dashboard(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Dashboard::~Dashboard() { Stop(); }
void Dashboard::Stop() {
  if (impl_->server) impl_->server->Stop();
}
int Dashboard::port() const { return impl_->server->port(); }

std::string Dashboard::url() const {
  const std::string& a = impl_->options.address;
  std::string host = a.find(':') != std::string::npos ? "[" + a + "]" : a;
  if (a == "0.0.0.0") host = "127.0.0.1";
  if (a == "::") host = "[::1]";
  return absl::StrCat("https://", host, ":", port());
}

absl::StatusOr<std::unique_ptr<Dashboard>> Dashboard::Bind(ControllerContext& ctx, const std::string& tls_chain_pem,
                                                           const std::string& tls_key_pem,
                                                           const DashboardOptions& options) {
  if (!ctx.dashboard_tokens || !ctx.pki || !ctx.store) {
    return absl::FailedPreconditionError("dashboard: the controller context lacks tokens, PKI or inventory");
  }
  auto impl = std::make_unique<Impl>();
  impl->ctx = &ctx;
  impl->options = options;
  http::ServerOptions so;
  so.address = options.address;
  so.port = options.port;
  so.tls_chain_pem = tls_chain_pem;
  so.tls_key_pem = tls_key_pem;
  so.client_ca_pem = ctx.pki->CaPem();
  so.workers = options.workers;
  so.read_timeout_seconds = options.read_timeout_seconds;
  so.write_timeout_seconds = options.read_timeout_seconds;
  so.max_connection_seconds = options.max_connection_seconds;
  so.max_body_bytes = 1024;  // read-only: GET only, nothing to upload
  so.name = "dashboard";
  impl->server = std::make_unique<http::Server>(so);
  IPFLEET_RETURN_IF_ERROR(impl->server->Bind());
  return std::unique_ptr<Dashboard>(new Dashboard(std::move(impl)));
}

void Dashboard::Serve(std::shared_ptr<grpc::Channel> admin) {
  Impl& i = *impl_;
  ControllerContext& ctx = *i.ctx;
  i.channel = std::move(admin);
  i.admin = v1::AdminService::NewStub(i.channel);
  httplib::Server& s = i.server->routes();

  // Every request but the login page (and its style sheet) must be authenticated first.
  bool anonymous_loopback = i.options.anonymous_loopback;
  s.set_pre_routing_handler([&ctx, anonymous_loopback](const httplib::Request& req, httplib::Response& res) {
    if (req.method != "GET" && req.method != "HEAD") {
      res.status = 405;
      res.set_header("Allow", "GET, HEAD");
      res.set_content("the dashboard is read-only\n", "text/plain");
      return httplib::Server::HandlerResponse::Handled;
    }
    if (req.path == "/login" || req.path == "/style.css") return httplib::Server::HandlerResponse::Unhandled;
    absl::StatusOr<std::string> actor = dashboard::Authenticate(req, ctx, anonymous_loopback);
    if (!actor.ok()) {
      spdlog::info("event=dashboard_refused peer={} path={} reason=\"{}\"", req.remote_addr, req.path,
                   std::string(actor.status().message()));
      Refuse(req, res, actor.status());
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });

  // /login?token=T: sets the session cookie (HttpOnly, Secure, SameSite=Strict) and goes home.
  s.Get("/login", [&ctx](const httplib::Request& req, httplib::Response& res) {
    std::string token = req.get_param_value("token");
    absl::Status st = token.empty() ? absl::UnauthenticatedError("no token given: open the URL printed by "
                                                                 "`ipfleet dashboard token`")
                                    : ctx.dashboard_tokens->Check(token, ctx.clock());
    if (!st.ok()) {
      spdlog::info("event=dashboard_login_refused peer={} reason=\"{}\"", req.remote_addr, std::string(st.message()));
      return Refuse(req, res, st);
    }
    res.set_header("Set-Cookie", absl::StrCat(dashboard::kSessionCookie, "=", token,
                                              "; Path=/; HttpOnly; Secure; SameSite=Strict"));
    res.set_redirect("/", 303);
    spdlog::info("event=dashboard_login peer={}", req.remote_addr);
  });

  auto serve = [](const char* path) {
    return [path](const httplib::Request&, httplib::Response& res) {
      if (const dashboard::Asset* a = dashboard::FindAsset(path)) ServeAsset(res, *a);
    };
  };
  s.Get("/", serve("/index.html"));
  s.Get("/index.html", serve("/index.html"));
  s.Get("/app.js", serve("/app.js"));
  s.Get("/style.css", serve("/style.css"));
  if (ctx.metrics) http::AddMetricsRoute(s, *ctx.metrics);
  dashboard::AddApiRoutes(s, *i.admin);
  s.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (res.status == 404 && res.body.empty()) {
      if (req.path.rfind("/api/", 0) == 0) return dashboard::ReplyError(res, 404, "no such endpoint: " + req.path);
      res.set_content("not found\n", "text/plain");
    }
  });
  i.server->Serve();
  spdlog::info("event=dashboard_started url={} anonymous_loopback={}", url(), anonymous_loopback);
}

absl::Status ParseDashboardAddress(const std::string& text, DashboardOptions* options) {
  auto bad = [&] {
    return absl::InvalidArgumentError(
        absl::StrCat("--dashboard '", text, "': expected ADDRESS:PORT, e.g. 127.0.0.1:8443 or [::1]:8443"));
  };
  size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) return bad();
  std::string host = text.substr(0, colon);
  if (host.front() == '[') {
    if (host.back() != ']') return bad();
    host = host.substr(1, host.size() - 2);
  }
  int port = 0;
  if (!absl::SimpleAtoi(text.substr(colon + 1), &port) || port < 0 || port > 65535) return bad();
  options->address = host;
  options->port = port;
  return absl::OkStatus();
}

}  // namespace ipfleet::controller
