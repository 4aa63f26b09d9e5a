// ipfleet status, ipfleet sas HOST
#include <cstdio>
#include <ctime>

#include "commands.h"
#include "ipfleet/controller/views/json.h"
#include "output.h"

namespace ipfleet::cli {
namespace {

const char* StateName(v1::SaState s) {
  switch (s) {
    case v1::SA_STATE_CONNECTING: return "connecting";
    case v1::SA_STATE_ESTABLISHED: return "established";
    case v1::SA_STATE_REKEYING: return "rekeying";
    case v1::SA_STATE_DELETING: return "deleting";
    case v1::SA_STATE_DOWN: return "down";
    default: return "unknown";
  }
}

std::string Secs(int64_t s) { return s < 0 ? "never" : std::to_string(s) + "(s)"; }

// Like `setkey -D`: one block per SA, with the fields an operator debugging a tunnel looks at.
void PrintSas(const v1::HealthReport& r) {
  std::printf("host %s  bundle %llu  reported %s  stale SAs %u  forced renegotiations %llu\n", r.host().c_str(),
              static_cast<unsigned long long>(r.bundle_version()), FormatTime(r.at_unix()).c_str(), r.stale_sas(),
              static_cast<unsigned long long>(r.forced_renegotiations_total()));
  for (const auto& t : r.tunnels()) {
    std::printf("\ntunnel %s  %s%s%s\n", t.tunnel().c_str(), t.up() ? "up" : "DOWN",
                t.last_error().empty() ? "" : "  last error: ", t.last_error().c_str());
    if (t.has_ike_sa()) {
      const auto& i = t.ike_sa();
      std::printf("\tike spi_i=%s spi_r=%s state=%s %s suite=%s\n", i.spi_i().c_str(), i.spi_r().c_str(),
                  StateName(i.state()), i.initiator() ? "initiator" : "responder", i.suite().c_str());
      std::printf("\t\tage: %llu(s)\trekeys: %u\tlast heard: %s\tpeer: %s%s%s\n",
                  static_cast<unsigned long long>(i.age_seconds()), i.rekeys(), Secs(i.last_heard_seconds()).c_str(),
                  i.remote_identity().c_str(), i.stale() ? "\tSTALE: " : "", i.stale_reason().c_str());
    }
    for (const auto& c : t.child_sas()) {
      std::printf("\tesp spi_in=0x%s spi_out=0x%s state=%s suite=%s%s%s\n", c.spi_in().c_str(), c.spi_out().c_str(),
                  StateName(c.state()), c.suite().c_str(), c.stale() ? " STALE: " : "", c.stale_reason().c_str());
      std::printf("\t\tts: %s === %s\n", c.local_ts().c_str(), c.remote_ts().c_str());
      const auto& k = c.counters();
      std::printf("\t\tin:  %llu(bytes) %llu(packets)\tout: %llu(bytes) %llu(packets)\n",
                  static_cast<unsigned long long>(k.bytes_in()), static_cast<unsigned long long>(k.packets_in()),
                  static_cast<unsigned long long>(k.bytes_out()), static_cast<unsigned long long>(k.packets_out()));
      std::printf("\t\treplay errors: %llu\tintegrity errors: %llu\n",
                  static_cast<unsigned long long>(k.replay_errors()),
                  static_cast<unsigned long long>(k.integrity_errors()));
      std::printf("\t\tage: %llu(s)\trekeys: %u\tlast in: %s\tlast out: %s\n",
                  static_cast<unsigned long long>(c.age_seconds()), c.rekeys(), Secs(c.last_in_seconds()).c_str(),
                  Secs(c.last_out_seconds()).c_str());
    }
  }
  if (!r.forced().empty()) {
    std::printf("\nrecent forced renegotiations (oldest first):\n");
    for (const auto& f : r.forced()) {
      std::printf("\t%s  %s  %s  %s\n", FormatTime(f.at_unix()).c_str(), f.tunnel().c_str(), f.reason().c_str(),
                  f.detail().c_str());
    }
  }
}

}  // namespace

void AddStatusCommands(CLI::App& app, State& state) {
  {
    CLI::App* c = app.add_subcommand(
        "status", "One line per host: connected, last seen, bundle version, tunnels up/total, stale SAs, forced "
                  "renegotiations (from the host's latest health report)");
    c->callback([&state] {
      Client client(state.global);
      v1::FleetStatusResponse resp;
      grpc::Status st = client.stub().FleetStatus(client.Context().get(), v1::FleetStatusRequest(), &resp);
      if (!st.ok()) {
        state.exit_code = client.Fail("status", st);
        return;
      }
      if (state.global.json()) {
        PrintJson(views::FleetStatusJson(resp));
        return;
      }
      int64_t now = std::time(nullptr);
      Table t({"HOST", "CONNECTED", "REPLICA", "LAST-SEEN", "BUNDLE", "TUNNELS", "STALE-SAS", "FORCED-RENEG"});
      for (const auto& h : resp.hosts()) {
        t.Add({h.host(), h.connected() ? "yes" : "no", h.replica().empty() ? "-" : h.replica(),
               Ago(h.last_seen_unix(), now), std::to_string(h.bundle_version()),
               std::to_string(h.tunnels_up()) + "/" + std::to_string(h.tunnels_total()), std::to_string(h.stale_sas()),
               std::to_string(h.forced_renegotiations())});
      }
      t.Print();
      std::printf("generation %llu, %d host(s)\n", static_cast<unsigned long long>(resp.generation()),
                  resp.hosts_size());
      for (const auto& r : resp.replicas()) {
        std::printf("replica %s%s  %s  %s  heartbeat %s\n", r.id().c_str(), r.id() == resp.answered_by() ? " (answered)" : "",
                    r.endpoint().c_str(), r.leader() ? "leader" : (r.alive() ? "standby" : "down"),
                    Ago(r.heartbeat_unix(), now).c_str());
      }
    });
  }
  {
    auto host = std::make_shared<std::string>();
    CLI::App* c = app.add_subcommand("sas", "The SA table HOST last reported (like `setkey -D`)");
    c->add_option("host", *host, "Host name")->required();
    c->callback([&state, host] {
      v1::HostSasRequest req;
      req.set_host(*host);
      Client client(state.global);
      v1::HostSasResponse resp;
      grpc::Status st = client.stub().HostSas(client.Context().get(), req, &resp);
      if (!st.ok()) {
        state.exit_code = client.Fail("sas", st);
        return;
      }
      if (state.global.json()) {
        PrintJson(views::HostSasJson(resp));
        return;
      }
      if (!resp.has_report() || resp.report().at_unix() == 0) {
        std::printf("%s has not sent a health report yet.\n", host->c_str());
        return;
      }
      PrintSas(resp.report());
    });
  }
}

}  // namespace ipfleet::cli
