// ipfleet-bench-ike-rekey: CHILD_SA rekeys per second and a 20-host mesh start, charon and ours in the same
// namespaces, with the ratios (see ike_rekey_bench.h, docs/BENCHMARKS.md). Needs root and charon.
#include <iostream>

#include <CLI/CLI.hpp>

#include "ike_rekey_bench.h"

int main(int argc, char** argv) {
  namespace b = ipfleet::bench;
  b::CharonBenchOptions o;
  o.count = 100;
  int rounds = 3, hosts = 20, mesh_cpu = -1;
  std::string ours;
  bool skip_rekey = false, skip_mesh = false;
  CLI::App app{"IKE rekey rate and mesh-start cost: charon beside ipfleet-ike-peer"};
  app.add_option("--ours", ours, "ipfleet-ike-peer binary (a Release build)")->required();
  app.add_option("--tunnels", o.count, "IKE_SAs (one CHILD_SA each) for the rekey rate");
  app.add_option("--rounds", rounds, "rekeys of all CHILD_SAs per side");
  app.add_option("--cpu", o.cpu, "pin the rekey pairs to this CPU (-1: none)");
  app.add_option("--esp", o.esp_proposal, "ESP proposal of the rekey pairs; a DH group means PFS rekeys, "
                                           "e.g. aes128gcm16-x25519");
  app.add_option("--hosts", hosts, "hosts in the mesh");
  app.add_option("--mesh-cpu", mesh_cpu, "pin every mesh daemon to this CPU (-1: none)");
  app.add_flag("--no-rekey", skip_rekey);
  app.add_flag("--no-mesh", skip_mesh);
  app.add_flag("--keep", o.keep, "keep work dirs (logs)");
  CLI11_PARSE(app, argc, argv);
  if (!skip_rekey) {
    auto c = b::CharonRekeyRate(o, rounds);
    if (!c.ok()) return std::cerr << "charon rekey: " << c.status() << "\n", 1;
    std::cout << b::ToString(*c) << std::endl;
    auto u = b::OursRekeyRate(o, ours, rounds);
    if (!u.ok()) return std::cerr << "ours rekey: " << u.status() << "\n", 1;
    std::cout << b::ToString(*u) << std::endl;
    std::cout << "ratio ours/charon rekeys_per_s=" << u->per_s / c->per_s << std::endl;
  }
  if (!skip_mesh) {
    auto c = b::CharonMeshStart(hosts, mesh_cpu, o.keep);
    if (!c.ok()) return std::cerr << "charon mesh: " << c.status() << "\n", 1;
    std::cout << b::ToString(*c) << std::endl;
    auto u = b::OursMeshStart(hosts, mesh_cpu, ours, o.keep);
    if (!u.ok()) return std::cerr << "ours mesh: " << u.status() << "\n", 1;
    std::cout << b::ToString(*u) << std::endl;
    std::cout << "ratio charon/ours all_up_s=" << c->all_up_s / u->all_up_s
              << " datagrams_settled=" << static_cast<double>(c->datagrams_settled) / u->datagrams_settled
              << std::endl;
  }
  return 0;
}
