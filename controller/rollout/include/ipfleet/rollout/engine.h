// The rollout engine: sends a generation's signed bundles in waves (a canary share first), waits for
// every host of a wave to acknowledge its version and report its tunnels up, halts on a refusal or
// a timeout, and keeps every step in the inventory so a controller killed at any point resumes the
// same rollout (same versions, same bytes) on restart.
//
// Threading: session handlers (gRPC threads) only record events and wake the engine thread; the
// engine thread does the store writes (batched per tick, so 10,000 acks are a handful of
// transactions) and the pushes.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "ipfleet/common/status.h"
#include "ipfleet/controller/api/context.h"
#include "ipfleet/controller/inventory/types.h"
#include "ipfleet/rollout/bundles.h"
#include "ipfleet/v1/agent_service.pb.h"

namespace ipfleet::rollout {

struct StartParams {
  uint32_t canary_percent = 0;
  uint32_t wave_size = 0;
  uint32_t wave_timeout_seconds = 0;  // 0: the default
};

struct EngineOptions {
  uint32_t default_wave_timeout_seconds = 120;
  int tick_ms = 50;  // how often the engine thread looks at timeouts when nothing happens
  // A wave starts in chunks of this many hosts: versions, signatures, store and pushes per chunk,
  // the next chunk once the sessions have written all but one chunk's worth of messages. Bounds
  // the memory of a large wave (10,000 hosts in one go held ~160 MiB of bundles in flight).
  size_t wave_chunk = 500;
  // How long a chunk waits for that at most (a peer that stops reading must not stall the wave).
  int chunk_drain_timeout_ms = 5000;
};

// Splits hosts (already sorted) into waves: ceil(canary%) hosts first (at least one when the
// percentage is not 0), then chunks of wave_size (0: everything left at once).
std::vector<std::vector<std::string>> PlanWaves(const std::vector<std::string>& hosts, uint32_t canary_percent,
                                                uint32_t wave_size);

class Engine {
 public:
  Engine(controller::ControllerContext& ctx, BundleFactory& bundles, EngineOptions options = {});
  ~Engine();

  // Loads applied versions and health, resumes a running rollout, starts the engine thread.
  absl::Status Start();
  void Stop();

  // A new rollout of the current generation. FailedPrecondition while another one runs.
  absl::StatusOr<inventory::Rollout> StartRollout(const StartParams& params);
  // A new generation with the content of `generation` (0: the one before the current), then a
  // rollout of it with the parameters of the last rollout.
  absl::StatusOr<inventory::Rollout> Rollback(uint64_t generation);
  absl::StatusOr<inventory::Rollout> Abort(uint64_t id);
  absl::StatusOr<inventory::Rollout> Get(uint64_t id);  // 0: latest

  // Session events (registered with the SessionRegistry by the module).
  void OnHello(const std::string& host, const v1::Hello& hello);
  void OnAck(const std::string& host, const v1::BundleAck& ack);
  void OnHealth(const std::string& host, const v1::HealthReport& report);
  // The leader (another replica) stored bundles for hosts whose sessions are here: send each the
  // newest stored bundle it has not acknowledged (read in one query for all of them).
  void SendStoredBundles(const std::vector<std::string>& hosts);

 private:
  struct HostRun {
    uint32_t wave = 0;
    uint64_t version = 0;
    inventory::HostRolloutState state = inventory::HostRolloutState::kPending;
    std::string error;
    int64_t updated_unix = 0;
    bool dirty = false;
  };
  struct Run {
    inventory::Rollout meta;  // hosts kept in `hosts` below
    std::map<std::string, HostRun> hosts;
    std::vector<std::vector<std::string>> waves;
    std::shared_ptr<const policy::CompiledGeneration> compiled;
    int64_t wave_started = 0;
    bool wave_starting = false;       // chunks of the current wave are still being sent
    bool meta_dirty = false;
    bool full_scan = true;            // look at every host of the current wave in the next pass
    size_t waiting = 0;               // hosts of the current wave still kSent (valid after a full scan)
    std::vector<std::string> dirty;   // hosts with unsaved state changes
  };
  struct HealthView {
    uint64_t bundle_version = 0;
    // Sorted tunnel names: one allocation per host, where a std::set took one per tunnel
    // (10,000 hosts x 9 tunnels: ~7 MiB against ~3 MiB).
    std::vector<std::string> up;
  };
  static HealthView ViewOf(const v1::HealthReport& report);

  void Loop();
  // Pushes the host's newest stored bundle on its session here when it is newer than `have`.
  void SendNewestBundle(const std::string& host, uint64_t have, const char* why);
  // Sends `stored` unless the host has acknowledged that version (or a newer one) already.
  void PushBundle(inventory::BundleRecord stored, uint64_t have, const char* why);
  // With mu_ held: evaluates the current wave, advances or halts. Returns pushes to do unlocked.
  void Step(std::vector<std::pair<std::string, v1::ControllerMessage>>* pushes);
  // Signs, stores and queues the next chunk of the current wave's pending hosts.
  absl::Status StartWave(std::vector<std::pair<std::string, v1::ControllerMessage>>* pushes);
  // With mu_ held (released while waiting): until the sessions' outbound queues are down to one
  // chunk, the timeout passes, or Stop.
  void AwaitOutboundDrain(std::unique_lock<std::mutex>& lock);
  bool HostDone(const std::string& host, const HostRun& h) const;
  absl::StatusOr<std::vector<v1::SignedBundle>> SignAll(const std::vector<std::string>& hosts,
                                                        const std::vector<uint64_t>& versions);
  void MarkDirty(const std::string& name, HostRun& h);
  absl::Status Persist();
  void Finish(inventory::RolloutState state, const std::string& error);
  absl::StatusOr<inventory::Rollout> Begin(uint64_t generation, const StartParams& params);
  inventory::Rollout Snapshot() const;
  int64_t Now() const { return ctx_.clock(); }

  controller::ControllerContext& ctx_;
  BundleFactory& bundles_;
  EngineOptions options_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool wake_ = false;
  std::unique_ptr<Run> run_;  // the running rollout, if any
  std::map<std::string, uint64_t> applied_;                        // acknowledged bundle version per host
  std::map<std::string, std::pair<uint64_t, std::string>> refused_;  // version, error
  std::map<std::string, HealthView> health_;
  std::set<std::string> touched_;  // hosts that reported something since the last pass
  std::thread thread_;
};

}  // namespace ipfleet::rollout
