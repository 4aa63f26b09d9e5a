#include "session_writer.h"

#include <spdlog/spdlog.h>

namespace ipfleet::controller {

SessionWriter::SessionWriter(inventory::Store& store, size_t max_batch, std::chrono::milliseconds linger)
    : store_(store), max_batch_(max_batch), linger_(linger), thread_([this] { Loop(); }) {}

SessionWriter::~SessionWriter() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void SessionWriter::Submit(Item item) {
  {
    std::lock_guard lock(mu_);
    queue_.push_back(std::move(item));
  }
  cv_.notify_one();
}

uint64_t SessionWriter::batches() const {
  std::lock_guard lock(mu_);
  return batches_;
}

void SessionWriter::Loop() {
  std::vector<Item> batch;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stop_ and drained
      if (linger_.count() > 0) cv_.wait_for(lock, linger_, [&] { return stop_ || queue_.size() >= max_batch_; });
      while (!queue_.empty() && batch.size() < max_batch_) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    RunBatch(batch);
    batch.clear();
  }
}

void SessionWriter::RunBatch(std::vector<Item>& batch) {
  bool any_write = false;
  for (const Item& item : batch) any_write = any_write || static_cast<bool>(item.write);
  if (!any_write) {
    for (Item& item : batch) {
      if (item.done) item.done(absl::OkStatus());
    }
    return;
  }
  // All writes in one transaction. If any fails (a host removed meanwhile), the transaction rolls
  // back and each write runs again in its own, so one bad message cannot cost the others theirs.
  absl::Status st = store_.Transact([&](inventory::Tx& tx) -> absl::Status {
    for (Item& item : batch) {
      if (item.write) IPFLEET_RETURN_IF_ERROR(item.write(tx));
    }
    return absl::OkStatus();
  });
  std::vector<absl::Status> results(batch.size(), st);
  if (!st.ok() && batch.size() > 1) {
    for (size_t i = 0; i < batch.size(); ++i) {
      results[i] = batch[i].write ? store_.Transact(batch[i].write) : absl::OkStatus();
    }
  }
  {
    std::lock_guard lock(mu_);
    ++batches_;
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    if (batch[i].done) batch[i].done(results[i]);
  }
}

}  // namespace ipfleet::controller
