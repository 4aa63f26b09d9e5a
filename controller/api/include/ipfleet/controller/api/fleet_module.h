// The seam for controller part 2 (fleet file, policy compiler, rollout, commands).
//
// The AdminService forwards these RPCs to the FleetModule the daemon was given; each default
// answers UNIMPLEMENTED, so a module implements what it has. The module gets the shared
// ControllerContext (store, CA/CRL, session registry) and typically registers session handlers
// (OnHello to send the current bundle and pending commands, OnBundleAck, OnHealth,
// OnCommandResult) in its factory. The AdminService writes an audit row for every mutating call
// it forwards (Apply unless dry run, StartRollout, AbortRollout, Rollback, SendCommand).
#pragma once

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>

#include "ipfleet/common/status.h"
#include "ipfleet/controller/api/context.h"
#include "ipfleet/v1/admin_service.pb.h"

namespace ipfleet::controller {

class FleetModule {
 public:
  virtual ~FleetModule() = default;

  virtual grpc::Status Apply(grpc::ServerContext*, const v1::ApplyRequest&, v1::ApplyResponse*) {
    return Missing("Apply");
  }
  virtual grpc::Status StartRollout(grpc::ServerContext*, const v1::StartRolloutRequest&, v1::RolloutStatus*) {
    return Missing("StartRollout");
  }
  virtual grpc::Status GetRollout(grpc::ServerContext*, const v1::GetRolloutRequest&, v1::RolloutStatus*) {
    return Missing("GetRollout");
  }
  virtual grpc::Status AbortRollout(grpc::ServerContext*, const v1::AbortRolloutRequest&, v1::RolloutStatus*) {
    return Missing("AbortRollout");
  }
  virtual grpc::Status Rollback(grpc::ServerContext*, const v1::RollbackRequest&, v1::RolloutStatus*) {
    return Missing("Rollback");
  }
  virtual grpc::Status SendCommand(grpc::ServerContext*, const v1::SendCommandRequest&, v1::CommandStatus*) {
    return Missing("SendCommand");
  }
  virtual grpc::Status GetCommand(grpc::ServerContext*, const v1::GetCommandRequest&, v1::CommandStatus*) {
    return Missing("GetCommand");
  }
  virtual grpc::Status ListTunnels(grpc::ServerContext*, const v1::ListTunnelsRequest&, v1::ListTunnelsResponse*) {
    return Missing("ListTunnels");
  }
  virtual grpc::Status ListExternalPeers(grpc::ServerContext*, const v1::ListExternalPeersRequest&,
                                         v1::ListExternalPeersResponse*) {
    return Missing("ListExternalPeers");
  }

  // Start: this replica leads (resume a running rollout from the inventory, drive rollouts).
  // Stop: it no longer leads, or shuts down (stop timers/threads; sessions are still open).
  // A replica may lead, lose leadership and lead again: Start follows Stop.
  virtual void Start() {}
  virtual void Stop() {}

  // On every replica, leader or not: the leader stored a bundle, or a replica queued a command,
  // for a host whose session this replica holds; send it what the inventory has for it.
  virtual void SendStoredBundles(const std::vector<std::string>&) {}
  virtual void SendQueuedCommands(const std::string&) {}

  static grpc::Status Missing(const char* rpc) {
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                        std::string(rpc) + " is not available in this controller build "
                        "(fleet/rollout module missing); upgrade ipfleet-controller");
  }
};

// Builds the module once the context is ready; an error stops the daemon from starting.
using FleetModuleFactory =
    std::function<absl::StatusOr<std::unique_ptr<FleetModule>>(ControllerContext& context)>;

}  // namespace ipfleet::controller
