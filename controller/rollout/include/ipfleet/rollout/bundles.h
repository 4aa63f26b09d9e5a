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
#include "ipfleet/policy/compiler.h"
#include "ipfleet/v1/types.pb.h"

namespace ipfleet::rollout {

// "HOST:PORT" / "[V6]:PORT" of the agent endpoint -> the controller path bundles must keep open.
// A DNS name is resolved once here (the compiler itself does no I/O).
absl::StatusOr<policy::ControllerEndpoint> ControllerEndpointOf(const std::string& agent_endpoint);

// A compiled generation as the rollout keeps it: each host's bundle as deterministic bytes, plus
// what the engine asks of it on every ack (each tunnel's name and remote host). As protobuf trees a
// 10,000-host generation held ~150 MiB for as long as it was cached (two generations); as bytes
// ~30 MiB, and the tree's memory is free again for the rollout that follows the apply.
struct CompiledGeneration {
  struct Tunnel {
    std::string name;
    std::string peer_host;  // empty for an external peer
  };
  struct HostBundle {
    std::string bytes;  // policy::SerializeDeterministic(bundle)
    std::vector<Tunnel> tunnels;
  };
  std::map<std::string, HostBundle> hosts;

  static CompiledGeneration From(const policy::CompileResult& compiled);
  // The trees again, bundles only (apply diffs the current generation against the new one).
  absl::StatusOr<policy::CompileResult> Expand() const;
};

class BundleFactory {
 public:
  BundleFactory(controller::ControllerContext& ctx, ca::BundleSigner signer, policy::ControllerEndpoint controller)
      : ctx_(ctx), signer_(std::move(signer)), controller_(std::move(controller)) {}

  // The compile result of a stored generation.
  absl::StatusOr<std::shared_ptr<const CompiledGeneration>> Compiled(uint64_t generation);

  // Puts the compile result of a generation just stored (apply, rollback) into the cache, so the
  // rollout that follows does not compile it again (10,000 hosts: ~1 s of CPU). The compiler is
  // deterministic, so this is exactly what Compiled(generation) would produce.
  void Remember(uint64_t generation, const policy::CompileResult& compiled);

  // Compile a record that is not stored yet (apply), with fresh randomness for new static keys.
  absl::StatusOr<policy::CompileResult> CompileRecord(const fleet::GenerationRecord& record, uint64_t generation);

  // `bundle` with version, CA chain and current CRL set, serialized deterministically and signed.
  absl::StatusOr<v1::SignedBundle> Sign(v1::PolicyBundle bundle, uint64_t version) const;
  // The same with the CA chain and CRL given (read once for many hosts). Thread-safe.
  absl::StatusOr<v1::SignedBundle> Sign(v1::PolicyBundle bundle, uint64_t version, const std::string& ca_pem,
                                        const std::string& crl) const;

  const policy::ControllerEndpoint& controller() const { return controller_; }

 private:
  void Insert(uint64_t generation, std::shared_ptr<const CompiledGeneration> compiled);

  controller::ControllerContext& ctx_;
  ca::BundleSigner signer_;
  policy::ControllerEndpoint controller_;
  std::mutex mu_;
  // The newest two generations (apply diffs the current one against the new one).
  std::map<uint64_t, std::shared_ptr<const CompiledGeneration>> cache_;
};

}  // namespace ipfleet::rollout
