#include "ipfleet/policy/compiled_generation.h"

#include <absl/strings/str_cat.h>

namespace ipfleet::policy {
namespace {

CompiledGeneration::HostBundle Keep(const v1::PolicyBundle& bundle) {
  CompiledGeneration::HostBundle h;
  h.bytes = SerializeDeterministic(bundle);
  h.tunnels.reserve(bundle.tunnels_size());
  for (const v1::TunnelSpec& t : bundle.tunnels()) h.tunnels.push_back({t.name(), t.remote().host()});
  return h;
}

}  // namespace

absl::StatusOr<CompiledGeneration> CompiledGeneration::Compile(const InventorySnapshot& snapshot, KeySource& keys,
                                                               std::map<std::string, StaticKeyMaterial>* static_keys) {
  CompiledGeneration g;
  auto hint = g.hosts.end();  // hosts arrive in name order: every insert goes at the end
  IPFLEET_ASSIGN_OR_RETURN(auto compiled_keys,
                           CompileEach(snapshot, keys, [&](const std::string& host, const v1::PolicyBundle& bundle) {
                             hint = g.hosts.emplace_hint(hint, host, Keep(bundle));
                             ++hint;
                             return absl::OkStatus();
                           }));
  if (static_keys) *static_keys = std::move(compiled_keys);
  return g;
}

CompiledGeneration CompiledGeneration::From(const CompileResult& compiled) {
  CompiledGeneration g;
  for (const auto& [host, bundle] : compiled.bundles) g.hosts.emplace(host, Keep(bundle));
  return g;
}

absl::StatusOr<v1::PolicyBundle> CompiledGeneration::Bundle(const std::string& host) const {
  auto it = hosts.find(host);
  if (it == hosts.end()) return absl::NotFoundError(absl::StrCat("no compiled bundle for host ", host));
  v1::PolicyBundle b;
  if (!b.ParseFromString(it->second.bytes)) {
    return absl::InternalError(absl::StrCat("compiled bundle of host ", host, " does not parse"));
  }
  return b;
}

}  // namespace ipfleet::policy
