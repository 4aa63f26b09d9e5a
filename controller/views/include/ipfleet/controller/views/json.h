// The JSON form of every AdminService answer the operator reads: `ipfleet ... -o json` prints
// these, and the dashboard's /api endpoints serve exactly the same documents (one model, one
// conversion). Numbers stay numbers; field names are the proto's.
#pragma once

#include <nlohmann/json.hpp>

#include "ipfleet/v1/admin_service.pb.h"

namespace google::protobuf {
class Message;
}

namespace ipfleet::views {

// A protobuf message as JSON (proto3 JSON mapping, original field names, defaults printed).
nlohmann::json ProtoToJson(const google::protobuf::Message& m);

nlohmann::json FleetStatusJson(const v1::FleetStatusResponse& r);       // ipfleet status
nlohmann::json HostJson(const v1::HostInfo& h);                         // ipfleet host show
nlohmann::json HostListJson(const v1::ListHostsResponse& r);            // ipfleet host list
nlohmann::json CertificatesJson(const v1::ListCertificatesResponse& r); // ipfleet cert list
nlohmann::json TunnelsJson(const v1::ListTunnelsResponse& r);           // ipfleet tunnels
nlohmann::json PeersJson(const v1::ListExternalPeersResponse& r);       // ipfleet peers
nlohmann::json RolloutJson(const v1::RolloutStatus& r);                 // ipfleet rollout status
nlohmann::json HostSasJson(const v1::HostSasResponse& r);               // ipfleet sas HOST

}  // namespace ipfleet::views
