#include "ipfleet/rollout/bundles.h"

#include <netdb.h>
#include <sys/socket.h>

#include <absl/strings/numbers.h>
#include <absl/strings/str_cat.h>

#include "ipfleet/controller/api/pki.h"
#include "ipfleet/controller/inventory/store.h"
#include "ipfleet/policy/cidr.h"

namespace ipfleet::rollout {

absl::StatusOr<policy::ControllerEndpoint> ControllerEndpointOf(const std::string& agent_endpoint) {
  std::string host, port;
  if (agent_endpoint.starts_with("[")) {
    auto close = agent_endpoint.find("]:");
    if (close == std::string::npos) return absl::InvalidArgumentError(absl::StrCat("bad agent endpoint \"", agent_endpoint, "\""));
    host = agent_endpoint.substr(1, close - 1);
    port = agent_endpoint.substr(close + 2);
  } else {
    auto colon = agent_endpoint.rfind(':');
    if (colon == std::string::npos) return absl::InvalidArgumentError(absl::StrCat("agent endpoint \"", agent_endpoint, "\" has no port"));
    host = agent_endpoint.substr(0, colon);
    port = agent_endpoint.substr(colon + 1);
  }
  policy::ControllerEndpoint ep;
  if (!absl::SimpleAtoi(port, &ep.port) || ep.port == 0 || ep.port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("bad port in agent endpoint \"", agent_endpoint, "\""));
  }
  if (policy::HostPrefix(host).ok()) {
    ep.addresses.push_back(host);
    return ep;
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res); rc != 0) {
    return absl::UnavailableError(absl::StrCat("getaddrinfo(", host, "): ", gai_strerror(rc)));
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> owner(res, freeaddrinfo);
  for (addrinfo* a = res; a; a = a->ai_next) {
    char buf[NI_MAXHOST];
    if (getnameinfo(a->ai_addr, a->ai_addrlen, buf, sizeof(buf), nullptr, 0, NI_NUMERICHOST) == 0) {
      std::string addr = buf;
      if (std::find(ep.addresses.begin(), ep.addresses.end(), addr) == ep.addresses.end()) ep.addresses.push_back(addr);
    }
  }
  std::sort(ep.addresses.begin(), ep.addresses.end());
  if (ep.addresses.empty()) return absl::UnavailableError(absl::StrCat("no address for ", host));
  return ep;
}

absl::StatusOr<std::shared_ptr<const policy::CompiledGeneration>> BundleFactory::Compiled(uint64_t generation) {
  {
    std::lock_guard lock(mu_);
    if (auto it = cache_.find(generation); it != cache_.end()) return it->second;
  }
  IPFLEET_ASSIGN_OR_RETURN(inventory::Generation gen, ctx_.store->GetGeneration(generation));
  IPFLEET_ASSIGN_OR_RETURN(fleet::GenerationRecord record, fleet::DecodeGeneration(gen.snapshot));
  IPFLEET_ASSIGN_OR_RETURN(policy::InventorySnapshot snap, fleet::SnapshotOf(record, generation, controller_));
  // A stored generation carries every key it needs; a key source that fails makes any attempt to
  // invent new ones visible instead of silently changing bytes.
  class NoKeys final : public policy::KeySource {
    absl::StatusOr<std::string> RandomBytes(size_t) override {
      return absl::InternalError("stored generation lacks static keys it needs");
    }
  } no_keys;
  IPFLEET_ASSIGN_OR_RETURN(policy::CompiledGeneration compiled, policy::CompiledGeneration::Compile(snap, no_keys));
  auto shared = std::make_shared<const policy::CompiledGeneration>(std::move(compiled));
  Remember(generation, shared);
  return shared;
}

void BundleFactory::Remember(uint64_t generation, std::shared_ptr<const policy::CompiledGeneration> compiled) {
  std::lock_guard lock(mu_);
  cache_[generation] = std::move(compiled);
  while (cache_.size() > 1) cache_.erase(cache_.begin());  // keep the newest generation
}

absl::StatusOr<v1::SignedBundle> BundleFactory::Sign(v1::PolicyBundle bundle, uint64_t version) const {
  return Sign(std::move(bundle), version, ctx_.pki->CaPem(), ctx_.pki->CurrentCrl());
}

absl::StatusOr<v1::SignedBundle> BundleFactory::Sign(v1::PolicyBundle bundle, uint64_t version,
                                                     const std::string& ca_pem, const std::string& crl) const {
  bundle.set_version(version);
  bundle.clear_ca_chain();
  bundle.add_ca_chain(ca_pem);
  bundle.set_crl(crl);
  v1::SignedBundle out;
  out.set_bundle(policy::SerializeDeterministic(bundle));
  IPFLEET_ASSIGN_OR_RETURN(ca::BundleSignature sig, signer_.Sign(out.bundle()));
  out.set_signature(std::move(sig.signature));
  out.set_signer_certificate(std::move(sig.signer_cert_pem));
  out.set_algorithm(std::move(sig.algorithm));
  return out;
}

}  // namespace ipfleet::rollout
