#include "sql_store.h"

#include <spdlog/spdlog.h>

namespace ipfleet::inventory {

absl::Status SqlStore::Transact(absl::FunctionRef<absl::Status(Tx&)> fn) {
  TransactionTimer timer(on_transaction_);
  std::lock_guard<std::mutex> lock(writes_.mu);
  IPFLEET_RETURN_IF_ERROR(writes_.conn->EnsureConnected());
  IPFLEET_RETURN_IF_ERROR(Begin());
  absl::Status st = fn(*writes_.ops);
  if (st.ok()) {
    st = Commit();
    if (st.ok()) {
      timer.committed();
      return st;
    }
  }
  absl::Status rb = Rollback();
  if (!rb.ok()) spdlog::error("event=inventory_rollback_failed error=\"{}\"", std::string(rb.message()));
  return st;
}

absl::Status SqlStore::Ping() {
  std::lock_guard<std::mutex> lock(writes_.mu);
  IPFLEET_RETURN_IF_ERROR(writes_.conn->EnsureConnected());
  IPFLEET_ASSIGN_OR_RETURN(auto s, writes_.conn->Prepare("SELECT 1"));
  return s->Run();
}

}  // namespace ipfleet::inventory
