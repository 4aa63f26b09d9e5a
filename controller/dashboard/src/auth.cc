#include "auth.h"

#include <absl/strings/match.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_split.h>
#include <absl/strings/strip.h>

#include "ipfleet/common/http/server.h"
#include "ipfleet/controller/api/dashboard_tokens.h"
#include "ipfleet/controller/api/peer_auth.h"

namespace ipfleet::controller::dashboard {

std::string PresentedToken(const httplib::Request& req) {
  std::string auth = req.get_header_value("Authorization");
  if (absl::StartsWithIgnoreCase(auth, "Bearer ")) return std::string(absl::StripAsciiWhitespace(auth.substr(7)));
  std::string cookies = req.get_header_value("Cookie");
  for (absl::string_view part : absl::StrSplit(cookies, ';')) {
    part = absl::StripAsciiWhitespace(part);
    if (absl::ConsumePrefix(&part, kSessionCookie) && absl::ConsumePrefix(&part, "=")) return std::string(part);
  }
  return "";
}

absl::StatusOr<std::string> Authenticate(const httplib::Request& req, ControllerContext& ctx, bool anonymous_loopback) {
  if (std::string pem = http::Server::ClientCertificatePem(req); !pem.empty()) {
    IPFLEET_ASSIGN_OR_RETURN(PeerIdentity id, VerifyClientCertificate(std::move(pem), *ctx.pki, *ctx.store, "admin"));
    return "cert:" + id.common_name;
  }
  if (std::string token = PresentedToken(req); !token.empty()) {
    IPFLEET_RETURN_IF_ERROR(ctx.dashboard_tokens->Check(token, ctx.clock()));
    return std::string("token");
  }
  if (anonymous_loopback && http::IsLoopbackAddress(req.remote_addr)) return std::string("loopback");
  return absl::UnauthenticatedError(
      "the dashboard needs an admin client certificate (`ipfleet cert issue --kind admin`) or a login token: run "
      "`ipfleet dashboard token` on the controller and open the URL it prints");
}

}  // namespace ipfleet::controller::dashboard
