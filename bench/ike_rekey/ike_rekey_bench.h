// bench/ike_rekey: CHILD_SA rekeys per second and the cost of a full-mesh start, charon and ours measured the
// same way in the same namespace topology (tests/interop/harness), printed side by side with their ratio.
#pragma once

#include <string>

#include "charon_bench.h"

namespace ipfleet::bench {

// One side's figures.
struct RekeyFigures {
  std::string peer;        // "charon" or "ours"
  int rekeys = 0;          // CHILD_SA rekeys completed (initiator side)
  double wall_s = 0;       // from the first rekey request until the last completed
  double per_s = 0;
  double cpu_ms_initiator = 0, cpu_ms_responder = 0;  // per rekey
};

// `tunnels` IKE_SAs with one CHILD_SA each are established (as ike_charon does, window 8), then every CHILD_SA
// is rekeyed at once by the initiator (charon: VICI "rekey" per child; ours: SIGRTMIN), `rounds` times.
absl::StatusOr<RekeyFigures> CharonRekeyRate(const CharonBenchOptions& o, int rounds);
absl::StatusOr<RekeyFigures> OursRekeyRate(const CharonBenchOptions& o, const std::string& binary, int rounds);

struct MeshFigures {
  std::string peer;
  int hosts = 0, tunnels = 0;
  double all_up_s = 0;             // first initiate -> every host has a CHILD_SA for each of its tunnels
  uint64_t datagrams_to_up = 0;    // UDP datagrams sent by all hosts until then (/proc/net/snmp per namespace)
  uint64_t datagrams_settled = 0;  // ... until the count stood still for 1 s (duplicates deleted or kept)
  int ike_sas = 0;                 // IKE_SAs left, counted once per tunnel end (2 x tunnels = one per tunnel)
};

// `hosts` namespaces on a bridge, every pair a tunnel (ECDSA certificates, X25519, AES-GCM-128), every host
// initiating all of its tunnels at the same instant (charon: VICI initiate on all, ours: SIGHUP to all).
absl::StatusOr<MeshFigures> CharonMeshStart(int hosts, int cpu, bool keep);
absl::StatusOr<MeshFigures> OursMeshStart(int hosts, int cpu, const std::string& binary, bool keep);

std::string ToString(const RekeyFigures& f);
std::string ToString(const MeshFigures& f);

}  // namespace ipfleet::bench
