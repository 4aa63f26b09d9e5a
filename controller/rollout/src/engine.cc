#include "ipfleet/rollout/engine.h"

#include <algorithm>

#include <spdlog/spdlog.h>

#include <absl/strings/str_cat.h>
#include <absl/strings/str_join.h>

#include "ipfleet/controller/api/pki.h"
#include "ipfleet/controller/api/holder_notice.h"
#include "ipfleet/controller/api/session_registry.h"
#include "ipfleet/controller/inventory/store.h"
#include "ipfleet/rollout/desired.h"

namespace ipfleet::rollout {

using inventory::HostRolloutState;
using inventory::RolloutState;

std::vector<std::vector<std::string>> PlanWaves(const std::vector<std::string>& hosts, uint32_t canary_percent,
                                                uint32_t wave_size) {
  std::vector<std::vector<std::string>> waves;
  size_t next = 0;
  if (canary_percent > 0 && !hosts.empty()) {
    size_t canary = (hosts.size() * std::min<uint32_t>(canary_percent, 100) + 99) / 100;
    canary = std::clamp<size_t>(canary, 1, hosts.size());
    waves.emplace_back(hosts.begin(), hosts.begin() + canary);
    next = canary;
  }
  while (next < hosts.size()) {
    size_t n = wave_size == 0 ? hosts.size() - next : std::min<size_t>(wave_size, hosts.size() - next);
    waves.emplace_back(hosts.begin() + next, hosts.begin() + next + n);
    next += n;
  }
  return waves;
}

Engine::Engine(controller::ControllerContext& ctx, BundleFactory& bundles, EngineOptions options)
    : ctx_(ctx), bundles_(bundles), options_(options) {}

Engine::~Engine() { Stop(); }

absl::Status Engine::Start() {
  IPFLEET_ASSIGN_OR_RETURN(std::vector<inventory::Host> hosts, ctx_.store->ListHosts());
  IPFLEET_ASSIGN_OR_RETURN(std::vector<inventory::HealthRecord> health, ctx_.store->ListHealth());
  {
    std::lock_guard lock(mu_);
    // A replica that leads again forgets the rollout it drove before: another leader may have
    // moved it on or finished it meanwhile, and the inventory says where it stands.
    run_.reset();
    // Agents may already have said hello to this process (the agent port opens first): what they
    // said is newer than the inventory, so the inventory only fills in the others.
    for (const auto& h : hosts) applied_.emplace(h.name, h.applied_bundle_version);
    for (const auto& rec : health) {
      if (health_.count(rec.host)) continue;
      v1::HealthReport r;
      if (!r.ParseFromString(rec.report)) continue;
      health_[rec.host] = ViewOf(r);
    }
    absl::StatusOr<inventory::Rollout> latest = ctx_.store->LatestRollout();
    if (latest.ok() && latest->state == RolloutState::kRunning) {
      auto run = std::make_unique<Run>();
      run->meta = *latest;
      IPFLEET_ASSIGN_OR_RETURN(run->compiled, bundles_.Compiled(latest->generation));
      run->waves.resize(latest->waves);
      int64_t started = 0;
      for (const inventory::RolloutHost& h : latest->hosts) {
        run->hosts[h.host] = HostRun{h.wave, h.version, h.state, h.error, h.updated_unix, false};
        if (h.wave < run->waves.size()) run->waves[h.wave].push_back(h.host);
        if (h.wave == latest->current_wave && h.state == HostRolloutState::kSent) {
          started = started == 0 ? h.updated_unix : std::min(started, h.updated_unix);
        }
      }
      // Nothing is re-sent from here. Pushes of the old process may have been lost with it, but
      // every session of this process begins with a hello, and OnHello sends the host the newest
      // stored bundle it lacks: the wave's bundles go out one by one as agents reconnect, instead
      // of all being loaded from the inventory at once.
      for (auto& w : run->waves) std::sort(w.begin(), w.end());
      run->wave_started = started == 0 ? Now() : started;
      spdlog::info("event=rollout_resumed id={} generation={} wave={}/{}", run->meta.id, run->meta.generation,
                   run->meta.current_wave + 1, run->meta.waves);
      run_ = std::move(run);
      wake_ = true;
    }
    stop_ = false;
  }
  thread_ = std::thread([this] { Loop(); });
  return absl::OkStatus();
}

void Engine::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Engine::Loop() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, std::chrono::milliseconds(options_.tick_ms), [&] { return stop_ || wake_; });
    if (stop_) break;
    wake_ = false;
    std::vector<std::pair<std::string, v1::ControllerMessage>> pushes;
    Step(&pushes);
    if (pushes.empty()) continue;
    lock.unlock();
    for (auto& [host, msg] : pushes) ctx_.sessions->Push(host, std::move(msg));
    pushes.clear();
    pushes.shrink_to_fit();
    lock.lock();
    if (run_ && run_->wave_starting) {
      AwaitOutboundDrain(lock);
      wake_ = true;  // the next chunk right away
    }
  }
}

void Engine::AwaitOutboundDrain(std::unique_lock<std::mutex>& lock) {
  const auto limit = static_cast<int64_t>(options_.wave_chunk);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.chunk_drain_timeout_ms);
  // Writes complete on gRPC threads, which do not signal this engine: look every 2 ms (a chunk
  // of 500 bundles takes tens of milliseconds to go out on loopback).
  while (!stop_ && ctx_.sessions->OutboundQueued() > limit && std::chrono::steady_clock::now() < deadline) {
    cv_.wait_for(lock, std::chrono::milliseconds(2), [&] { return stop_; });
  }
}

bool Engine::HostDone(const std::string& host, const HostRun& h) const {
  auto applied = applied_.find(host);
  if (applied == applied_.end() || applied->second < h.version) return false;
  auto bundle = run_->compiled->hosts.find(host);
  if (bundle == run_->compiled->hosts.end() || bundle->second.tunnels.empty()) return true;
  auto health = health_.find(host);
  if (health == health_.end() || health->second.bundle_version < h.version) return false;
  for (const policy::CompiledGeneration::Tunnel& t : bundle->second.tunnels) {
    if (std::binary_search(health->second.up.begin(), health->second.up.end(), t.name)) continue;
    // A tunnel can only come up once its peer has the new bundle too: a peer in a later wave
    // (or still applying) does not hold this host back.
    const std::string& peer = t.peer_host;
    if (!peer.empty()) {
      auto p = run_->hosts.find(peer);
      if (p == run_->hosts.end()) continue;  // peer not in this rollout (removed since)
      auto pa = applied_.find(peer);
      if (p->second.state == HostRolloutState::kPending || pa == applied_.end() || pa->second < p->second.version) continue;
    }
    return false;
  }
  return true;
}

void Engine::MarkDirty(const std::string& name, HostRun& h) {
  if (!h.dirty) run_->dirty.push_back(name);
  h.dirty = true;
}

// Incremental: a pass looks only at the hosts that reported something since the last pass
// (`touched_`), plus every host of the wave once when the wave starts or the rollout resumes. A
// host's verdict depends on its own ack/health and on whether its peers have applied; a peer
// applying can only make a host's condition stricter, never fulfil it, so untouched hosts need no
// second look. With 10,000 hosts a full pass per ack had the engine thread walking every host
// map under the engine lock thousands of times per rollout.
void Engine::Step(std::vector<std::pair<std::string, v1::ControllerMessage>>* pushes) {
  if (!run_ || run_->meta.state != RolloutState::kRunning) {
    touched_.clear();
    return;
  }
  for (;;) {
    const std::vector<std::string>& wave = run_->waves[run_->meta.current_wave];
    std::vector<std::string> check;
    std::vector<std::string> failed;
    if (run_->full_scan) {
      bool pending = false;
      for (const auto& h : wave) pending = pending || run_->hosts[h].state == HostRolloutState::kPending;
      if (pending) {
        if (absl::Status st = StartWave(pushes); !st.ok()) {
          Finish(RolloutState::kHalted, absl::StrCat("wave ", run_->meta.current_wave + 1, " could not start: ", st.message()));
        }
        break;  // full_scan stays set: the next pass counts and checks every host of the wave
      }
      run_->full_scan = false;
      run_->waiting = 0;
      for (const auto& name : wave) {
        HostRolloutState st = run_->hosts[name].state;
        if (st == HostRolloutState::kSent) {
          ++run_->waiting;
          check.push_back(name);
        } else if (st == HostRolloutState::kFailed) {
          failed.push_back(name);
        }
      }
    } else {
      for (const auto& name : touched_) {
        auto it = run_->hosts.find(name);
        if (it != run_->hosts.end() && it->second.wave == run_->meta.current_wave &&
            it->second.state == HostRolloutState::kSent) {
          check.push_back(name);
        }
      }
    }
    touched_.clear();
    for (const auto& name : check) {
      HostRun& h = run_->hosts[name];
      auto r = refused_.find(name);
      auto applied = applied_.find(name);
      bool already = applied != applied_.end() && applied->second >= h.version;
      if (r != refused_.end() && r->second.first == h.version && !already) {
        h.state = HostRolloutState::kFailed;
        h.error = absl::StrCat("bundle v", h.version, " refused: ", r->second.second);
        h.updated_unix = Now();
        MarkDirty(name, h);
        --run_->waiting;
        failed.push_back(name);
      } else if (HostDone(name, h)) {
        h.state = HostRolloutState::kDone;
        h.updated_unix = Now();
        MarkDirty(name, h);
        --run_->waiting;
      }
    }
    if (!failed.empty()) {
      Finish(RolloutState::kHalted, absl::StrCat("halted in wave ", run_->meta.current_wave + 1, ": ", failed.front(),
                                                 ": ", run_->hosts[failed.front()].error));
      break;
    }
    if (run_->waiting == 0) {
      if (run_->meta.current_wave + 1 >= run_->waves.size()) {
        Finish(RolloutState::kSucceeded, "");
        break;
      }
      ++run_->meta.current_wave;
      run_->meta_dirty = true;
      run_->full_scan = true;
      continue;  // start the next wave right away
    }
    uint32_t timeout = run_->meta.wave_timeout_seconds ? run_->meta.wave_timeout_seconds
                                                       : options_.default_wave_timeout_seconds;
    if (Now() >= run_->wave_started + timeout) {
      std::vector<std::string> waiting;
      for (const auto& name : wave) {
        if (run_->hosts[name].state == HostRolloutState::kSent) waiting.push_back(name);
      }
      for (const auto& name : waiting) {
        HostRun& h = run_->hosts[name];
        h.state = HostRolloutState::kTimedOut;
        auto applied = applied_.find(name);
        h.error = (applied == applied_.end() || applied->second < h.version)
                      ? absl::StrCat("no acknowledgement of v", h.version, " within ", timeout, "s",
                                     ctx_.sessions->IsConnected(name) ? "" : " (not connected)")
                      : absl::StrCat("v", h.version, " applied but tunnels not reported up within ", timeout, "s");
        h.updated_unix = Now();
        MarkDirty(name, h);
      }
      run_->waiting = 0;
      std::vector<std::string> first(waiting.begin(), waiting.begin() + std::min<size_t>(waiting.size(), 5));
      Finish(RolloutState::kHalted, absl::StrCat("wave ", run_->meta.current_wave + 1, " timed out after ", timeout,
                                                 "s: ", waiting.size(), " host(s) not done (", absl::StrJoin(first, ", "),
                                                 waiting.size() > 5 ? ", ..." : "", "): ",
                                                 waiting.empty() ? "" : run_->hosts[waiting.front()].error));
    }
    break;
  }
  if (absl::Status st = Persist(); !st.ok()) {
    spdlog::error("event=rollout_persist_failed id={} error=\"{}\"", run_->meta.id, std::string(st.message()));
  }
}

absl::Status Engine::StartWave(std::vector<std::pair<std::string, v1::ControllerMessage>>* pushes) {
  const uint32_t wave_no = run_->meta.current_wave;
  const std::vector<std::string>& wave = run_->waves[wave_no];
  const size_t chunk = std::max<size_t>(options_.wave_chunk, 1);  // 0 would never send anything
  std::vector<std::string> chunk_hosts;  // this chunk: the first `chunk` hosts still pending
  size_t pending = 0;             // all hosts of the wave still pending, this chunk included
  for (const auto& h : wave) {
    if (run_->hosts[h].state != HostRolloutState::kPending) continue;
    ++pending;
    if (chunk_hosts.size() < chunk) chunk_hosts.push_back(h);
  }
  const int64_t now = Now();
  if (!run_->wave_starting) {
    run_->wave_starting = true;
    run_->wave_started = now;  // the wave timeout counts from its first chunk
    spdlog::info("event=rollout_wave_started id={} generation={} wave={}/{} hosts={}", run_->meta.id,
                 run_->meta.generation, wave_no + 1, run_->meta.waves, pending);
  }
  std::vector<uint64_t> versions;
  IPFLEET_RETURN_IF_ERROR(ctx_.store->Transact([&](inventory::Tx& tx) -> absl::Status {
    IPFLEET_ASSIGN_OR_RETURN(versions, tx.NextBundleVersions(chunk_hosts));
    return absl::OkStatus();
  }));
  // Signed at wave start, not at rollout start: a host in a later wave keeps its current bundle
  // (also on reconnect) until its wave comes, and later waves carry the newest CRL.
  IPFLEET_ASSIGN_OR_RETURN(std::vector<v1::SignedBundle> signed_bundles, SignAll(chunk_hosts, versions));
  std::vector<inventory::BundleRecord> records;
  records.reserve(chunk_hosts.size());
  for (size_t i = 0; i < chunk_hosts.size(); ++i) {
    records.push_back({chunk_hosts[i], versions[i], run_->meta.generation, now, signed_bundles[i].SerializeAsString()});
  }
  std::vector<inventory::RolloutHost> sent;
  sent.reserve(records.size());
  for (const auto& rec : records) sent.push_back({rec.host, wave_no, rec.version, HostRolloutState::kSent, "", now});
  IPFLEET_RETURN_IF_ERROR(ctx_.store->Transact([&](inventory::Tx& tx) -> absl::Status {
    for (const auto& rec : records) {
      IPFLEET_RETURN_IF_ERROR(tx.PutBundle(rec));
      IPFLEET_RETURN_IF_ERROR(tx.SetDesiredBundleVersion(rec.host, rec.version));
      IPFLEET_RETURN_IF_ERROR(controller::NoticeToHolder(ctx_, tx, rec.host, inventory::bus_kind::kBundle));
    }
    IPFLEET_RETURN_IF_ERROR(tx.PutRolloutHosts(run_->meta.id, sent));
    return tx.UpdateRollout(run_->meta);
  }));
  records.clear();
  records.shrink_to_fit();
  pushes->reserve(pushes->size() + chunk_hosts.size());
  for (size_t i = 0; i < chunk_hosts.size(); ++i) {
    HostRun& h = run_->hosts[chunk_hosts[i]];
    h.version = versions[i];
    h.state = HostRolloutState::kSent;
    h.updated_unix = now;
    v1::ControllerMessage msg;
    *msg.mutable_bundle() = std::move(signed_bundles[i]);
    pushes->emplace_back(chunk_hosts[i], std::move(msg));
  }
  run_->meta_dirty = false;
  if (chunk_hosts.size() == pending) {  // that was the wave's last chunk
    run_->wave_starting = false;
    spdlog::info("event=rollout_wave_sent id={} generation={} wave={}/{}", run_->meta.id, run_->meta.generation,
                 wave_no + 1, run_->meta.waves);
  }
  return absl::OkStatus();
}

// Signs the hosts' bundles on up to 4 threads (ECDSA signing and serialization are independent
// per host; BundleFactory::Sign is thread-safe). The CA chain and CRL are read once per wave.
absl::StatusOr<std::vector<v1::SignedBundle>> Engine::SignAll(const std::vector<std::string>& hosts,
                                                              const std::vector<uint64_t>& versions) {
  std::vector<v1::SignedBundle> out(hosts.size());
  // Another replica may have revoked a certificate since this one made its CRL.
  IPFLEET_RETURN_IF_ERROR(ctx_.pki->SyncRevocations());
  const std::string ca_pem = ctx_.pki->CaPem();
  const std::string crl = ctx_.pki->CurrentCrl();
  const policy::CompiledGeneration& compiled = *run_->compiled;
  size_t threads = std::clamp<size_t>(std::thread::hardware_concurrency(), 1, 4);
  if (hosts.size() < 64) threads = 1;
  std::vector<absl::Status> errors(threads);
  auto work = [&](size_t t) {
    for (size_t i = t; i < hosts.size(); i += threads) {
      auto b = compiled.hosts.find(hosts[i]);
      v1::PolicyBundle bundle;
      if (b == compiled.hosts.end() || !bundle.ParseFromArray(b->second.bytes.data(), static_cast<int>(b->second.bytes.size()))) {
        errors[t] = absl::InternalError(absl::StrCat("no compiled bundle for host ", hosts[i]));
        return;
      }
      absl::StatusOr<v1::SignedBundle> sb = bundles_.Sign(std::move(bundle), versions[i], ca_pem, crl);
      if (!sb.ok()) {
        errors[t] = sb.status();
        return;
      }
      out[i] = std::move(*sb);
    }
  };
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; ++t) pool.emplace_back(work, t);
  work(0);
  for (auto& th : pool) th.join();
  for (const auto& e : errors) IPFLEET_RETURN_IF_ERROR(e);
  return out;
}

absl::Status Engine::Persist() {
  std::vector<inventory::RolloutHost> dirty;
  dirty.reserve(run_->dirty.size());
  for (const auto& name : run_->dirty) {
    const HostRun& h = run_->hosts[name];
    dirty.push_back({name, h.wave, h.version, h.state, h.error, h.updated_unix});
  }
  if (dirty.empty() && !run_->meta_dirty) return absl::OkStatus();
  IPFLEET_RETURN_IF_ERROR(ctx_.store->Transact([&](inventory::Tx& tx) -> absl::Status {
    IPFLEET_RETURN_IF_ERROR(tx.PutRolloutHosts(run_->meta.id, dirty));
    if (run_->meta_dirty) IPFLEET_RETURN_IF_ERROR(tx.UpdateRollout(run_->meta));
    return absl::OkStatus();
  }));
  for (const auto& h : dirty) run_->hosts[h.host].dirty = false;
  run_->dirty.clear();
  run_->meta_dirty = false;
  return absl::OkStatus();
}

void Engine::Finish(RolloutState state, const std::string& error) {
  run_->meta.state = state;
  run_->meta.finished_unix = Now();
  run_->meta.error = error;
  run_->meta_dirty = true;
  // Only a running rollout asks its generation (HostDone, SignAll); a finished one would keep a
  // superseded generation's bundles (~30 MiB at 10,000 hosts) alive after the next apply.
  run_->compiled.reset();
  spdlog::info("event=rollout_finished id={} generation={} state={} error=\"{}\"", run_->meta.id,
               run_->meta.generation, static_cast<int>(state), error);
}

inventory::Rollout Engine::Snapshot() const {
  inventory::Rollout r = run_->meta;
  r.hosts.clear();
  for (const auto& [name, h] : run_->hosts) r.hosts.push_back({name, h.wave, h.version, h.state, h.error, h.updated_unix});
  return r;
}

absl::StatusOr<inventory::Rollout> Engine::Begin(uint64_t generation, const StartParams& params) {
  IPFLEET_ASSIGN_OR_RETURN(auto compiled, bundles_.Compiled(generation));
  IPFLEET_ASSIGN_OR_RETURN(std::vector<inventory::Host> current, ctx_.store->ListHosts());
  std::set<std::string> present;
  for (const auto& h : current) present.insert(h.name);
  std::vector<std::string> hosts;
  for (const auto& [name, b] : compiled->hosts) {
    if (present.count(name)) hosts.push_back(name);  // hosts removed since the apply are skipped
  }
  auto run = std::make_unique<Run>();
  run->compiled = compiled;
  run->waves = PlanWaves(hosts, params.canary_percent, params.wave_size);
  inventory::Rollout& r = run->meta;
  r.generation = generation;
  r.state = run->waves.empty() ? RolloutState::kSucceeded : RolloutState::kRunning;
  r.current_wave = 0;
  r.waves = static_cast<uint32_t>(run->waves.size());
  r.canary_percent = params.canary_percent;
  r.wave_size = params.wave_size;
  r.wave_timeout_seconds = params.wave_timeout_seconds ? params.wave_timeout_seconds : options_.default_wave_timeout_seconds;
  r.started_unix = Now();
  if (run->waves.empty()) r.finished_unix = r.started_unix;
  for (uint32_t w = 0; w < run->waves.size(); ++w) {
    for (const auto& h : run->waves[w]) {
      r.hosts.push_back({h, w, 0, HostRolloutState::kPending, "", r.started_unix});
      run->hosts[h] = HostRun{w, 0, HostRolloutState::kPending, "", r.started_unix, false};
    }
  }
  IPFLEET_RETURN_IF_ERROR(ctx_.store->Transact([&](inventory::Tx& tx) -> absl::Status {
    IPFLEET_ASSIGN_OR_RETURN(r.id, tx.CreateRollout(r));
    return absl::OkStatus();
  }));
  spdlog::info("event=rollout_started id={} generation={} hosts={} waves={} canary_percent={} wave_size={}", r.id,
               generation, hosts.size(), r.waves, params.canary_percent, params.wave_size);
  run_ = std::move(run);
  refused_.clear();
  wake_ = true;
  cv_.notify_all();
  return Snapshot();
}

absl::StatusOr<inventory::Rollout> Engine::StartRollout(const StartParams& params) {
  std::lock_guard lock(mu_);
  if (run_ && run_->meta.state == RolloutState::kRunning) {
    return absl::FailedPreconditionError(absl::StrCat("rollout ", run_->meta.id,
                                                      " is still running; wait for it or `ipfleet rollout abort`"));
  }
  IPFLEET_ASSIGN_OR_RETURN(uint64_t generation, ctx_.store->CurrentGeneration());
  if (generation == 0) {
    return absl::FailedPreconditionError("nothing applied yet; run `ipfleet apply -f fleet.yaml` first");
  }
  return Begin(generation, params);
}

absl::StatusOr<inventory::Rollout> Engine::Rollback(uint64_t target) {
  std::lock_guard lock(mu_);
  if (run_ && run_->meta.state == RolloutState::kRunning) {
    return absl::FailedPreconditionError(absl::StrCat("rollout ", run_->meta.id, " is still running; `ipfleet rollout abort` it first"));
  }
  IPFLEET_ASSIGN_OR_RETURN(uint64_t current, ctx_.store->CurrentGeneration());
  if (target == 0) target = current > 0 ? current - 1 : 0;
  if (target == 0 || target > current) {
    return absl::FailedPreconditionError(absl::StrCat("no generation to roll back to (current is ", current, ")"));
  }
  IPFLEET_ASSIGN_OR_RETURN(inventory::Generation old, ctx_.store->GetGeneration(target));
  IPFLEET_ASSIGN_OR_RETURN(fleet::GenerationRecord record, fleet::DecodeGeneration(old.snapshot));
  record.created_unix = Now();
  // The old content becomes a new generation: every host gets it as a new, higher version.
  IPFLEET_ASSIGN_OR_RETURN(PreparedGeneration prepared, PrepareGeneration(bundles_, std::move(record), current + 1));
  IPFLEET_ASSIGN_OR_RETURN(uint64_t id, CommitGeneration(ctx_, prepared, current, absl::StrCat("rollback to ", target)));
  bundles_.Remember(id, prepared.compiled);
  StartParams params;
  absl::StatusOr<inventory::Rollout> last = ctx_.store->LatestRollout();
  if (last.ok()) params = {last->canary_percent, last->wave_size, last->wave_timeout_seconds};
  return Begin(id, params);
}

absl::StatusOr<inventory::Rollout> Engine::Abort(uint64_t id) {
  std::lock_guard lock(mu_);
  if (run_ && (id == 0 || id == run_->meta.id)) {
    if (run_->meta.state != RolloutState::kRunning) {
      return absl::FailedPreconditionError(absl::StrCat("rollout ", run_->meta.id, " is not running"));
    }
    Finish(RolloutState::kAborted, "aborted by operator");
    IPFLEET_RETURN_IF_ERROR(Persist());
    return Snapshot();
  }
  return absl::FailedPreconditionError(id == 0 ? "no rollout is running" : absl::StrCat("rollout ", id, " is not running"));
}

absl::StatusOr<inventory::Rollout> Engine::Get(uint64_t id) {
  {
    std::lock_guard lock(mu_);
    if (run_ && (id == 0 || id == run_->meta.id)) return Snapshot();
  }
  if (id == 0) {
    absl::StatusOr<inventory::Rollout> r = ctx_.store->LatestRollout();
    if (absl::IsNotFound(r.status())) return absl::NotFoundError("no rollout yet; start one with `ipfleet rollout start`");
    return r;
  }
  return ctx_.store->GetRollout(id);
}

void Engine::OnHello(const std::string& host, const v1::Hello& hello) {
  {
    std::lock_guard lock(mu_);
    applied_[host] = hello.bundle_version();
    touched_.insert(host);
    wake_ = true;
  }
  cv_.notify_all();
  // A host that was away gets the newest bundle it is due (bundles are stored when their wave starts).
  SendNewestBundle(host, hello.bundle_version(), "hello");
}

void Engine::SendStoredBundles(const std::vector<std::string>& hosts) {
  absl::StatusOr<std::vector<inventory::BundleRecord>> latest = ctx_.store->LatestBundles(hosts);
  if (!latest.ok()) {
    spdlog::warn("event=stored_bundles_unread hosts={} error=\"{}\"", hosts.size(), std::string(latest.status().message()));
    return;
  }
  for (inventory::BundleRecord& b : *latest) {
    uint64_t have = 0;
    {
      std::lock_guard lock(mu_);
      auto it = applied_.find(b.host);
      if (it != applied_.end()) have = it->second;
    }
    PushBundle(std::move(b), have, "replica");
  }
}

void Engine::SendNewestBundle(const std::string& host, uint64_t have, const char* why) {
  absl::StatusOr<inventory::BundleRecord> latest = ctx_.store->LatestBundle(host);
  if (latest.ok()) PushBundle(std::move(*latest), have, why);
}

void Engine::PushBundle(inventory::BundleRecord stored, uint64_t have, const char* why) {
  if (stored.version <= have) return;
  v1::ControllerMessage msg;
  if (!msg.mutable_bundle()->ParseFromString(stored.signed_bundle)) return;
  spdlog::info("event=bundle_sent host={} version={} had={} on={}", stored.host, stored.version, have, why);
  ctx_.sessions->Push(stored.host, std::move(msg));
}

void Engine::OnAck(const std::string& host, const v1::BundleAck& ack) {
  {
    std::lock_guard lock(mu_);
    if (ack.applied()) {
      uint64_t& v = applied_[host];
      v = std::max(v, ack.version());
    } else {
      refused_[host] = {ack.version(), ack.error()};
    }
    touched_.insert(host);
    wake_ = true;
  }
  cv_.notify_all();
}

Engine::HealthView Engine::ViewOf(const v1::HealthReport& report) {
  HealthView v;
  v.bundle_version = report.bundle_version();
  v.up.reserve(report.tunnels_size());
  for (const auto& t : report.tunnels()) {
    if (t.up()) v.up.push_back(t.tunnel());
  }
  std::sort(v.up.begin(), v.up.end());
  return v;
}

void Engine::OnHealth(const std::string& host, const v1::HealthReport& report) {
  {
    std::lock_guard lock(mu_);
    health_[host] = ViewOf(report);
    touched_.insert(host);
    wake_ = true;
  }
  cv_.notify_all();
}

}  // namespace ipfleet::rollout
