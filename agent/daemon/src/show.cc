#include "show.h"

#include <absl/strings/str_join.h>
#include <cstdio>
#include <ctime>
#include <iostream>

#include <google/protobuf/util/json_util.h>

#include "ipfleet/common/files.h"
#include "ipfleet/kernel/netlink_xfrm.h"
#include "ipfleet/v1/types.pb.h"

namespace ipfleet::agent::daemon {
namespace {

bool LoadReport(const Path& dir, v1::HealthReport* r) {
  auto bytes = files::Read(HealthFile(dir));
  if (!bytes.ok() || !r->ParseFromString(*bytes)) {
    std::cerr << "no health snapshot in " << HealthFile(dir) << " (is `ipfleet-agent run` running?)\n";
    return false;
  }
  return true;
}

const char* StateName(v1::SaState s) {
  switch (s) {
    case v1::SA_STATE_CONNECTING: return "connecting";
    case v1::SA_STATE_ESTABLISHED: return "established";
    case v1::SA_STATE_REKEYING: return "rekeying";
    case v1::SA_STATE_DELETING: return "deleting";
    case v1::SA_STATE_DOWN: return "down";
    default: return "-";
  }
}

}  // namespace

int Status(const Path& dir, bool json) {
  auto cfg = LoadConfig(dir);
  if (!cfg.ok()) {
    std::cerr << cfg.status().message() << "\n";
    return 2;
  }
  v1::HealthReport r;
  if (!LoadReport(dir, &r)) return 1;
  if (json) {
    std::string out;
    google::protobuf::util::JsonPrintOptions opt;
    opt.add_whitespace = true;
    (void)google::protobuf::util::MessageToJsonString(r, &out, opt);
    std::cout << out << "\n";
    return 0;
  }
  int up = 0;
  for (const auto& t : r.tunnels()) up += t.up();
  std::printf("host %s  controller %s  bundle v%llu  tunnels %d/%d up  stale SAs %u  forced renegotiations %llu  (report %llds old)\n",
              cfg->host.c_str(), absl::StrJoin(cfg->controllers, ",").c_str(), static_cast<unsigned long long>(r.bundle_version()), up,
              r.tunnels_size(), r.stale_sas(), static_cast<unsigned long long>(r.forced_renegotiations_total()),
              static_cast<long long>(std::time(nullptr) - r.at_unix()));
  std::printf("%-24s %-4s %-12s %-9s %-6s %-7s %s\n", "TUNNEL", "UP", "IKE", "CHILD_SAS", "STALE", "FORCED", "LAST_ERROR");
  for (const auto& t : r.tunnels()) {
    int stale = t.ike_sa().stale();
    for (const auto& c : t.child_sas()) stale += c.stale();
    std::printf("%-24s %-4s %-12s %-9d %-6d %-7llu %s\n", t.tunnel().c_str(), t.up() ? "yes" : "no",
                t.has_ike_sa() ? StateName(t.ike_sa().state()) : "-", t.child_sas_size(), stale,
                static_cast<unsigned long long>(t.forced_renegotiations()), t.last_error().c_str());
  }
  return 0;
}

int Sas(const Path& dir, bool kernel, bool policies) {
  if (kernel) {
    auto x = kernel::NewNetlinkXfrm();
    if (!x.ok()) {
      std::cerr << x.status().message() << "\n";
      return 1;
    }
    if (!policies) {
      auto sas = (*x)->DumpSas();
      if (!sas.ok()) {
        std::cerr << sas.status().message() << "\n";
        return 1;
      }
      for (const auto& s : *sas) {
        if (!kernel::IsOwned(s.params)) continue;  // only ours, like an agent-scoped setkey -D
        const auto& p = s.params;
        std::printf("%s %s\n\tesp mode=%s spi=%u(0x%08x) reqid=%u(0x%08x)\n\t%s\n\tcurrent: %llu(bytes) %llu(packets) integrity_failures=%u replay=%u\n",
                    p.src.ToString().c_str(), p.dst.ToString().c_str(), kernel::ToString(p.mode), p.spi, p.spi, p.reqid,
                    p.reqid, p.aead ? p.aead->name.c_str() : (p.crypt ? (p.crypt->name + " " + (p.auth ? p.auth->name : "")).c_str() : "-"),
                    static_cast<unsigned long long>(s.counters.bytes), static_cast<unsigned long long>(s.counters.packets),
                    s.counters.integrity_failures, s.counters.replay_failures);
      }
    } else {
      auto pols = (*x)->DumpPolicies();
      if (!pols.ok()) {
        std::cerr << pols.status().message() << "\n";
        return 1;
      }
      for (const auto& ps : *pols) {
        if (!kernel::IsOwned(ps.params)) continue;
        const auto& p = ps.params;
        std::printf("%s %s\n\tpriority=%u %s\n", p.selector.ToString().c_str(), kernel::ToString(p.dir), p.priority,
                    p.templates.empty() ? (p.action == kernel::PolicyAction::kAllow ? "none (bypass)" : "discard")
                                        : ("ipsec esp/" + std::string(kernel::ToString(p.templates[0].mode)) + " " +
                                           p.templates[0].src.ToString() + "-" + p.templates[0].dst.ToString())
                                              .c_str());
      }
    }
    return 0;
  }
  v1::HealthReport r;
  if (!LoadReport(dir, &r)) return 1;
  for (const auto& t : r.tunnels()) {
    if (t.has_ike_sa()) {
      const auto& i = t.ike_sa();
      std::printf("%s IKE_SA %s_i %s_r %s %s age=%llus last_heard=%llds remote=%s%s\n", t.tunnel().c_str(), i.spi_i().c_str(),
                  i.spi_r().c_str(), StateName(i.state()), i.suite().c_str(), static_cast<unsigned long long>(i.age_seconds()),
                  static_cast<long long>(i.last_heard_seconds()), i.remote_identity().c_str(), i.stale() ? " STALE" : "");
    }
    for (const auto& c : t.child_sas()) {
      std::printf("%s CHILD_SA in=%s out=%s %s %s %s===%s\n\tbytes in/out %llu/%llu packets in/out %llu/%llu integrity_errors=%llu age=%llus%s%s\n",
                  t.tunnel().c_str(), c.spi_in().c_str(), c.spi_out().c_str(), StateName(c.state()), c.suite().c_str(),
                  c.local_ts().c_str(), c.remote_ts().c_str(), static_cast<unsigned long long>(c.counters().bytes_in()),
                  static_cast<unsigned long long>(c.counters().bytes_out()), static_cast<unsigned long long>(c.counters().packets_in()),
                  static_cast<unsigned long long>(c.counters().packets_out()),
                  static_cast<unsigned long long>(c.counters().integrity_errors()), static_cast<unsigned long long>(c.age_seconds()),
                  c.stale() ? " STALE:" : "", c.stale_reason().c_str());
    }
  }
  return 0;
}

}  // namespace ipfleet::agent::daemon
