// absl::Status <-> grpc::Status at the service edge.
#pragma once

#include <grpcpp/support/status.h>

#include "ipfleet/common/status.h"

namespace ipfleet::controller {

inline grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(static_cast<int>(s.code())), std::string(s.message()));
}

}  // namespace ipfleet::controller
