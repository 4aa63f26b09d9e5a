#include "ipfleet/controller/api/admin_service.h"

#include <absl/strings/str_cat.h>
#include <absl/strings/str_split.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "ipfleet/ca/authority.h"
#include "ipfleet/ca/cert.h"
#include "ipfleet/controller/api/dashboard_tokens.h"
#include "ipfleet/controller/api/enrollment.h"
#include "ipfleet/controller/api/peer_auth.h"
#include "ipfleet/controller/api/pki.h"
#include "ipfleet/controller/api/session_registry.h"
#include "ipfleet/controller/inventory/store.h"
#include "status_convert.h"

namespace ipfleet::controller {
namespace {

void ToProto(const inventory::Host& h, const SessionRegistry& sessions, v1::HostInfo* out) {
  out->set_name(h.name);
  for (const auto& a : h.addresses) out->add_addresses(a);
  for (const auto& d : h.dns_names) out->add_dns_names(d);
  for (const auto& [k, v] : h.labels) (*out->mutable_labels())[k] = v;
  out->set_cert_serial(h.cert_serial);
  out->set_cert_not_after_unix(h.cert_not_after_unix);
  out->set_enrolled(h.enrolled);
  out->set_connected(sessions.IsConnected(h.name));
  out->set_last_seen_unix(std::max(h.last_seen_unix, sessions.LastSeen(h.name)));
  out->set_applied_bundle_version(h.applied_bundle_version);
  out->set_desired_bundle_version(h.desired_bundle_version);
}

void ToProto(const inventory::Certificate& c, v1::CertificateInfo* out) {
  out->set_serial(c.serial);
  out->set_name(c.name);
  out->set_kind(c.kind);
  out->set_not_before_unix(c.not_before_unix);
  out->set_not_after_unix(c.not_after_unix);
  out->set_revoked(c.revoked);
  out->set_revoked_unix(c.revoked_unix);
  out->set_revocation_reason(c.revocation_reason);
  for (const auto& ip : c.ip_addresses) out->add_ip_addresses(ip);
  for (const auto& d : c.dns_names) out->add_dns_names(d);
}

// "k=v,k2=v2" -> pairs; InvalidArgument for anything else.
absl::StatusOr<std::map<std::string, std::string>> ParseSelector(const std::string& text) {
  std::map<std::string, std::string> out;
  if (text.empty()) return out;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    std::vector<std::string> kv = absl::StrSplit(part, absl::MaxSplits('=', 1));
    if (kv.size() != 2 || kv[0].empty()) {
      return absl::InvalidArgumentError(absl::StrCat("bad label selector '", text, "': use k=v[,k2=v2]"));
    }
    out[kv[0]] = kv[1];
  }
  return out;
}

grpc::Status HostNotFound(const std::string& name) {
  return grpc::Status(grpc::StatusCode::NOT_FOUND,
                      absl::StrCat("no host named '", name, "'; see `ipfleet host list`"));
}

}  // namespace

AdminServiceImpl::AdminServiceImpl(ControllerContext& ctx, FleetModule* fleet) : ctx_(ctx), fleet_(fleet) {}

absl::StatusOr<std::string> AdminServiceImpl::Authorize(grpc::ServerContext* sctx) {
  if (!IsTls(*sctx)) return std::string("local");  // the unix socket: protected by its 0600 mode
  IPFLEET_ASSIGN_OR_RETURN(PeerIdentity id, VerifyPeer(*sctx, *ctx_.pki, *ctx_.store, "admin"));
  return "cert:" + id.common_name;
}

void AdminServiceImpl::Audit(const std::string& actor, const std::string& action, const std::string& target,
                             const grpc::Status& result) {
  int64_t now = ctx_.clock();
  absl::Status st = ctx_.store->Transact([&](inventory::Tx& tx) {
    return tx.AppendAudit({0, now, actor, action, target, result.ok() ? "" : result.error_message(), result.ok()});
  });
  if (!st.ok()) spdlog::error("event=audit_failed action={} error=\"{}\"", action, std::string(st.message()));
}

#define IPFLEET_AUTHORIZE(actor)                               \
  absl::StatusOr<std::string> actor##_or = Authorize(sctx);    \
  if (!actor##_or.ok()) return ToGrpc(actor##_or.status());    \
  const std::string& actor = *actor##_or

grpc::Status AdminServiceImpl::AddHost(grpc::ServerContext* sctx, const v1::AddHostRequest* req,
                                       v1::AddHostResponse* resp) {
  IPFLEET_AUTHORIZE(actor);
  inventory::Host h;
  h.name = req->name();
  h.addresses.assign(req->addresses().begin(), req->addresses().end());
  h.dns_names.assign(req->dns_names().begin(), req->dns_names().end());
  h.labels.insert(req->labels().begin(), req->labels().end());
  absl::StatusOr<NewToken> t = AddHostWithToken(ctx_, h, req->token_ttl_seconds(), actor);
  if (!t.ok()) {
    grpc::Status st = ToGrpc(t.status());
    if (absl::IsAlreadyExists(t.status())) {
      st = grpc::Status(grpc::StatusCode::ALREADY_EXISTS,
                        absl::StrCat("host '", h.name, "' already exists; for a new enrollment token run `ipfleet host token ",
                                     h.name, "`"));
    }
    if (!absl::IsInvalidArgument(t.status())) Audit(actor, "host.add", h.name, st);
    return st;
  }
  resp->set_name(h.name);
  resp->set_token(t->token);
  resp->set_token_expires_unix(t->expires_unix);
  resp->set_ca_fingerprint(ctx_.pki->Fingerprint());
  resp->set_enroll_command(EnrollCommand(ctx_.agent_endpoint, h.name, t->token, ctx_.pki->Fingerprint()));
  return grpc::Status::OK;
}

grpc::Status AdminServiceImpl::NewEnrollmentToken(grpc::ServerContext* sctx, const v1::NewEnrollmentTokenRequest* req,
                                                  v1::AddHostResponse* resp) {
  IPFLEET_AUTHORIZE(actor);
  absl::StatusOr<NewToken> t = NewTokenForHost(ctx_, req->name(), req->token_ttl_seconds(), actor);
  if (absl::IsNotFound(t.status())) return HostNotFound(req->name());
  if (!t.ok()) return ToGrpc(t.status());
  resp->set_name(req->name());
  resp->set_token(t->token);
  resp->set_token_expires_unix(t->expires_unix);
  resp->set_ca_fingerprint(ctx_.pki->Fingerprint());
  resp->set_enroll_command(EnrollCommand(ctx_.agent_endpoint, req->name(), t->token, ctx_.pki->Fingerprint()));
  return grpc::Status::OK;
}

grpc::Status AdminServiceImpl::ListHosts(grpc::ServerContext* sctx, const v1::ListHostsRequest* req,
                                         v1::ListHostsResponse* resp) {
  IPFLEET_AUTHORIZE(actor);
  (void)actor;
  absl::StatusOr<std::map<std::string, std::string>> sel = ParseSelector(req->selector());
  if (!sel.ok()) return ToGrpc(sel.status());
  absl::StatusOr<std::vector<inventory::Host>> hosts = ctx_.store->ListHosts();
  if (!hosts.ok()) return ToGrpc(hosts.status());
  for (const auto& h : *hosts) {
    bool match = std::all_of(sel->begin(), sel->end(), [&](const auto& kv) {
      auto it = h.labels.find(kv.first);
      return it != h.labels.end() && it->second == kv.second;
    });
    if (match) ToProto(h, *ctx_.sessions, resp->add_hosts());
  }
  return grpc::Status::OK;
}

grpc::Status AdminServiceImpl::GetHost(grpc::ServerContext* sctx, const v1::GetHostRequest* req, v1::HostInfo* resp) {
  IPFLEET_AUTHORIZE(actor);
  (void)actor;
  absl::StatusOr<inventory::Host> h = ctx_.store->GetHost(req->name());
  if (absl::IsNotFound(h.status())) return HostNotFound(req->name());
  if (!h.ok()) return ToGrpc(h.status());
  ToProto(*h, *ctx_.sessions, resp);
  return grpc::Status::OK;
}

grpc::Status AdminServiceImpl::RemoveHost(grpc::ServerContext* sctx, const v1::RemoveHostRequest* req,
                                          v1::RemoveHostResponse* resp) {
  IPFLEET_AUTHORIZE(actor);
  const std::string& name = req->name();
  absl::StatusOr<inventory::Host> h = ctx_.store->GetHost(name);
  if (absl::IsNotFound(h.status())) return HostNotFound(name);
  if (!h.ok()) return ToGrpc(h.status());
  // Revoke every live host certificate first: a crash after this leaves a host that cannot
  // authenticate, never a removed host whose certificate still works.
  absl::StatusOr<std::vector<inventory::Certificate>> certs = ctx_.store->CertificatesFor(name);
  if (!certs.ok()) return ToGrpc(certs.status());
  for (const auto& c : *certs) {
    if (c.kind != "host" || c.revoked) continue;
    absl::Status st = ctx_.pki->Revoke(c.serial, "cessationOfOperation", actor);
    if (!st.ok()) return ToGrpc(st);
  }
  int64_t now = ctx_.clock();
  absl::Status st = ctx_.store->Transact([&](inventory::Tx& tx) -> absl::Status {
    IPFLEET_RETURN_IF_ERROR(tx.RemoveHost(name));
    return tx.AppendAudit({0, now, actor, "host.remove", name, "revoked=" + h->cert_serial, true});
  });
  if (!st.ok()) return ToGrpc(st);
  ctx_.sessions->Kick(name, "host removed from the inventory");
  resp->set_revoked_serial(h->cert_serial);
  spdlog::info("event=host_removed host={} actor={} revoked_serial={}", name, actor, h->cert_serial);
  return grpc::Status::OK;
}

grpc::Status AdminServiceImpl::ListCertificates(grpc::ServerContext* sctx, const v1::ListCertificatesRequest* req,
                                                v1::ListCertificatesResponse* resp) {
  IPFLEET_AUTHORIZE(actor);
  (void)actor;
  absl::StatusOr<std::vector<inventory::Certificate>> certs = ctx_.store->ListCertificates(req->include_revoked());
  if (!certs.ok()) return ToGrpc(certs.status());
  for (const auto& c : *certs) ToProto(c, resp->add_certificates());
  return grpc::Status::OK;
}

grpc::Status AdminServiceImpl::IssueCertificate(grpc::ServerContext* sctx, const v1::IssueCertificateRequest* req,
                                                v1::IssueCertificateResponse* resp) {
  IPFLEET_AUTHORIZE(actor);
  std::string kind = req->kind().empty() ? "external" : req->kind();
  if (kind != "external" && kind != "admin") {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("certificate kind '", kind, "' is not issuable here: use external or admin"));
  }
  if (req->name().empty()) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "--name is required");
  absl::StatusOr<inventory::Host> clash = ctx_.store->GetHost(req->name());
  if (clash.ok()) {
    return grpc::Status(grpc::StatusCode::ALREADY_EXISTS,
                        absl::StrCat("'", req->name(), "' is a fleet host; hosts get certificates by enrolling"));
  }
  ca::IssueRequest ir;
  ir.common_name = req->name();
  ir.ips.assign(req->ip_addresses().begin(), req->ip_addresses().end());
  ir.dns.assign(req->dns_names().begin(), req->dns_names().end());
  if (req->days()) ir.days = static_cast<int>(req->days());
  // Admin certificates use the host profile for its clientAuth EKU; the inventory kind is what
  // makes them admin certificates.
  ir.profile = kind == "admin" ? ca::Profile::kHost : ca::Profile::kExternal;
  absl::StatusOr<ca::IssuedCert> issued = ctx_.pki->Issue(req->csr_pem(), ir);
  if (!issued.ok()) {
    grpc::Status st(grpc::StatusCode::INVALID_ARGUMENT,
                    absl::StrCat("could not issue: ", std::string(issued.status().message())));
    Audit(actor, "cert.issue", req->name(), st);
    return st;
  }
  inventory::Certificate rec = Pki::ToRecord(*issued, ir, kind);
  int64_t now = ctx_.clock();
  absl::Status st = ctx_.store->Transact([&](inventory::Tx& tx) -> absl::Status {
    IPFLEET_RETURN_IF_ERROR(tx.PutCertificate(rec));
    return tx.AppendAudit({0, now, actor, "cert.issue", req->name(), "kind=" + kind + " serial=" + rec.serial, true});
  });
  if (!st.ok()) return ToGrpc(st);
  resp->set_certificate_pem(issued->pem);
  resp->set_serial(issued->serial_hex);
  resp->add_ca_chain(ctx_.pki->CaPem());
  spdlog::info("event=certificate_issued name={} kind={} serial={} actor={}", req->name(), kind, rec.serial, actor);
  return grpc::Status::OK;
}

grpc::Status AdminServiceImpl::RevokeCertificate(grpc::ServerContext* sctx, const v1::RevokeCertificateRequest* req,
                                                 v1::RevokeCertificateResponse* resp) {
  IPFLEET_AUTHORIZE(actor);
  std::vector<std::string> serials;
  std::string host;
  if (req->target_case() == v1::RevokeCertificateRequest::kHost) {
    host = req->host();
    absl::StatusOr<inventory::Host> h = ctx_.store->GetHost(host);
    if (absl::IsNotFound(h.status())) return HostNotFound(host);
    if (!h.ok()) return ToGrpc(h.status());
    absl::StatusOr<std::vector<inventory::Certificate>> certs = ctx_.store->CertificatesFor(host);
    if (!certs.ok()) return ToGrpc(certs.status());
    for (const auto& c : *certs) {
      if (c.kind == "host" && !c.revoked) serials.push_back(c.serial);
    }
    if (serials.empty()) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          absl::StrCat("host '", host, "' has no valid certificate to revoke"));
    }
  } else if (req->target_case() == v1::RevokeCertificateRequest::kSerial) {
    absl::StatusOr<std::string> s = ca::NormalizeSerialHex(req->serial());
    if (!s.ok()) return ToGrpc(s.status());
    serials.push_back(*s);
    absl::StatusOr<inventory::Certificate> c = ctx_.store->GetCertificate(*s);
    if (c.ok() && c->kind == "host") host = c->name;
  } else {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "name a host or a --serial to revoke");
  }
  for (const auto& s : serials) {
    absl::Status st = ctx_.pki->Revoke(s, req->reason(), actor);
    if (!st.ok()) return ToGrpc(st);
    resp->add_revoked_serials(s);
  }
  resp->set_crl_number(ctx_.pki->CrlNumber());
  if (!host.empty()) ctx_.sessions->Kick(host, "certificate revoked");
  return grpc::Status::OK;
}

grpc::Status AdminServiceImpl::FleetStatus(grpc::ServerContext* sctx, const v1::FleetStatusRequest*,
                                           v1::FleetStatusResponse* resp) {
  IPFLEET_AUTHORIZE(actor);
  (void)actor;
  absl::StatusOr<std::vector<inventory::Host>> hosts = ctx_.store->ListHosts();
  if (!hosts.ok()) return ToGrpc(hosts.status());
  absl::StatusOr<std::vector<inventory::HealthRecord>> health = ctx_.store->ListHealth();
  if (!health.ok()) return ToGrpc(health.status());
  absl::StatusOr<uint64_t> gen = ctx_.store->CurrentGeneration();
  if (!gen.ok()) return ToGrpc(gen.status());
  resp->set_generation(*gen);
  std::map<std::string, const inventory::HealthRecord*> by_host;
  for (const auto& r : *health) by_host[r.host] = &r;
  // Replicas exist only on a shared inventory; a lone controller answers for itself.
  std::vector<inventory::ReplicaRecord> replicas;
  if (ctx_.store->Shared()) {
    absl::StatusOr<std::vector<inventory::ReplicaRecord>> all = ctx_.store->ListReplicas();
    if (!all.ok()) return ToGrpc(all.status());
    replicas = std::move(*all);
  }
  const int64_t now = ctx_.clock();
  constexpr int64_t kAliveSeconds = 5;  // heartbeats come every second
  std::set<std::string> alive;
  for (const auto& r : replicas) {
    if (now - r.heartbeat_unix <= kAliveSeconds) alive.insert(r.id);
  }
  for (const auto& h : *hosts) {
    v1::HostStatus* s = resp->add_hosts();
    s->set_host(h.name);
    // A session on another live replica counts (a dead replica's rows are stale until it restarts).
    const bool here = ctx_.sessions->IsConnected(h.name);
    const bool elsewhere = h.replica != ctx_.replica_id && alive.count(h.replica) > 0;
    s->set_connected(here || elsewhere);
    s->set_replica(here ? ctx_.replica_id : (elsewhere ? h.replica : ""));
    s->set_last_seen_unix(std::max(h.last_seen_unix, ctx_.sessions->LastSeen(h.name)));
    s->set_bundle_version(h.applied_bundle_version);
    if (auto it = by_host.find(h.name); it != by_host.end()) {
      s->set_tunnels_up(it->second->tunnels_up);
      s->set_tunnels_total(it->second->tunnels_total);
      s->set_stale_sas(it->second->stale_sas);
      s->set_forced_renegotiations(it->second->forced_renegotiations);
    }
  }
  resp->set_answered_by(ctx_.replica_id);
  for (const auto& r : replicas) {
    v1::ReplicaStatus* p = resp->add_replicas();
    p->set_id(r.id);
    p->set_endpoint(r.endpoint);
    p->set_heartbeat_unix(r.heartbeat_unix);
    p->set_alive(alive.count(r.id) > 0);
    p->set_leader(r.leader && p->alive());
  }
  return grpc::Status::OK;
}

grpc::Status AdminServiceImpl::HostSas(grpc::ServerContext* sctx, const v1::HostSasRequest* req,
                                       v1::HostSasResponse* resp) {
  IPFLEET_AUTHORIZE(actor);
  (void)actor;
  absl::StatusOr<inventory::Host> h = ctx_.store->GetHost(req->host());
  if (absl::IsNotFound(h.status())) return HostNotFound(req->host());
  if (!h.ok()) return ToGrpc(h.status());
  absl::StatusOr<inventory::HealthRecord> r = ctx_.store->GetHealth(req->host());
  if (absl::IsNotFound(r.status())) return grpc::Status::OK;  // no report yet: empty
  if (!r.ok()) return ToGrpc(r.status());
  if (!resp->mutable_report()->ParseFromString(r->report)) {
    return grpc::Status(grpc::StatusCode::DATA_LOSS, "stored health report does not parse");
  }
  return grpc::Status::OK;
}

grpc::Status AdminServiceImpl::CreateDashboardToken(grpc::ServerContext* sctx,
                                                    const v1::CreateDashboardTokenRequest* req,
                                                    v1::CreateDashboardTokenResponse* resp) {
  IPFLEET_AUTHORIZE(actor);
  grpc::Status result;
  if (!ctx_.dashboard_tokens) {
    result = grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          "this controller serves no dashboard; start it with `ipfleet-controller serve --dashboard "
                          "127.0.0.1:8443`");
  } else {
    int64_t expires = 0;
    absl::StatusOr<std::string> token = ctx_.dashboard_tokens->Issue(ctx_.clock(), req->ttl_seconds(), &expires);
    if (token.ok()) {
      resp->set_token(*token);
      resp->set_expires_unix(expires);
      resp->set_login_url(absl::StrCat(ctx_.dashboard_url, "/login?token=", *token));
      spdlog::info("event=dashboard_token_issued actor={} expires={}", actor, expires);
    }
    result = ToGrpc(token.status());
  }
  Audit(actor, "dashboard.token", "", result);
  return result;
}

// --- forwarded to the fleet module (controller part 2) ------------------------------------------

// Rollouts run on the leading replica only (it drives them from its engine); another replica
// refuses those calls and names the leader, so the operator (or a retrying script) goes there.
grpc::Status AdminServiceImpl::RequireLeader(const char* what) const {
  if (ctx_.is_leader()) return grpc::Status::OK;
  return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                      absl::StrCat(what, " runs on the leading controller replica; this is replica ", ctx_.replica_id,
                                   ", the leader is ", ctx_.describe_leader(),
                                   ": run it there (ipfleet --controller ADDRESS) or retry in a few seconds"));
}

#define IPFLEET_FORWARD(Rpc, Req, Resp, audit_action, audit_when, leader_only)                \
  grpc::Status AdminServiceImpl::Rpc(grpc::ServerContext* sctx, const Req* req, Resp* resp) { \
    IPFLEET_AUTHORIZE(actor);                                                                \
    grpc::Status st = (leader_only) ? RequireLeader(#Rpc) : grpc::Status::OK;                \
    if (st.ok()) st = fleet().Rpc(sctx, *req, resp);                                         \
    if ((audit_when) && st.error_code() != grpc::StatusCode::UNIMPLEMENTED) {                \
      Audit(actor, audit_action, "", st);                                                   \
    }                                                                                        \
    return st;                                                                               \
  }

IPFLEET_FORWARD(ListTunnels, v1::ListTunnelsRequest, v1::ListTunnelsResponse, "", false, false)
IPFLEET_FORWARD(ListExternalPeers, v1::ListExternalPeersRequest, v1::ListExternalPeersResponse, "", false, false)
IPFLEET_FORWARD(Apply, v1::ApplyRequest, v1::ApplyResponse, "apply", !req->dry_run(), false)
IPFLEET_FORWARD(StartRollout, v1::StartRolloutRequest, v1::RolloutStatus, "rollout.start", true, true)
IPFLEET_FORWARD(GetRollout, v1::GetRolloutRequest, v1::RolloutStatus, "", false, false)
IPFLEET_FORWARD(AbortRollout, v1::AbortRolloutRequest, v1::RolloutStatus, "rollout.abort", true, true)
IPFLEET_FORWARD(Rollback, v1::RollbackRequest, v1::RolloutStatus, "rollout.rollback", true, true)
IPFLEET_FORWARD(SendCommand, v1::SendCommandRequest, v1::CommandStatus, "command.send", true, false)
IPFLEET_FORWARD(GetCommand, v1::GetCommandRequest, v1::CommandStatus, "", false, false)

}  // namespace ipfleet::controller
