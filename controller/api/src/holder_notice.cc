#include "ipfleet/controller/api/holder_notice.h"

#include "ipfleet/controller/api/session_registry.h"

namespace ipfleet::controller {

absl::Status NoticeToHolder(const ControllerContext& ctx, inventory::Tx& tx, const std::string& host, const char* kind,
                            std::string payload) {
  if (!ctx.store->Shared() || ctx.sessions->IsConnected(host)) return absl::OkStatus();  // pushed from here
  return tx.AppendBus({0, ctx.clock(), ctx.replica_id, host, kind, std::move(payload)});
}

}  // namespace ipfleet::controller
