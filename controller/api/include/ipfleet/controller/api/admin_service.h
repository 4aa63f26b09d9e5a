// AdminService: the operator's API (unix socket, or TCP with an admin client certificate).
// Hosts, enrollment tokens, certificates and status are implemented here; fleet file, rollouts,
// commands and tunnel listings are forwarded to the FleetModule (controller part 2).
// Every mutating call leaves an audit row.
#pragma once

#include <memory>

#include "ipfleet/controller/api/context.h"
#include "ipfleet/controller/api/fleet_module.h"
#include "ipfleet/v1/admin_service.grpc.pb.h"

namespace ipfleet::controller {

class AdminServiceImpl final : public v1::AdminService::Service {
 public:
  // `fleet` may be null: those RPCs then answer UNIMPLEMENTED.
  AdminServiceImpl(ControllerContext& ctx, FleetModule* fleet);

  grpc::Status AddHost(grpc::ServerContext*, const v1::AddHostRequest*, v1::AddHostResponse*) override;
  grpc::Status ListHosts(grpc::ServerContext*, const v1::ListHostsRequest*, v1::ListHostsResponse*) override;
  grpc::Status GetHost(grpc::ServerContext*, const v1::GetHostRequest*, v1::HostInfo*) override;
  grpc::Status RemoveHost(grpc::ServerContext*, const v1::RemoveHostRequest*, v1::RemoveHostResponse*) override;
  grpc::Status NewEnrollmentToken(grpc::ServerContext*, const v1::NewEnrollmentTokenRequest*,
                                  v1::AddHostResponse*) override;
  grpc::Status ListTunnels(grpc::ServerContext*, const v1::ListTunnelsRequest*, v1::ListTunnelsResponse*) override;
  grpc::Status ListExternalPeers(grpc::ServerContext*, const v1::ListExternalPeersRequest*,
                                 v1::ListExternalPeersResponse*) override;
  grpc::Status Apply(grpc::ServerContext*, const v1::ApplyRequest*, v1::ApplyResponse*) override;
  grpc::Status StartRollout(grpc::ServerContext*, const v1::StartRolloutRequest*, v1::RolloutStatus*) override;
  grpc::Status GetRollout(grpc::ServerContext*, const v1::GetRolloutRequest*, v1::RolloutStatus*) override;
  grpc::Status AbortRollout(grpc::ServerContext*, const v1::AbortRolloutRequest*, v1::RolloutStatus*) override;
  grpc::Status Rollback(grpc::ServerContext*, const v1::RollbackRequest*, v1::RolloutStatus*) override;
  grpc::Status ListCertificates(grpc::ServerContext*, const v1::ListCertificatesRequest*,
                                v1::ListCertificatesResponse*) override;
  grpc::Status IssueCertificate(grpc::ServerContext*, const v1::IssueCertificateRequest*,
                                v1::IssueCertificateResponse*) override;
  grpc::Status RevokeCertificate(grpc::ServerContext*, const v1::RevokeCertificateRequest*,
                                 v1::RevokeCertificateResponse*) override;
  grpc::Status SendCommand(grpc::ServerContext*, const v1::SendCommandRequest*, v1::CommandStatus*) override;
  grpc::Status GetCommand(grpc::ServerContext*, const v1::GetCommandRequest*, v1::CommandStatus*) override;
  grpc::Status FleetStatus(grpc::ServerContext*, const v1::FleetStatusRequest*, v1::FleetStatusResponse*) override;
  grpc::Status HostSas(grpc::ServerContext*, const v1::HostSasRequest*, v1::HostSasResponse*) override;
  grpc::Status CreateDashboardToken(grpc::ServerContext*, const v1::CreateDashboardTokenRequest*,
                                    v1::CreateDashboardTokenResponse*) override;

 private:
  // Who is calling; on TCP the admin client certificate is verified (kind "admin").
  absl::StatusOr<std::string> Authorize(grpc::ServerContext* sctx);
  void Audit(const std::string& actor, const std::string& action, const std::string& target,
             const grpc::Status& result);
  FleetModule& fleet() { return fleet_ ? *fleet_ : missing_; }
  grpc::Status RequireLeader(const char* what) const;

  ControllerContext& ctx_;
  FleetModule* fleet_;
  FleetModule missing_;  // answers UNIMPLEMENTED
};

}  // namespace ipfleet::controller
