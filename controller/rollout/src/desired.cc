#include "ipfleet/rollout/desired.h"

#include <absl/strings/str_cat.h>

#include "ipfleet/v1/admin_service.pb.h"

namespace ipfleet::rollout {

// The snapshot (~20 MB at 10,000 hosts) lives only in here: the caller goes on to diff and store
// with the compiled bytes and the listing.
absl::StatusOr<PreparedGeneration> PrepareGeneration(BundleFactory& bundles, fleet::GenerationRecord record,
                                                     uint64_t id) {
  PreparedGeneration p;
  p.id = id;
  IPFLEET_ASSIGN_OR_RETURN(policy::InventorySnapshot snapshot, fleet::SnapshotOf(record, id, bundles.controller()));
  policy::OpenSslKeySource keys;
  std::map<std::string, policy::StaticKeyMaterial> static_keys;
  IPFLEET_ASSIGN_OR_RETURN(policy::CompiledGeneration compiled,
                           policy::CompiledGeneration::Compile(snapshot, keys, &static_keys));
  p.compiled = std::make_shared<const policy::CompiledGeneration>(std::move(compiled));
  p.desired = DesiredOf(snapshot);
  record.static_keys = std::move(static_keys);  // only the keys the generation uses
  p.record = std::move(record);
  return p;
}

inventory::DesiredInventory DesiredOf(const policy::InventorySnapshot& s) {
  inventory::DesiredInventory d;
  for (const auto& [name, p] : s.proposals) d.proposals.push_back({name, p.SerializeAsString()});
  for (const auto& p : s.external_peers) {
    v1::ExternalPeer e;
    e.set_name(p.name);
    e.set_address(p.address);
    e.set_identity(p.identity);
    e.set_auth(p.auth);
    for (const auto& c : p.subnets) e.add_subnets()->set_cidr(c);
    d.external_peers.push_back({p.name, p.address, p.identity, static_cast<int>(p.auth), e.SerializeAsString()});
  }
  std::sort(d.external_peers.begin(), d.external_peers.end(), [](const auto& x, const auto& y) { return x.name < y.name; });
  for (const auto& t : s.tunnels) {
    policy::TunnelEnd a = t.a, b = t.b;
    if (a.external || (!b.external && b.name < a.name)) std::swap(a, b);
    inventory::TunnelRecord r;
    r.name = t.name;
    r.left = a.name;
    r.right = b.name;
    r.right_is_external = b.external;
    r.mode = t.mode;
    r.auth = t.auth;
    r.proposal = t.proposal;
    r.spec = t.origin;
    d.tunnels.push_back(std::move(r));
  }
  std::sort(d.tunnels.begin(), d.tunnels.end(), [](const auto& x, const auto& y) { return x.name < y.name; });
  return d;
}

absl::StatusOr<uint64_t> CommitGeneration(controller::ControllerContext& ctx, const PreparedGeneration& prepared,
                                          uint64_t expected_current, const std::string& source,
                                          const std::function<absl::Status(inventory::Tx&)>& extra) {
  uint64_t id = 0;
  std::string encoded = fleet::EncodeGeneration(prepared.record);
  IPFLEET_RETURN_IF_ERROR(ctx.store->Transact([&](inventory::Tx& tx) -> absl::Status {
    IPFLEET_ASSIGN_OR_RETURN(uint64_t current, tx.CurrentGeneration());
    if (current != expected_current) {
      return absl::AbortedError(absl::StrCat("generation moved from ", expected_current, " to ", current,
                                             " meanwhile (another apply?); run the command again"));
    }
    if (extra) IPFLEET_RETURN_IF_ERROR(extra(tx));
    IPFLEET_RETURN_IF_ERROR(tx.ReplaceDesired(prepared.desired));
    inventory::Generation g;
    g.created_unix = prepared.record.created_unix;
    g.source = source;
    g.snapshot = encoded;
    IPFLEET_ASSIGN_OR_RETURN(id, tx.AddGeneration(g));
    if (id != prepared.id) {
      return absl::InternalError(absl::StrCat("generation id ", id, " differs from the compiled ", prepared.id));
    }
    return absl::OkStatus();
  }));
  return id;
}

}  // namespace ipfleet::rollout
