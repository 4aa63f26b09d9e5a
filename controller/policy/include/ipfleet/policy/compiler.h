// The policy compiler: a pure function from an inventory snapshot to one PolicyBundle per host.
//
// Guarantees (each one tested in tests/controller_policy/):
// - deterministic: the same snapshot (and key source state) yields byte-identical bundles;
// - both ends of a tunnel carry the same proposal and mirrored selectors, the same reqid, and
//   exactly one of them (the lower host name) is the initiator;
// - every bundle carries the bypass rules (controller path, IKE 500/4500, ICMPv6 ND 133-137,
//   operator exemptions) with priorities below every protecting policy;
// - a snapshot whose selectors would capture the controller path is refused, naming the tunnel.
//
// The bundle's version, CA chain and CRL are left empty: the rollout engine fills them when it signs.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include <absl/functional/function_ref.h>
#include <google/protobuf/message.h>

#include "ipfleet/common/status.h"
#include "ipfleet/policy/inventory.h"
#include "ipfleet/policy/key_source.h"
#include "ipfleet/v1/types.pb.h"

namespace ipfleet::policy {

// Reqids the controller hands out. The agent's kernel layer owns reqids in this range (policies and
// SAs it did not create are left alone). 0x1F000000 + a stable per-tunnel hash, probed on collision.
inline constexpr uint32_t kReqidBase = 0x1F000000;
inline constexpr uint32_t kReqidSpan = 0x01000000;

// Bypass rules get priorities from kBypassPriorityBase upwards and never reach
// kProtectPriorityFloor; the agent installs protecting policies at or above the floor (lower wins).
inline constexpr uint32_t kBypassPriorityBase = 100;
inline constexpr uint32_t kProtectPriorityFloor = 1000;

struct CompileResult {
  // One bundle per ipfleet host in the snapshot (hosts without tunnels still get the bypass rules).
  std::map<std::string, v1::PolicyBundle> bundles;
  // Keys of every static-key tunnel as compiled (reused or fresh): the caller persists them so the
  // next generation reuses them unless rotation is requested.
  std::map<std::string, StaticKeyMaterial> static_keys;
};

// The whole result as protobuf trees (tests, tools). At 10,000 hosts that is ~150 MiB of trees
// against 24 MB of serialized bundles; the controller uses CompileEach.
absl::StatusOr<CompileResult> Compile(const InventorySnapshot& snapshot, KeySource& keys);

// The same compile, handing each host's bundle to `sink` in host-name order, one at a time (the
// bundle is reused for the next host after `sink` returns). The snapshot is checked in full before
// the first call, so a refused snapshot never reaches `sink`. A sink error stops the compile and is
// returned. Returns the static keys, as CompileResult::static_keys.
using BundleSink = absl::FunctionRef<absl::Status(const std::string& host, const v1::PolicyBundle& bundle)>;
absl::StatusOr<std::map<std::string, StaticKeyMaterial>> CompileEach(const InventorySnapshot& snapshot, KeySource& keys,
                                                                     BundleSink sink);

// Deterministic protobuf serialization (stable field and map order) used for hashing and signing.
std::string SerializeDeterministic(const google::protobuf::Message& message);
// The same into `out`, which holds exactly `size` bytes: `size` is what message.ByteSizeLong()
// returned just before (it also caches the sizes of nested messages this relies on).
void SerializeDeterministicWithCachedSizes(const google::protobuf::Message& message, char* out, size_t size);

}  // namespace ipfleet::policy
