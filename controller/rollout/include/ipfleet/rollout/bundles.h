// Compiled and signed bundles. Compiles a stored generation (cached: the compiler is deterministic,
// so a cache hit and a recompile give the same bytes) and signs one host's bundle at a version with
// the CA chain and the current CRL inside.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "ipfleet/ca/bundle_signing.h"
#include "ipfleet/common/status.h"
#include "ipfleet/controller/api/context.h"
#include "ipfleet/fleet/generation.h"
#include "ipfleet/policy/compiled_generation.h"
#include "ipfleet/policy/compiler.h"
#include "ipfleet/v1/types.pb.h"

namespace ipfleet::rollout {

// "HOST:PORT" / "[V6]:PORT" of the agent endpoint -> the controller path bundles must keep open.
// A DNS name is resolved once here (the compiler itself does no I/O).
absl::StatusOr<policy::ControllerEndpoint> ControllerEndpointOf(const std::string& agent_endpoint);

class BundleFactory {
 public:
  BundleFactory(controller::ControllerContext& ctx, ca::BundleSigner signer, policy::ControllerEndpoint controller)
      : ctx_(ctx), signer_(std::move(signer)), controller_(std::move(controller)) {}

  // The compile result of a stored generation.
  absl::StatusOr<std::shared_ptr<const policy::CompiledGeneration>> Compiled(uint64_t generation);

  // Puts the compile result of a generation just stored (apply, rollback) into the cache, so the
  // rollout that follows does not compile it again (10,000 hosts: ~1 s of CPU). The compiler is
  // deterministic, so this is exactly what Compiled(generation) would produce.
  void Remember(uint64_t generation, std::shared_ptr<const policy::CompiledGeneration> compiled);

  // `bundle` with version, CA chain and current CRL set, serialized deterministically and signed.
  absl::StatusOr<v1::SignedBundle> Sign(v1::PolicyBundle bundle, uint64_t version) const;
  // The same with the CA chain and CRL given (read once for many hosts). Thread-safe.
  absl::StatusOr<v1::SignedBundle> Sign(v1::PolicyBundle bundle, uint64_t version, const std::string& ca_pem,
                                        const std::string& crl) const;

  const policy::ControllerEndpoint& controller() const { return controller_; }

 private:

  controller::ControllerContext& ctx_;
  ca::BundleSigner signer_;
  policy::ControllerEndpoint controller_;
  std::mutex mu_;
  // The newest generation only: apply diffs the current one (holding its own reference while it
  // compiles the next), a running rollout holds the one it sends. A second cached generation was
  // ~30 MiB at 10,000 hosts for nothing.
  std::map<uint64_t, std::shared_ptr<const policy::CompiledGeneration>> cache_;
};

}  // namespace ipfleet::rollout
