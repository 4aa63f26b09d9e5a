// ipfleet apply, rollout, flush-sa, rekey, command, tunnels, peers: the CLI side of the fleet
// RPCs that controller part 2 implements (a controller without them answers UNIMPLEMENTED,
// exit code 7).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include "commands.h"
#include "ipfleet/controller/views/json.h"
#include "output.h"

namespace ipfleet::cli {
namespace {

const char* RolloutStateName(v1::RolloutState s) {
  switch (s) {
    case v1::ROLLOUT_STATE_RUNNING: return "running";
    case v1::ROLLOUT_STATE_SUCCEEDED: return "succeeded";
    case v1::ROLLOUT_STATE_HALTED: return "halted";
    case v1::ROLLOUT_STATE_ABORTED: return "aborted";
    default: return "unknown";
  }
}

const char* HostStateName(v1::HostRolloutState s) {
  switch (s) {
    case v1::HOST_ROLLOUT_STATE_PENDING: return "pending";
    case v1::HOST_ROLLOUT_STATE_SENT: return "sent";
    case v1::HOST_ROLLOUT_STATE_DONE: return "done";
    case v1::HOST_ROLLOUT_STATE_FAILED: return "failed";
    case v1::HOST_ROLLOUT_STATE_TIMED_OUT: return "timed-out";
    default: return "unknown";
  }
}

const char* CommandStateName(v1::CommandState s) {
  switch (s) {
    case v1::COMMAND_STATE_QUEUED: return "queued";
    case v1::COMMAND_STATE_DELIVERED: return "delivered";
    case v1::COMMAND_STATE_SUCCEEDED: return "succeeded";
    case v1::COMMAND_STATE_FAILED: return "failed";
    default: return "unknown";
  }
}

void PrintRollout(const State& s, const v1::RolloutStatus& r) {
  if (s.global.json()) {
    PrintJson(views::RolloutJson(r));
    return;
  }
  std::printf("rollout %llu  generation %llu  %s  wave %u/%u  started %s%s%s\n",
              static_cast<unsigned long long>(r.id()), static_cast<unsigned long long>(r.generation()),
              RolloutStateName(r.state()), r.current_wave(), r.waves(), FormatTime(r.started_unix()).c_str(),
              r.error().empty() ? "" : "  error: ", r.error().c_str());
  Table t({"HOST", "WAVE", "VERSION", "STATE", "ERROR"});
  for (const auto& h : r.hosts()) {
    t.Add({h.host(), std::to_string(h.wave()), std::to_string(h.version()), HostStateName(h.state()),
           h.error().empty() ? "-" : h.error()});
  }
  t.Print();
}

int RolloutExit(const v1::RolloutStatus& r) {
  return r.state() == v1::ROLLOUT_STATE_HALTED || r.state() == v1::ROLLOUT_STATE_ABORTED ? kFailed : kOk;
}

// Polls GetRollout until the rollout leaves RUNNING, drawing a progress bar on a terminal.
int WaitRollout(State& s, Client& client, uint64_t id) {
  bool tty = ::isatty(STDERR_FILENO) && !s.global.json();
  while (true) {
    v1::GetRolloutRequest req;
    req.set_id(id);
    v1::RolloutStatus r;
    grpc::Status st = client.stub().GetRollout(client.Context().get(), req, &r);
    if (!st.ok()) return client.Fail("rollout status", st);
    int done = 0;
    for (const auto& h : r.hosts()) done += h.state() == v1::HOST_ROLLOUT_STATE_DONE;
    int total = r.hosts_size();
    if (tty) {
      int width = 40, filled = total ? done * width / total : width;
      std::fprintf(stderr, "\r[%s%s] %d/%d hosts  wave %u/%u  %s   ", std::string(filled, '#').c_str(),
                   std::string(width - filled, '.').c_str(), done, total, r.current_wave(), r.waves(),
                   RolloutStateName(r.state()));
    }
    if (r.state() != v1::ROLLOUT_STATE_RUNNING) {
      if (tty) std::fprintf(stderr, "\n");
      PrintRollout(s, r);
      return RolloutExit(r);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

void PrintCommand(const State& s, const v1::CommandStatus& c) {
  if (s.global.json()) {
    PrintJson(views::ProtoToJson(c));
    return;
  }
  std::printf("command %llu on %s: %s\n", static_cast<unsigned long long>(c.command().id()), c.host().c_str(),
              CommandStateName(c.state()));
  if (c.has_result()) {
    const auto& r = c.result();
    if (!r.error().empty()) std::printf("  error: %s\n", r.error().c_str());
    std::printf("  recovery: %llu ms\n", static_cast<unsigned long long>(r.recovery_ms()));
    Table t({"", "TUNNEL", "SPI-IN", "SPI-OUT"});
    for (const auto& x : r.sas_before()) t.Add({"before", x.tunnel(), x.spi_in(), x.spi_out()});
    for (const auto& x : r.sas_after()) t.Add({"after", x.tunnel(), x.spi_in(), x.spi_out()});
    t.Print();
  }
}

int CommandExit(const v1::CommandStatus& c) {
  return c.state() == v1::COMMAND_STATE_FAILED ? kFailed : kOk;
}

void AddSendCommand(CLI::App& app, State& state, const char* name, const char* help, v1::CommandKind kind) {
  struct Args {
    std::string host, tunnel, peer;
    bool wait = false;
    int wait_seconds = 60;
  };
  auto a = std::make_shared<Args>();
  CLI::App* c = app.add_subcommand(name, help);
  c->add_option("host", a->host, "Host to run it on")->required();
  c->add_option("--tunnel", a->tunnel, "Only this tunnel");
  c->add_option("--peer", a->peer, "Only tunnels to this peer");
  c->add_flag("--wait", a->wait, "Wait for the result");
  c->add_option("--wait-timeout", a->wait_seconds, "Seconds to wait with --wait")->capture_default_str();
  c->callback([&state, a, kind, name] {
    v1::SendCommandRequest req;
    req.set_host(a->host);
    req.set_kind(kind);
    req.set_tunnel(a->tunnel);
    req.set_peer(a->peer);
    Client client(state.global);
    v1::CommandStatus cs;
    grpc::Status st = client.stub().SendCommand(client.Context().get(), req, &cs);
    if (!st.ok()) {
      state.exit_code = client.Fail(name, st);
      return;
    }
    if (!a->wait) {
      PrintCommand(state, cs);
      return;
    }
    v1::GetCommandRequest g;
    g.set_id(cs.command().id());
    g.set_wait_seconds(static_cast<uint32_t>(a->wait_seconds));
    st = client.stub().GetCommand(client.Context(a->wait_seconds).get(), g, &cs);
    if (!st.ok()) {
      state.exit_code = client.Fail(name, st);
      return;
    }
    PrintCommand(state, cs);
    if (cs.state() != v1::COMMAND_STATE_SUCCEEDED && cs.state() != v1::COMMAND_STATE_FAILED) {
      std::fprintf(stderr, "ipfleet: no result after %d s (command %llu is %s); check later with `ipfleet command %llu`\n",
                   a->wait_seconds, static_cast<unsigned long long>(cs.command().id()), CommandStateName(cs.state()),
                   static_cast<unsigned long long>(cs.command().id()));
      state.exit_code = kFailed;
      return;
    }
    state.exit_code = CommandExit(cs);
  });
}

}  // namespace

void AddFleetCommands(CLI::App& app, State& state) {
  // apply
  {
    auto file = std::make_shared<std::string>();
    auto dry = std::make_shared<bool>(false);
    CLI::App* c = app.add_subcommand("apply", "Make the inventory match a fleet file (one transaction, new generation)");
    c->add_option("-f,--file", *file, "fleet.yaml")->required()->check(CLI::ExistingFile);
    c->add_flag("--dry-run", *dry, "Only show which tunnels and host bundles would change");
    c->callback([&state, file, dry] {
      std::ifstream in(*file);
      std::stringstream ss;
      ss << in.rdbuf();
      v1::ApplyRequest req;
      req.set_fleet_yaml(ss.str());
      req.set_file_name(*file);
      req.set_dry_run(*dry);
      Client client(state.global);
      v1::ApplyResponse resp;
      grpc::Status st = client.stub().Apply(client.Context().get(), req, &resp);
      if (!st.ok()) {
        state.exit_code = client.Fail("apply", st);
        return;
      }
      if (state.global.json()) {
        PrintJson(views::ProtoToJson(resp));
        return;
      }
      for (const auto& ch : resp.changes()) {
        std::printf("%-7s %s%s%s\n", ch.change().c_str(), ch.tunnel().c_str(), ch.detail().empty() ? "" : "  ",
                    ch.detail().c_str());
      }
      std::printf("%s generation %llu; %d host bundle(s) change: %s\n", resp.dry_run() ? "dry run, would leave" : "now at",
                  static_cast<unsigned long long>(resp.generation()), resp.affected_hosts_size(),
                  Join(std::vector<std::string>(resp.affected_hosts().begin(), resp.affected_hosts().end()), " ").c_str());
    });
  }
  // rollout
  {
    CLI::App* r = app.add_subcommand("rollout", "Send the current generation's bundles to the fleet in waves");
    r->require_subcommand(1);
    struct StartArgs {
      uint32_t canary = 0, wave_size = 0, timeout = 0;
      bool wait = false;
    };
    auto a = std::make_shared<StartArgs>();
    CLI::App* start = r->add_subcommand("start", "Start a rollout");
    start->add_option("--canary", a->canary, "Percent of hosts in the first (canary) wave");
    start->add_option("--wave-size", a->wave_size, "Hosts per later wave (0: all remaining at once)");
    start->add_option("--wave-timeout", a->timeout, "Seconds a wave may take before the rollout halts (default 120)");
    start->add_flag("--wait", a->wait, "Follow progress until the rollout ends");
    start->callback([&state, a] {
      v1::StartRolloutRequest req;
      req.set_canary_percent(a->canary);
      req.set_wave_size(a->wave_size);
      req.set_wave_timeout_seconds(a->timeout);
      Client client(state.global);
      v1::RolloutStatus resp;
      grpc::Status st = client.stub().StartRollout(client.Context().get(), req, &resp);
      if (!st.ok()) {
        state.exit_code = client.Fail("rollout start", st);
        return;
      }
      if (a->wait) {
        state.exit_code = WaitRollout(state, client, resp.id());
        return;
      }
      PrintRollout(state, resp);
    });
    auto id = std::make_shared<uint64_t>(0);
    CLI::App* status = r->add_subcommand("status", "Per-host progress of a rollout (default: the latest)");
    status->add_option("id", *id, "Rollout id");
    status->callback([&state, id] {
      v1::GetRolloutRequest req;
      req.set_id(*id);
      Client client(state.global);
      v1::RolloutStatus resp;
      grpc::Status st = client.stub().GetRollout(client.Context().get(), req, &resp);
      if (!st.ok()) {
        state.exit_code = client.Fail("rollout status", st);
        return;
      }
      PrintRollout(state, resp);
    });
    auto abort_id = std::make_shared<uint64_t>(0);
    CLI::App* ab = r->add_subcommand("abort", "Stop a running rollout (hosts already updated keep their bundle)");
    ab->add_option("id", *abort_id, "Rollout id (default: the latest)");
    ab->callback([&state, abort_id] {
      v1::AbortRolloutRequest req;
      req.set_id(*abort_id);
      Client client(state.global);
      v1::RolloutStatus resp;
      grpc::Status st = client.stub().AbortRollout(client.Context().get(), req, &resp);
      if (!st.ok()) {
        state.exit_code = client.Fail("rollout abort", st);
        return;
      }
      PrintRollout(state, resp);
    });
    auto gen = std::make_shared<uint64_t>(0);
    auto wait = std::make_shared<bool>(false);
    CLI::App* rb = r->add_subcommand("rollback", "Re-send an earlier generation as a new, higher bundle version");
    rb->add_option("--generation", *gen, "Generation to return to (default: the previous one)");
    rb->add_flag("--wait", *wait, "Follow progress until the rollout ends");
    rb->callback([&state, gen, wait] {
      v1::RollbackRequest req;
      req.set_generation(*gen);
      Client client(state.global);
      v1::RolloutStatus resp;
      grpc::Status st = client.stub().Rollback(client.Context().get(), req, &resp);
      if (!st.ok()) {
        state.exit_code = client.Fail("rollout rollback", st);
        return;
      }
      if (*wait) {
        state.exit_code = WaitRollout(state, client, resp.id());
        return;
      }
      PrintRollout(state, resp);
    });
  }
  AddSendCommand(app, state, "flush-sa", "Delete a host's SAs (telling the peers) and renegotiate",
                 v1::COMMAND_KIND_FLUSH_SA);
  AddSendCommand(app, state, "rekey", "Rekey a host's SAs without tearing them down", v1::COMMAND_KIND_REKEY);
  // command ID
  {
    auto id = std::make_shared<uint64_t>(0);
    auto wait = std::make_shared<uint32_t>(0);
    CLI::App* c = app.add_subcommand("command", "State and result of a command sent with flush-sa / rekey");
    c->add_option("id", *id, "Command id")->required();
    c->add_option("--wait", *wait, "Wait up to this many seconds for the result");
    c->callback([&state, id, wait] {
      v1::GetCommandRequest req;
      req.set_id(*id);
      req.set_wait_seconds(*wait);
      Client client(state.global);
      v1::CommandStatus resp;
      grpc::Status st = client.stub().GetCommand(client.Context(static_cast<int>(*wait)).get(), req, &resp);
      if (!st.ok()) {
        state.exit_code = client.Fail("command", st);
        return;
      }
      PrintCommand(state, resp);
      state.exit_code = CommandExit(resp);
    });
  }
  // tunnels
  {
    auto host = std::make_shared<std::string>();
    CLI::App* c = app.add_subcommand("tunnels", "Tunnels with both ends' reported state");
    c->add_option("--host", *host, "Only tunnels of this host");
    c->callback([&state, host] {
      v1::ListTunnelsRequest req;
      req.set_host(*host);
      Client client(state.global);
      v1::ListTunnelsResponse resp;
      grpc::Status st = client.stub().ListTunnels(client.Context().get(), req, &resp);
      if (!st.ok()) {
        state.exit_code = client.Fail("tunnels", st);
        return;
      }
      if (state.global.json()) {
        PrintJson(views::TunnelsJson(resp));
        return;
      }
      Table t({"TUNNEL", "LEFT", "RIGHT", "PROPOSAL", "LEFT-STATE", "RIGHT-STATE"});
      for (const auto& x : resp.tunnels()) {
        auto end_state = [&](const std::string& who) -> std::string {
          for (const auto& e : x.ends()) {
            if (e.host() == who) return e.stale() ? "stale" : e.up() ? "up" : "down";
          }
          return "-";
        };
        t.Add({x.name(), x.left(), x.right(), x.proposal(), end_state(x.left()), end_state(x.right())});
      }
      t.Print();
    });
  }
  // peers
  {
    CLI::App* c = app.add_subcommand("peers", "External IKE peers in the inventory");
    c->callback([&state] {
      Client client(state.global);
      v1::ListExternalPeersResponse resp;
      grpc::Status st = client.stub().ListExternalPeers(client.Context().get(), v1::ListExternalPeersRequest(), &resp);
      if (!st.ok()) {
        state.exit_code = client.Fail("peers", st);
        return;
      }
      if (state.global.json()) {
        PrintJson(views::PeersJson(resp));
        return;
      }
      Table t({"PEER", "ADDRESS", "IDENTITY"});
      for (const auto& p : resp.peers()) t.Add({p.name(), p.address(), p.identity()});
      t.Print();
    });
  }
}

}  // namespace ipfleet::cli
