// Who is calling: checks a gRPC call's TLS client certificate against the fleet CA, the current
// CRL and the inventory (every certificate the controller accepts must be one it issued).
#pragma once

#include <grpcpp/grpcpp.h>

#include <string>

#include "ipfleet/common/status.h"
#include "ipfleet/controller/api/pki.h"
#include "ipfleet/controller/inventory/store.h"

namespace ipfleet::controller {

struct PeerIdentity {
  std::string common_name;
  std::string serial;
  std::string pem;
};

// True when the call came over TLS (as opposed to the unix admin socket).
bool IsTls(const grpc::ServerContextBase& ctx);

// The peer certificate must be present, chain to the CA, be within validity with EKU clientAuth,
// not be revoked (CRL and inventory), and be recorded in the inventory with `kind` ("host",
// "admin"). Errors are Unauthenticated / PermissionDenied with a message saying what to do.
absl::StatusOr<PeerIdentity> VerifyPeer(const grpc::ServerContextBase& ctx, Pki& pki,
                                        inventory::Store& store, const std::string& kind);

// The same checks on a certificate presented some other way (the dashboard's TLS handshake).
absl::StatusOr<PeerIdentity> VerifyClientCertificate(std::string pem, Pki& pki, inventory::Store& store,
                                                     const std::string& kind);

}  // namespace ipfleet::controller
