// charon-vs-charon IKE establishment rate in the interop topology (two namespaces over veth), the peer figure
// for bench/ike: complete IKE_SA + first CHILD_SA establishments per second with ECDSA P-256 certificates,
// Curve25519 and AES-GCM-128, plus charon's CPU time per establishment on each side.
//
// bench/ike can link `ipfleet_bench_ike_charon` and call RunCharonBench() to print the ratio in one run.
#pragma once

#include <memory>
#include <string>

#include "harness/charon.h"
#include "harness/ike_peer.h"
#include "harness/netns.h"
#include "harness/workdir.h"
#include "ipfleet/common/status.h"

namespace ipfleet::bench {

struct CharonBenchOptions {
  int count = 200;          // IKE_SAs to establish (each a distinct connection on the initiator)
  int cpu = 0;              // pin both charons to this CPU ("on one core"); -1: no pinning
  int threads = 16;         // charon worker threads
  int window = 8;           // initiates outstanding at once (0 = all)
  std::string ike_proposal = "aes128gcm16-prfsha256-x25519";
  std::string esp_proposal = "aes128gcm16";
  bool keep = false;        // keep the work dir (logs, configs)
  bool events = false;      // count child-updown events over VICI; false: count charon's log lines
};

struct CharonBenchResult {
  int established = 0;
  double wall_s = 0;
  double rate_per_s = 0;
  double cpu_ms_initiator = 0;  // charon CPU per establishment, initiator side
  double cpu_ms_responder = 0;
  std::string cert_issuer;      // "ipfleet-controller" or "openssl-cli"
  std::string peer = "charon_vs_charon";
  std::string ToString() const;
  std::string ToJson() const;
};

absl::StatusOr<CharonBenchResult> RunCharonBench(const CharonBenchOptions& options);

// The same measurement with our engine on both sides in the same topology: two ipfleet-ike-peer processes
// (`binary`, a Release build for meaningful numbers), the initiator configured with `count` tunnels and
// --initiate with the same window of outstanding initiates and the same CPU pin as charon's run. Wall time
// from the initiator's "listening" log line to its last "child_installed" event (log timestamps, ms); CPU
// from /proc as for charon, less the start-up CPU (config, certificates) the initiator reports when listening.
absl::StatusOr<CharonBenchResult> RunIkePeerBench(const CharonBenchOptions& options, const std::string& binary);

// The pairs as the two benchmarks above leave them, still running with `count` tunnels up, for
// benchmarks that go on from there (bench/ike_rekey). Destroying one stops the daemons and removes
// the namespaces.
struct CharonPairRun {
  std::unique_ptr<interop::WorkDir> work;
  std::unique_ptr<interop::NetnsPair> net;
  std::unique_ptr<interop::Charon> init, resp;  // connections b<i> / children c<i> on the initiator
  CharonBenchResult result;                     // the establishment figures
};
absl::StatusOr<std::unique_ptr<CharonPairRun>> EstablishCharonPair(const CharonBenchOptions& options);

struct IkePeerPairRun {
  std::unique_ptr<interop::WorkDir> work;
  std::unique_ptr<interop::NetnsPair> net;
  std::unique_ptr<interop::IkePeer> init, resp;  // tunnels b<i> on the initiator
  CharonBenchResult result;
};
absl::StatusOr<std::unique_ptr<IkePeerPairRun>> EstablishIkePeerPair(const CharonBenchOptions& options,
                                                                     const std::string& binary);

// User+system CPU of a whole process (all threads), in milliseconds.
absl::StatusOr<double> CpuMs(pid_t pid);

}  // namespace ipfleet::bench
