// Group commit for what agents report on their sessions (health reports, bundle acks).
//
// Before: one SQLite transaction per message, run on the gRPC callback thread that received it,
// all of them queueing on the store's single connection; a 10,000-host rollout meant 20,000
// transactions in a few seconds with network threads blocked behind each other. Now the session
// handler hands the write to one writer thread, which commits everything that queued up meanwhile
// in one transaction and only then runs each message's continuation (dispatch to the rollout
// engine / command queue), in arrival order. So "handlers run after the message is recorded"
// still holds, and a message's effect is never visible before its write is durable (with
// synchronous=FULL the whole batch shares one fsync).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ipfleet/common/status.h"
#include "ipfleet/controller/inventory/store.h"

namespace ipfleet::controller {

class SessionWriter {
 public:
  // The store write of one message (runs inside the batch transaction) and what to do once the
  // batch committed (or with the error if this message's write failed).
  struct Item {
    std::function<absl::Status(inventory::Tx&)> write;
    std::function<void(const absl::Status&)> done;
  };

  // `linger`: how long the writer waits for more messages before committing a batch. Zero for an
  // embedded inventory, where a commit is cheap; a few milliseconds for a shared one, where each
  // transaction costs round trips and the write lock all replicas share.
  explicit SessionWriter(inventory::Store& store, size_t max_batch = 4096,
                         std::chrono::milliseconds linger = std::chrono::milliseconds(0));
  ~SessionWriter();  // drains the queue, then stops

  void Submit(Item item);

  uint64_t batches() const;  // transactions committed (for tests and benchmarks)

 private:
  void Loop();
  void RunBatch(std::vector<Item>& batch);

  inventory::Store& store_;
  const size_t max_batch_;
  const std::chrono::milliseconds linger_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> queue_;
  bool stop_ = false;
  uint64_t batches_ = 0;
  std::thread thread_;
};

}  // namespace ipfleet::controller
