// ipfleet-bench-ike-charon: charon-vs-charon establishment rate (see charon_bench.h). Needs root.
//   build-rel/bench/ike_charon/ipfleet-bench-ike-charon --count 300 --cpu 0
#include <iostream>

#include <CLI/CLI.hpp>

#include "charon_bench.h"

int main(int argc, char** argv) {
  ipfleet::bench::CharonBenchOptions o;
  bool json = false;
  int rounds = 1;
  CLI::App app{"charon-vs-charon IKE_SA+CHILD_SA establishments per second (ECDSA P-256, X25519, AES-GCM-128)"};
  app.add_option("--count", o.count, "establishments per round");
  app.add_option("--rounds", rounds, "rounds (fresh charons each); every round is printed");
  app.add_option("--cpu", o.cpu, "pin both charons to this CPU; -1 for no pinning");
  app.add_option("--window", o.window, "initiates outstanding at once (0: all)");
  app.add_option("--threads", o.threads, "charon worker threads");
  app.add_flag("--json", json, "print one JSON object per round");
  app.add_flag("--keep", o.keep, "keep the work dir (charon logs)");
  bool use_events = false;
  app.add_flag("--events", use_events,
               "count VICI child-updown events instead of polling list-sas (stalls on charon 5.9.8 here)");
  std::string ours;
  app.add_option("--ours", ours,
                 "also run ipfleet-ike-peer (this binary; a Release build) vs itself in the same topology and "
                 "print the ratio");
  CLI11_PARSE(app, argc, argv);
  o.events = use_events;
  for (int i = 0; i < rounds; ++i) {
    auto r = ipfleet::bench::RunCharonBench(o);
    if (!r.ok()) {
      std::cerr << "charon bench failed: " << r.status() << "\n";
      return 1;
    }
    std::cout << (json ? r->ToJson() : r->ToString()) << std::endl;
    if (!ours.empty()) {
      auto u = ipfleet::bench::RunIkePeerBench(o, ours);
      if (!u.ok()) {
        std::cerr << "ours bench failed: " << u.status() << "\n";
        return 1;
      }
      std::cout << (json ? u->ToJson() : u->ToString()) << std::endl;
      std::cout << "ratio ours/charon establishments_per_s=" << u->rate_per_s / r->rate_per_s << std::endl;
    }
  }
  return 0;
}
