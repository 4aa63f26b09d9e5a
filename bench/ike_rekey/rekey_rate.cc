// CHILD_SA rekeys per second: a pair from bench/ike_charon with N tunnels up, then all N rekeyed at once.
#include <signal.h>

#include <fstream>

#include <absl/strings/match.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_format.h>

#include "harness/vici.h"
#include "ike_rekey_bench.h"

namespace ipfleet::bench {
namespace {

using namespace std::chrono_literals;

// Occurrences of `needle` in `file` from byte `from` on.
int CountFrom(const std::filesystem::path& file, size_t from, const std::string& needle) {
  std::ifstream in(file, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(from));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  int n = 0;
  for (size_t p = text.find(needle); p != std::string::npos; p = text.find(needle, p + 1)) ++n;
  return n;
}

size_t SizeOf(const std::filesystem::path& f) {
  std::error_code ec;
  auto s = std::filesystem::file_size(f, ec);
  return ec ? 0 : static_cast<size_t>(s);
}

// Runs `trigger`, then polls until `done()` reports `want` completions (bounded), and fills the figures.
absl::Status Measure(RekeyFigures& f, int want, pid_t init, pid_t resp, const std::function<absl::Status()>& trigger,
                     const std::function<int()>& done) {
  IPFLEET_ASSIGN_OR_RETURN(double ci0, CpuMs(init));
  IPFLEET_ASSIGN_OR_RETURN(double cr0, CpuMs(resp));
  const auto t0 = std::chrono::steady_clock::now();
  IPFLEET_RETURN_IF_ERROR(trigger());
  int got = 0;
  bool ok = interop::WaitFor([&] { return (got = done()) >= want; }, std::chrono::milliseconds(30000 + 100LL * want),
                             5ms);
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!ok) return absl::DeadlineExceededError(absl::StrCat(f.peer, " rekey: ", got, " of ", want, " done"));
  IPFLEET_ASSIGN_OR_RETURN(double ci1, CpuMs(init));
  IPFLEET_ASSIGN_OR_RETURN(double cr1, CpuMs(resp));
  f.rekeys += want;
  f.wall_s += wall;
  f.per_s = f.rekeys / f.wall_s;
  f.cpu_ms_initiator += (ci1 - ci0) / want;
  f.cpu_ms_responder += (cr1 - cr0) / want;
  return absl::OkStatus();
}

void Average(RekeyFigures& f, int rounds) {
  f.cpu_ms_initiator /= rounds;
  f.cpu_ms_responder /= rounds;
}

}  // namespace

absl::StatusOr<RekeyFigures> CharonRekeyRate(const CharonBenchOptions& o, int rounds) {
  IPFLEET_ASSIGN_OR_RETURN(auto run, EstablishCharonPair(o));
  RekeyFigures f{.peer = "charon"};
  const auto log = run->init->dir() / "charon.log";
  IPFLEET_ASSIGN_OR_RETURN(auto vici, interop::ViciClient::Connect((run->init->dir() / "vici.sock").string()));
  for (int r = 0; r < rounds; ++r) {
    const size_t from = SizeOf(log);
    auto trigger = [&]() -> absl::Status {
      // All requests first, then their answers: charon queues each rekey and answers at once.
      for (int i = 0; i < o.count; ++i) {
        interop::ViciMessage m;
        m.kv = {{"child", absl::StrCat("c", i)}};
        IPFLEET_RETURN_IF_ERROR(vici.Send("rekey", m));
      }
      for (int i = 0; i < o.count; ++i) {
        IPFLEET_ASSIGN_OR_RETURN(auto p, vici.ReadPacket(5s));
        if (p.type == 1 && p.msg.Get("success") != "yes")
          return absl::InternalError("charon refused a rekey: " + p.msg.Get("errmsg"));
      }
      return absl::OkStatus();
    };
    // A rekey initiated by charon logs "inbound CHILD_SA cN{M} established ..." once the response is in, and
    // "outbound CHILD_SA cN{M} established ..." when it switches over (level 0): the latter ends it.
    IPFLEET_RETURN_IF_ERROR(Measure(f, o.count, run->init->pid(), run->resp->pid(), trigger,
                                    [&] { return CountFrom(log, from, "outbound CHILD_SA c"); }));
  }
  Average(f, rounds);
  return f;
}

absl::StatusOr<RekeyFigures> OursRekeyRate(const CharonBenchOptions& o, const std::string& binary, int rounds) {
  IPFLEET_ASSIGN_OR_RETURN(auto run, EstablishIkePeerPair(o, binary));
  RekeyFigures f{.peer = "ours"};
  const auto log = run->work->path() / "initiator" / "ike-peer.log";
  for (int r = 0; r < rounds; ++r) {
    const size_t from = SizeOf(log);
    IPFLEET_RETURN_IF_ERROR(Measure(
        f, o.count, run->init->pid(), run->resp->pid(), [&] { return run->init->Signal(SIGRTMIN); },
        // The initiator's own rekeys (it only initiates here), logged once each when installed.
        [&] { return CountFrom(log, from, "child_sa_rekeyed") - CountFrom(log, from, "role=responder"); }));
  }
  Average(f, rounds);
  return f;
}

std::string ToString(const RekeyFigures& f) {
  return absl::StrFormat("rekey peer=%s rekeys=%d wall_s=%.3f rekeys_per_s=%.1f cpu_ms_per_rekey_initiator=%.3f "
                         "cpu_ms_per_rekey_responder=%.3f",
                         f.peer, f.rekeys, f.wall_s, f.per_s, f.cpu_ms_initiator, f.cpu_ms_responder);
}

}  // namespace ipfleet::bench
