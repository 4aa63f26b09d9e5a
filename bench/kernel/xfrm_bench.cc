// Installs and deletes N "SA pairs with their policies" three ways in one run and prints the rates
// side by side: ipfleet's netlink layer (one Apply() per phase), `ip -batch` on the same
// operations, and `ip xfrm` executed once per operation (sampled: the first --per-op-sample ops of
// each phase, since at a few hundred ops/s the full run would take minutes).
// A pair = out SA + in SA (with --sas) + out policy + in policy. On a kernel without ESP (this
// machine) run without --sas: the policies alone. Each method starts from and returns to an empty
// table, checked by a dump, so all three do the same work.
//
//   xfrm_bench [--pairs 10000] [--sas] [--netns NAME | (creates its own)] [--per-op-sample 2000]
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "ipfleet/kernel/netlink_xfrm.h"

extern char** environ;
namespace k = ipfleet::kernel;

namespace {

using Clock = std::chrono::steady_clock;

struct Op {
  k::BatchOp op;
  std::vector<std::string> ip_args;  // the same operation for iproute2 (after "ip -n NS")
};

std::string Hex(const std::vector<uint8_t>& b) {
  std::string s = "0x";
  char t[3];
  for (uint8_t c : b) {
    std::snprintf(t, sizeof t, "%02x", c);
    s += t;
  }
  return s;
}

std::string Addr(int i, int base) {  // 10.x.y.z /32 unique per i
  char buf[32];
  std::snprintf(buf, sizeof buf, "%d.%d.%d.%d", base, (i >> 16) & 255, (i >> 8) & 255, i & 255);
  return buf;
}

void MakeOps(int pairs, bool sas, std::vector<Op>* install, std::vector<Op>* remove) {
  const auto a = k::IpAddress::MustParse("192.0.2.1");
  const auto b = k::IpAddress::MustParse("192.0.2.2");
  std::vector<uint8_t> key(20);
  for (int i = 0; i < pairs; ++i) {
    uint32_t reqid = k::kOwnedReqidFirst + static_cast<uint32_t>(i);
    std::string rq = std::to_string(reqid);
    std::string local = Addr(i, 10), remote = Addr(i, 11);
    if (sas) {
      for (int dir = 0; dir < 2; ++dir) {
        k::SaParams sa;
        sa.src = dir == 0 ? a : b;
        sa.dst = dir == 0 ? b : a;
        sa.spi = 0x10000000u + static_cast<uint32_t>(2 * i + dir);
        sa.reqid = reqid;
        for (size_t j = 0; j < key.size(); ++j) key[j] = static_cast<uint8_t>(i * 7 + j + dir);
        sa.aead = k::AeadAlgo{"rfc4106(gcm(aes))", key, 128};
        std::string spi = std::to_string(sa.spi);
        install->push_back({k::AddSa{sa},
                            {"xfrm", "state", "add", "src", sa.src.ToString(), "dst", sa.dst.ToString(),
                             "proto", "esp", "spi", spi, "reqid", rq, "mode", "tunnel", "aead",
                             "rfc4106(gcm(aes))", Hex(key), "128"}});
        remove->push_back({k::DeleteSa{sa.id()},
                           {"xfrm", "state", "delete", "src", sa.src.ToString(), "dst",
                            sa.dst.ToString(), "proto", "esp", "spi", spi}});
      }
    }
    for (int dir = 0; dir < 2; ++dir) {
      k::PolicyParams p;
      p.selector.src = k::IpPrefix::MustParse(dir == 0 ? local : remote);
      p.selector.dst = k::IpPrefix::MustParse(dir == 0 ? remote : local);
      p.dir = dir == 0 ? k::Direction::kOut : k::Direction::kIn;
      k::PolicyTemplate t;
      t.src = dir == 0 ? a : b;
      t.dst = dir == 0 ? b : a;
      t.reqid = reqid;
      p.templates.push_back(t);
      std::string d = dir == 0 ? "out" : "in";
      install->push_back({k::AddPolicy{p},
                          {"xfrm", "policy", "add", "src", p.selector.src.ToString(), "dst",
                           p.selector.dst.ToString(), "dir", d, "tmpl", "src", t.src.ToString(), "dst",
                           t.dst.ToString(), "proto", "esp", "reqid", rq, "mode", "tunnel"}});
      remove->push_back({k::DeletePolicy{p.id()},
                         {"xfrm", "policy", "delete", "src", p.selector.src.ToString(), "dst",
                          p.selector.dst.ToString(), "dir", d}});
    }
  }
}

int Spawn(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const auto& s : argv) args.push_back(const_cast<char*>(s.c_str()));
  args.push_back(nullptr);
  pid_t pid;
  if (posix_spawnp(&pid, args[0], nullptr, nullptr, args.data(), environ) != 0) return -1;
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

struct Counts {
  size_t sas = 0, policies = 0;
};

Counts Count(k::Xfrm& x) {
  Counts c;
  auto s = x.DumpSas();
  auto p = x.DumpPolicies();
  if (s.ok()) c.sas = s->size();
  if (p.ok()) c.policies = p->size();
  return c;
}

double Seconds(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

struct Result {
  std::string name;
  double install_rate = 0, delete_rate = 0;  // operations per second
  size_t ops_measured = 0;
  bool ok = true;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("xfrm_bench: ipfleet netlink layer vs ip -batch vs ip per operation");
  int pairs = 10000;
  bool sas = false;
  std::string netns;
  int sample = 2000;
  app.add_option("--pairs", pairs, "SA pairs (each: 2 SAs with --sas, 2 policies)");
  app.add_flag("--sas", sas, "install SAs too (needs a kernel with ESP: the lab)");
  app.add_option("--netns", netns, "existing namespace to use (default: a fresh one)");
  app.add_option("--per-op-sample", sample, "ops per phase for the one-ip-per-op method");
  CLI11_PARSE(app, argc, argv);

  bool own_ns = netns.empty();
  if (own_ns) {
    netns = "ipfleet-bench-" + std::to_string(getpid());
    if (Spawn({"ip", "netns", "add", netns}) != 0) {
      std::fprintf(stderr, "cannot create netns %s\n", netns.c_str());
      return 1;
    }
  }
  k::NetlinkOptions opts;
  opts.netns_path = "/run/netns/" + netns;
  auto xfrm = k::NewNetlinkXfrm(opts);
  if (!xfrm.ok()) {
    std::fprintf(stderr, "%s\n", xfrm.status().ToString().c_str());
    return 1;
  }
  k::Xfrm& x = **xfrm;
  std::vector<Op> install, remove;
  MakeOps(pairs, sas, &install, &remove);
  std::printf("xfrm_bench: pairs=%d sas=%s ops_per_phase=%zu netns=%s\n", pairs, sas ? "yes" : "no",
              install.size(), netns.c_str());
  Counts expect_full{sas ? static_cast<size_t>(2 * pairs) : 0, static_cast<size_t>(2 * pairs)};
  auto check = [&](const char* what, Counts want) {
    Counts c = Count(x);
    bool ok = c.sas == want.sas && c.policies == want.policies;
    if (!ok) {
      std::printf("  CHECK FAILED after %s: sas=%zu policies=%zu, want %zu/%zu\n", what, c.sas,
                  c.policies, want.sas, want.policies);
    }
    return ok;
  };
  std::vector<Result> results;

  // 1. ip -batch: one process per phase reading every operation from a file.
  {
    Result r{"ip -batch"};
    std::string file = "/tmp/xfrm_bench_" + std::to_string(getpid());
    auto write = [&](const std::vector<Op>& ops) {
      std::ofstream f(file);
      for (const auto& op : ops) {
        for (size_t i = 0; i < op.ip_args.size(); ++i) f << (i ? " " : "") << op.ip_args[i];
        f << "\n";
      }
    };
    write(install);
    auto t0 = Clock::now();
    r.ok &= Spawn({"ip", "-n", netns, "-batch", file}) == 0;
    r.install_rate = install.size() / Seconds(t0);
    r.ok &= check("ip -batch install", expect_full);
    write(remove);
    t0 = Clock::now();
    r.ok &= Spawn({"ip", "-n", netns, "-batch", file}) == 0;
    r.delete_rate = remove.size() / Seconds(t0);
    r.ok &= check("ip -batch delete", {});
    r.ops_measured = install.size() + remove.size();
    std::remove(file.c_str());
    results.push_back(r);
  }

  // 2. The layer: every operation of a phase in one Apply() (many per sendmsg, acks by seq).
  {
    Result r{"ipfleet layer"};
    std::vector<k::BatchOp> ops;
    for (const auto& op : install) ops.push_back(op.op);
    auto t0 = Clock::now();
    auto res = x.Apply(ops);
    r.install_rate = ops.size() / Seconds(t0);
    for (const auto& s : res) {
      if (!s.ok()) {
        std::printf("  layer install error: %s\n", s.ToString().c_str());
        r.ok = false;
        break;
      }
    }
    r.ok &= check("layer install", expect_full);
    ops.clear();
    for (const auto& op : remove) ops.push_back(op.op);
    t0 = Clock::now();
    res = x.Apply(ops);
    r.delete_rate = ops.size() / Seconds(t0);
    for (const auto& s : res) {
      if (!s.ok()) {
        std::printf("  layer delete error: %s\n", s.ToString().c_str());
        r.ok = false;
        break;
      }
    }
    r.ok &= check("layer delete", {});
    r.ops_measured = install.size() + remove.size();
    results.push_back(r);
  }

  // 3. ip xfrm once per operation (fork+exec each), over the first `sample` ops of each phase.
  {
    Result r{"ip per op"};
    size_t n = std::min(install.size(), static_cast<size_t>(sample));
    auto run = [&](const std::vector<Op>& ops, size_t count) {
      auto t0 = Clock::now();
      for (size_t i = 0; i < count; ++i) {
        std::vector<std::string> argv = {"ip", "-n", netns};
        argv.insert(argv.end(), ops[i].ip_args.begin(), ops[i].ip_args.end());
        if (Spawn(argv) != 0) r.ok = false;
      }
      return count / Seconds(t0);
    };
    r.install_rate = run(install, n);
    // Delete what was installed (sampled ops come in the same order in both phases).
    r.delete_rate = run(remove, n);
    r.ok &= check("ip per op", {});
    r.ops_measured = 2 * n;
    results.push_back(r);
  }

  const Result& batch = results[0];
  std::printf("\n%-14s %14s %14s %10s %10s %s\n", "method", "install ops/s", "delete ops/s",
              "x ip-batch", "(delete)", "ops measured");
  for (const auto& r : results) {
    std::printf("%-14s %14.0f %14.0f %10.2f %10.2f %zu%s\n", r.name.c_str(), r.install_rate,
                r.delete_rate, r.install_rate / batch.install_rate, r.delete_rate / batch.delete_rate,
                r.ops_measured, r.ok ? "" : "  (CHECK FAILED)");
  }
  if (own_ns) Spawn({"ip", "netns", "del", netns});
  bool all_ok = true;
  for (const auto& r : results) all_ok &= r.ok;
  return all_ok ? 0 : 1;
}
