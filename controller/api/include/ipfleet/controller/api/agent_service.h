// AgentService (callback API, so thousands of idle sessions cost no threads).
//   Enroll:  server-auth TLS + single-use token; see enrollment.h.
//   Session: mutual TLS with the host certificate; the first message must be Hello naming the
//            certificate's host; then health, bundle acks, renewal CSRs and command results flow
//            in, and the SessionRegistry pushes ControllerMessages out.
#pragma once

#include <memory>

#include "ipfleet/controller/api/context.h"
#include "ipfleet/v1/agent_service.grpc.pb.h"

namespace ipfleet::controller {

class SessionWriter;

// Health reports and bundle acks are written by one writer thread in batched transactions
// (session_writer.h); the registry's handlers for them run after their batch committed.
class AgentServiceImpl final : public v1::AgentService::CallbackService {
 public:
  explicit AgentServiceImpl(ControllerContext& ctx);
  ~AgentServiceImpl() override;  // drains pending session writes

  grpc::ServerUnaryReactor* Enroll(grpc::CallbackServerContext* context, const v1::EnrollRequest* request,
                                   v1::EnrollResponse* response) override;
  grpc::ServerBidiReactor<v1::AgentMessage, v1::ControllerMessage>* Session(
      grpc::CallbackServerContext* context) override;

 private:
  ControllerContext& ctx_;
  std::unique_ptr<SessionWriter> writer_;
};

}  // namespace ipfleet::controller
