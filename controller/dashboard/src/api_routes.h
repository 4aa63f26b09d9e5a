// The dashboard's JSON endpoints. Each asks the AdminService (in process) and answers with the
// document `ipfleet ... -o json` prints for the same call:
//   /api/status            ipfleet status
//   /api/hosts             ipfleet host list
//   /api/hosts/NAME        ipfleet host show NAME
//   /api/hosts/NAME/sas    ipfleet sas NAME
//   /api/tunnels           ipfleet tunnels
//   /api/peers             ipfleet peers
//   /api/rollout           ipfleet rollout status
//   /api/certificates      ipfleet cert list
// Errors: the gRPC status mapped to HTTP, body {"error": message}.
#pragma once

#include <httplib.h>

#include "ipfleet/v1/admin_service.grpc.pb.h"

namespace ipfleet::controller::dashboard {

void AddApiRoutes(httplib::Server& server, v1::AdminService::Stub& admin);

// {"error": message} with the HTTP status for `code`.
void ReplyError(httplib::Response& res, int http_status, const std::string& message);

}  // namespace ipfleet::controller::dashboard
