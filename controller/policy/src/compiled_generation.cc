#include "ipfleet/policy/compiled_generation.h"

#include <absl/strings/str_cat.h>

namespace ipfleet::policy {

void CompiledGeneration::Add(const std::string& host, const v1::PolicyBundle& bundle) {
  const size_t size = bundle.ByteSizeLong();
  char* at;
  if (size > kBlockSize) {  // a bundle larger than a block gets a block of its own,
    auto own = std::make_unique<char[]>(size);
    at = own.get();
    // inserted before the block being filled, which stays last
    blocks_.insert(blocks_.empty() ? blocks_.end() : blocks_.end() - 1, std::move(own));
  } else {
    if (kBlockSize - block_used_ < size) {
      blocks_.push_back(std::make_unique<char[]>(kBlockSize));
      block_used_ = 0;
    }
    at = blocks_.back().get() + block_used_;
    block_used_ += size;
  }
  SerializeDeterministicWithCachedSizes(bundle, at, size);
  HostBundle& h = hosts.emplace_hint(hosts.end(), host, HostBundle{})->second;  // hosts come in name order
  h.bytes = std::string_view(at, size);
  h.tunnels.reserve(bundle.tunnels_size());
  for (const v1::TunnelSpec& t : bundle.tunnels()) h.tunnels.push_back({t.name(), t.remote().host()});
}

absl::StatusOr<CompiledGeneration> CompiledGeneration::Compile(const InventorySnapshot& snapshot, KeySource& keys,
                                                               std::map<std::string, StaticKeyMaterial>* static_keys) {
  CompiledGeneration g;
  IPFLEET_ASSIGN_OR_RETURN(auto compiled_keys,
                           CompileEach(snapshot, keys, [&](const std::string& host, const v1::PolicyBundle& bundle) {
                             g.Add(host, bundle);
                             return absl::OkStatus();
                           }));
  if (static_keys) *static_keys = std::move(compiled_keys);
  return g;
}

absl::StatusOr<v1::PolicyBundle> CompiledGeneration::Bundle(const std::string& host) const {
  auto it = hosts.find(host);
  if (it == hosts.end()) return absl::NotFoundError(absl::StrCat("no compiled bundle for host ", host));
  v1::PolicyBundle b;
  if (!b.ParseFromArray(it->second.bytes.data(), static_cast<int>(it->second.bytes.size()))) {
    return absl::InternalError(absl::StrCat("compiled bundle of host ", host, " does not parse"));
  }
  return b;
}

}  // namespace ipfleet::policy
