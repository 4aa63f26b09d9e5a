// FleetModule: proto <-> domain at the edge, the work lives in fleet/, policy/, engine, commands.
#include "ipfleet/rollout/module.h"

#include <spdlog/spdlog.h>

#include <absl/strings/str_cat.h>

#include "ipfleet/common/memory.h"
#include "ipfleet/controller/api/session_registry.h"
#include "ipfleet/controller/inventory/store.h"
#include "ipfleet/fleet/fleet_file.h"
#include "ipfleet/rollout/bundles.h"
#include "ipfleet/rollout/commands.h"
#include "ipfleet/rollout/desired.h"

namespace ipfleet::rollout {
namespace {

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(static_cast<int>(s.code())), std::string(s.message()));
}

void ToProto(const inventory::Rollout& r, v1::RolloutStatus* out) {
  out->set_id(r.id);
  out->set_generation(r.generation);
  out->set_state(static_cast<v1::RolloutState>(r.state));
  out->set_current_wave(r.current_wave);
  out->set_waves(r.waves);
  out->set_started_unix(r.started_unix);
  out->set_finished_unix(r.finished_unix);
  out->set_error(r.error);
  for (const auto& h : r.hosts) {
    v1::HostRollout* p = out->add_hosts();
    p->set_host(h.host);
    p->set_wave(h.wave);
    p->set_version(h.version);
    p->set_state(static_cast<v1::HostRolloutState>(h.state));
    p->set_error(h.error);
  }
}

void ToProto(const inventory::CommandRecord& c, v1::CommandStatus* out) {
  *out->mutable_command() = CommandQueue::ToWire(c);
  out->set_host(c.host);
  out->set_state(static_cast<v1::CommandState>(c.state));
  if (!c.result.empty()) out->mutable_result()->ParseFromString(c.result);
}

class FleetModuleImpl final : public controller::FleetModule {
 public:
  FleetModuleImpl(controller::ControllerContext& ctx, ca::BundleSigner signer, policy::ControllerEndpoint endpoint,
                  ModuleOptions options)
      : ctx_(ctx), bundles_(ctx, std::move(signer), std::move(endpoint)), engine_(ctx, bundles_, options.engine),
        commands_(ctx) {}

  void Wire() {
    ctx_.sessions->OnAttach([this](const std::string& host) { commands_.OnAttach(host); });
    ctx_.sessions->OnHello([this](const std::string& host, const v1::Hello& h) {
      engine_.OnHello(host, h);
      commands_.OnHello(host, h);
    });
    ctx_.sessions->OnBundleAck([this](const std::string& host, const v1::BundleAck& a) { engine_.OnAck(host, a); });
    ctx_.sessions->OnHealth([this](const std::string& host, const v1::HealthReport& r) { engine_.OnHealth(host, r); });
    ctx_.sessions->OnCommandResult(
        [this](const std::string& host, const v1::CommandResult& r) { commands_.OnResult(host, r); });
  }

  void Start() override {
    commands_.Resume();
    if (absl::Status st = engine_.Start(); !st.ok()) {
      spdlog::error("event=rollout_engine_start_failed error=\"{}\"", std::string(st.message()));
    }
  }
  void Stop() override {
    commands_.Stop();
    engine_.Stop();
  }
  void SendStoredBundles(const std::vector<std::string>& hosts) override { engine_.SendStoredBundles(hosts); }
  void SendQueuedCommands(const std::string& host) override { commands_.SendQueued(host); }

  grpc::Status Apply(grpc::ServerContext*, const v1::ApplyRequest& req, v1::ApplyResponse* resp) override {
    absl::Status st = DoApply(req, resp);
    ReleaseFreeMemoryToOs();  // the compile's transient memory, before a rollout needs its own
    return ToGrpc(st);
  }

  grpc::Status StartRollout(grpc::ServerContext*, const v1::StartRolloutRequest& req, v1::RolloutStatus* out) override {
    if (req.canary_percent() > 100) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "--canary must be 0..100");
    auto r = engine_.StartRollout({req.canary_percent(), req.wave_size(), req.wave_timeout_seconds()});
    if (!r.ok()) return ToGrpc(r.status());
    ToProto(*r, out);
    return grpc::Status::OK;
  }
  grpc::Status GetRollout(grpc::ServerContext*, const v1::GetRolloutRequest& req, v1::RolloutStatus* out) override {
    auto r = engine_.Get(req.id());
    if (!r.ok()) return ToGrpc(r.status());
    ToProto(*r, out);
    return grpc::Status::OK;
  }
  grpc::Status AbortRollout(grpc::ServerContext*, const v1::AbortRolloutRequest& req, v1::RolloutStatus* out) override {
    auto r = engine_.Abort(req.id());
    if (!r.ok()) return ToGrpc(r.status());
    ToProto(*r, out);
    return grpc::Status::OK;
  }
  grpc::Status Rollback(grpc::ServerContext*, const v1::RollbackRequest& req, v1::RolloutStatus* out) override {
    std::lock_guard lock(apply_mu_);
    auto r = engine_.Rollback(req.generation());
    ReleaseFreeMemoryToOs();  // as after Apply: Rollback compiles a generation too
    if (!r.ok()) return ToGrpc(r.status());
    ToProto(*r, out);
    return grpc::Status::OK;
  }

  grpc::Status SendCommand(grpc::ServerContext*, const v1::SendCommandRequest& req, v1::CommandStatus* out) override {
    if (absl::Status st = CheckTarget(req.host(), req.tunnel()); !st.ok()) return ToGrpc(st);
    auto c = commands_.Send(req.host(), req.kind(), req.tunnel(), req.peer());
    if (!c.ok()) return ToGrpc(c.status());
    ToProto(*c, out);
    return grpc::Status::OK;
  }
  grpc::Status GetCommand(grpc::ServerContext*, const v1::GetCommandRequest& req, v1::CommandStatus* out) override {
    auto c = commands_.Get(req.id(), std::min<uint32_t>(req.wait_seconds(), 3600));
    if (!c.ok()) return ToGrpc(c.status());
    ToProto(*c, out);
    return grpc::Status::OK;
  }

  grpc::Status ListTunnels(grpc::ServerContext*, const v1::ListTunnelsRequest& req, v1::ListTunnelsResponse* out) override {
    return ToGrpc(DoListTunnels(req.host(), out));
  }
  grpc::Status ListExternalPeers(grpc::ServerContext*, const v1::ListExternalPeersRequest&,
                                 v1::ListExternalPeersResponse* out) override {
    auto d = ctx_.store->GetDesired();
    if (!d.ok()) return ToGrpc(d.status());
    for (const auto& p : d->external_peers) out->add_peers()->ParseFromString(p.spec);
    return grpc::Status::OK;
  }

 private:
  absl::Status DoApply(const v1::ApplyRequest& req, v1::ApplyResponse* resp) {
    std::lock_guard lock(apply_mu_);
    std::string file_name = req.file_name().empty() ? "fleet.yaml" : req.file_name();
    IPFLEET_ASSIGN_OR_RETURN(fleet::FleetFile file, fleet::ParseFleetFile(req.fleet_yaml(), file_name));
    IPFLEET_ASSIGN_OR_RETURN(std::vector<inventory::Host> hosts, ctx_.store->ListHosts());
    IPFLEET_ASSIGN_OR_RETURN(uint64_t current, ctx_.store->CurrentGeneration());
    fleet::GenerationRecord record;
    record.file_name = file_name;
    record.yaml = req.fleet_yaml();
    record.created_unix = ctx_.clock();
    for (const auto& h : hosts) record.hosts.push_back({h.name, h.addresses, h.dns_names, h.labels, {}});
    auto before = std::make_shared<const policy::CompiledGeneration>();  // first apply: nothing before
    if (current > 0) {
      IPFLEET_ASSIGN_OR_RETURN(inventory::Generation g, ctx_.store->GetGeneration(current));
      IPFLEET_ASSIGN_OR_RETURN(fleet::GenerationRecord old, fleet::DecodeGeneration(g.snapshot));
      record.static_keys = old.static_keys;  // reused unless a tunnel asks for rotation
      IPFLEET_ASSIGN_OR_RETURN(before, bundles_.Compiled(current));
    }
    IPFLEET_ASSIGN_OR_RETURN(PreparedGeneration prepared, PrepareGeneration(bundles_, record, current + 1));
    IPFLEET_ASSIGN_OR_RETURN(fleet::FleetDiff diff, fleet::Diff(*before, *prepared.compiled));
    for (const auto& t : diff.tunnels) {
      v1::TunnelChange* c = resp->add_changes();
      c->set_change(t.change);
      c->set_tunnel(t.tunnel);
      c->set_detail(t.detail);
    }
    for (const auto& h : diff.affected_hosts) resp->add_affected_hosts(h);
    resp->set_dry_run(req.dry_run());
    resp->set_generation(current);
    if (req.dry_run() || (diff.tunnels.empty() && diff.affected_hosts.empty() && !LabelsChange(file, hosts))) {
      return absl::OkStatus();
    }
    // Labels written in the file become the hosts' labels, in the same transaction.
    auto labels = [&](inventory::Tx& tx) -> absl::Status {
      for (const auto& e : file.hosts) {
        if (!e.labels) continue;
        IPFLEET_ASSIGN_OR_RETURN(inventory::Host h, tx.GetHost(e.name));
        h.labels = *e.labels;
        IPFLEET_RETURN_IF_ERROR(tx.UpdateHost(h));
      }
      return absl::OkStatus();
    };
    IPFLEET_ASSIGN_OR_RETURN(uint64_t id, CommitGeneration(ctx_, prepared, current, file_name, labels));
    bundles_.Remember(id, prepared.compiled);
    resp->set_generation(id);
    spdlog::info("event=fleet_applied generation={} file={} changes={} affected_hosts={}", id, file_name,
                 diff.tunnels.size(), diff.affected_hosts.size());
    return absl::OkStatus();
  }

  static bool LabelsChange(const fleet::FleetFile& file, const std::vector<inventory::Host>& hosts) {
    for (const auto& e : file.hosts) {
      if (!e.labels) continue;
      for (const auto& h : hosts) {
        if (h.name == e.name && h.labels != *e.labels) return true;
      }
    }
    return false;
  }

  absl::Status CheckTarget(const std::string& host, const std::string& tunnel) {
    absl::StatusOr<inventory::Host> h = ctx_.store->GetHost(host);
    if (absl::IsNotFound(h.status())) {
      return absl::NotFoundError(absl::StrCat("no host named '", host, "'; see `ipfleet host list`"));
    }
    IPFLEET_RETURN_IF_ERROR(h.status());
    if (tunnel.empty()) return absl::OkStatus();
    IPFLEET_ASSIGN_OR_RETURN(inventory::DesiredInventory d, ctx_.store->GetDesired());
    for (const auto& t : d.tunnels) {
      if (t.name == tunnel && (t.left == host || t.right == host)) return absl::OkStatus();
    }
    return absl::NotFoundError(
        absl::StrCat("host '", host, "' has no tunnel '", tunnel, "'; see `ipfleet tunnels --host ", host, "`"));
  }

  absl::Status DoListTunnels(const std::string& host_filter, v1::ListTunnelsResponse* out) {
    IPFLEET_ASSIGN_OR_RETURN(inventory::DesiredInventory d, ctx_.store->GetDesired());
    IPFLEET_ASSIGN_OR_RETURN(std::vector<inventory::HealthRecord> health, ctx_.store->ListHealth());
    std::map<std::string, v1::HealthReport> reports;
    for (const auto& rec : health) reports[rec.host].ParseFromString(rec.report);
    auto end_state = [&](const std::string& host, const std::string& tunnel, v1::TunnelEndState* e) {
      e->set_host(host);
      auto r = reports.find(host);
      if (r == reports.end()) return;
      e->set_reported_unix(r->second.at_unix());
      for (const auto& t : r->second.tunnels()) {
        if (t.tunnel() != tunnel) continue;
        e->set_up(t.up());
        e->set_child_sas(static_cast<uint32_t>(t.child_sas_size()));
        bool stale = t.ike_sa().stale();
        for (const auto& c : t.child_sas()) stale = stale || c.stale();
        e->set_stale(stale);
      }
    };
    for (const auto& t : d.tunnels) {
      if (!host_filter.empty() && t.left != host_filter && t.right != host_filter) continue;
      v1::TunnelInfo* info = out->add_tunnels();
      info->set_name(t.name);
      info->set_left(t.left);
      info->set_right(t.right);
      info->set_mode(static_cast<v1::TunnelMode>(t.mode));
      info->set_auth(static_cast<v1::AuthMethod>(t.auth));
      info->set_proposal(t.proposal);
      end_state(t.left, t.name, info->add_ends());
      if (!t.right_is_external) end_state(t.right, t.name, info->add_ends());
    }
    return absl::OkStatus();
  }

  controller::ControllerContext& ctx_;
  BundleFactory bundles_;
  Engine engine_;
  CommandQueue commands_;
  std::mutex apply_mu_;  // apply and rollback create generations one at a time
};

}  // namespace

absl::StatusOr<std::unique_ptr<controller::FleetModule>> MakeFleetModule(controller::ControllerContext& ctx,
                                                                         ModuleOptions options) {
  IPFLEET_ASSIGN_OR_RETURN(ca::BundleSigner signer, ca::BundleSigner::Load(ctx.data_dir));
  IPFLEET_ASSIGN_OR_RETURN(policy::ControllerEndpoint endpoint, ControllerEndpointOf(ctx.agent_endpoint));
  auto module = std::make_unique<FleetModuleImpl>(ctx, std::move(signer), std::move(endpoint), options);
  module->Wire();
  return module;
}

}  // namespace ipfleet::rollout
