// Who may see the dashboard: an admin client certificate, a login token, or (when allowed) any
// loopback client. Presented credentials that fail are refused, never silently ignored.
#pragma once

#include <httplib.h>

#include <string>

#include "ipfleet/common/status.h"
#include "ipfleet/controller/api/context.h"

namespace ipfleet::controller::dashboard {

inline constexpr const char* kSessionCookie = "ipfleet_dashboard";

// The token of `Authorization: Bearer T` or of the session cookie; empty when neither.
std::string PresentedToken(const httplib::Request& req);

// The actor ("cert:NAME", "token", "loopback") or Unauthenticated / PermissionDenied saying how
// to get in.
absl::StatusOr<std::string> Authenticate(const httplib::Request& req, ControllerContext& ctx,
                                         bool anonymous_loopback);

}  // namespace ipfleet::controller::dashboard
