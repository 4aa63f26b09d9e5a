#include "ipfleet/controller/views/json.h"

#include <google/protobuf/util/json_util.h>

#include <map>
#include <string>
#include <vector>

namespace ipfleet::views {
namespace {

template <typename Repeated>
std::vector<std::string> Strings(const Repeated& r) {
  return std::vector<std::string>(r.begin(), r.end());
}

}  // namespace

nlohmann::json ProtoToJson(const google::protobuf::Message& m) {
  std::string text;
  google::protobuf::util::JsonPrintOptions opts;
  opts.preserve_proto_field_names = true;
  opts.always_print_primitive_fields = true;
  if (!google::protobuf::util::MessageToJsonString(m, &text, opts).ok()) return nlohmann::json::object();
  return nlohmann::json::parse(text, nullptr, false);
}

nlohmann::json FleetStatusJson(const v1::FleetStatusResponse& r) {
  nlohmann::json hosts = nlohmann::json::array();
  for (const auto& h : r.hosts()) {
    hosts.push_back({{"host", h.host()},
                     {"connected", h.connected()},
                     {"last_seen_unix", h.last_seen_unix()},
                     {"bundle_version", h.bundle_version()},
                     {"tunnels_up", h.tunnels_up()},
                     {"tunnels_total", h.tunnels_total()},
                     {"stale_sas", h.stale_sas()},
                     {"forced_renegotiations", h.forced_renegotiations()},
                     {"replica", h.replica()}});
  }
  nlohmann::json replicas = nlohmann::json::array();
  for (const auto& p : r.replicas()) {
    replicas.push_back({{"id", p.id()},
                        {"endpoint", p.endpoint()},
                        {"leader", p.leader()},
                        {"alive", p.alive()},
                        {"heartbeat_unix", p.heartbeat_unix()}});
  }
  return {{"generation", r.generation()}, {"hosts", hosts}, {"replicas", replicas}, {"answered_by", r.answered_by()}};
}

nlohmann::json HostJson(const v1::HostInfo& h) {
  return {{"name", h.name()},
          {"addresses", Strings(h.addresses())},
          {"dns_names", Strings(h.dns_names())},
          {"labels", std::map<std::string, std::string>(h.labels().begin(), h.labels().end())},
          {"enrolled", h.enrolled()},
          {"connected", h.connected()},
          {"last_seen_unix", h.last_seen_unix()},
          {"cert_serial", h.cert_serial()},
          {"cert_not_after_unix", h.cert_not_after_unix()},
          {"applied_bundle_version", h.applied_bundle_version()},
          {"desired_bundle_version", h.desired_bundle_version()}};
}

nlohmann::json HostListJson(const v1::ListHostsResponse& r) {
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& h : r.hosts()) arr.push_back(HostJson(h));
  return arr;
}

nlohmann::json CertificatesJson(const v1::ListCertificatesResponse& r) {
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& x : r.certificates()) {
    arr.push_back({{"serial", x.serial()},
                   {"name", x.name()},
                   {"kind", x.kind()},
                   {"not_before_unix", x.not_before_unix()},
                   {"not_after_unix", x.not_after_unix()},
                   {"revoked", x.revoked()},
                   {"revoked_unix", x.revoked_unix()},
                   {"revocation_reason", x.revocation_reason()},
                   {"ip_addresses", Strings(x.ip_addresses())},
                   {"dns_names", Strings(x.dns_names())}});
  }
  return arr;
}

nlohmann::json TunnelsJson(const v1::ListTunnelsResponse& r) { return ProtoToJson(r)["tunnels"]; }
nlohmann::json PeersJson(const v1::ListExternalPeersResponse& r) { return ProtoToJson(r)["peers"]; }
nlohmann::json RolloutJson(const v1::RolloutStatus& r) { return ProtoToJson(r); }
nlohmann::json HostSasJson(const v1::HostSasResponse& r) { return ProtoToJson(r.report()); }

}  // namespace ipfleet::views
