#include "harness/wire_check.h"

#include <signal.h>
#include <unistd.h>

#include <absl/strings/match.h>
#include <absl/strings/numbers.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_join.h>
#include <absl/strings/str_split.h>
#include <absl/strings/strip.h>

#include "harness/netns.h"
#include "ipfleet/common/files.h"

namespace ipfleet::interop {

bool TsharkAvailable() { return access("/usr/bin/tshark", X_OK) == 0 && access("/usr/bin/dumpcap", X_OK) == 0; }

absl::StatusOr<std::unique_ptr<Capture>> Capture::Start(const std::string& netns, const std::string& iface,
                                                        const std::string& probe_addr,
                                                        const std::filesystem::path& pcap) {
  std::unique_ptr<Capture> c(new Capture());
  c->pcap_ = pcap;
  c->netns_ = netns;
  c->probe_addr_ = probe_addr;
  c->log_ = pcap.string() + ".tshark.log";
  std::filesystem::remove(pcap);
  std::filesystem::remove(c->log_);
  IPFLEET_ASSIGN_OR_RETURN(
      c->process_,
      Process::Spawn(NetnsPair::Exec(netns, {"tshark", "-n", "-l", "-P", "-i", iface, "-f",
                                             "udp port 500 or udp port 4500 or udp dst port 9", "-w", pcap.string()}),
                     {}, c->log_.string()));
  bool started = WaitFor(
      [&] {
        auto log = files::Read(c->log_);
        if (!c->process_.Running() || (log.ok() && absl::StrContains(*log, "Len=11"))) return true;
        if (log.ok() && absl::StrContains(*log, "Capture started")) {
          (void)c->Probe("ipfleet-cap");
        }
        return false;
      },
      std::chrono::seconds(10), std::chrono::milliseconds(50));
  if (!started || !c->process_.Running()) {
    auto log = files::Read(c->log_);
    return absl::InternalError(absl::StrCat("tshark capture did not start on ", netns, "/", iface, ": ",
                                            log.ok() ? *log : ""));
  }
  return c;
}

Capture::~Capture() { (void)Stop(); }

absl::Status Capture::Probe(const std::string& payload) {
  return RunOk(NetnsPair::Exec(netns_, {"bash", "-c", "printf " + payload + " > /dev/udp/" + probe_addr_ + "/9"}),
               std::chrono::seconds(2))
      .status();
}

absl::Status Capture::Stop() {
  if (stopped_) return absl::OkStatus();
  stopped_ = true;
  bool flushed = WaitFor(
      [&] {
        auto log = files::Read(log_);
        if (log.ok() && absl::StrContains(*log, "Len=19")) return true;
        (void)Probe("ipfleet-capture-end");
        return false;
      },
      std::chrono::seconds(10), std::chrono::milliseconds(100));
  // SIGINT lets dumpcap flush and close the file; Stop() escalates to SIGKILL after the grace period.
  process_.Stop(SIGINT, std::chrono::seconds(5));
  if (!std::filesystem::exists(pcap_)) return absl::NotFoundError("tshark wrote no capture file " + pcap_.string());
  if (!flushed) return absl::DeadlineExceededError("tshark never saw the end-marker probe: capture incomplete");
  return absl::OkStatus();
}

std::string WireReport::ToString() const {
  return absl::StrCat("ike_packets=", ike_packets, " malformed=", malformed, " expert_errors=[",
                      absl::StrJoin(expert_errors, "; "), "]\n  ", absl::StrJoin(summary, "\n  "),
                      "\n  full decode: ", verbose.string());
}

absl::StatusOr<WireReport> AnalyzeIke(const std::filesystem::path& pcap,
                                      const std::vector<Ikev2DecryptionRow>& decryption) {
  std::vector<std::string> opts;
  if (!decryption.empty()) {
    for (const auto& r : decryption) {
      opts.push_back("-o");
      opts.push_back(absl::StrCat("uat:ikev2_decryption_table:\"", r.ispi, "\",\"", r.rspi, "\",\"", r.sk_ei, "\",\"",
                                  r.sk_er, "\",\"", r.encr_alg, "\",\"", r.sk_ai, "\",\"", r.sk_ar, "\",\"",
                                  r.integ_alg, "\""));
    }
  }
  auto tshark = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = {"tshark", "-n", "-r", pcap.string()};
    argv.insert(argv.end(), opts.begin(), opts.end());
    argv.insert(argv.end(), args.begin(), args.end());
    return RunOk(argv, std::chrono::seconds(30));
  };
  WireReport rep;
  // One pass (tshark starts slowly): a summary line per IKE frame, then the expert-info table.
  IPFLEET_ASSIGN_OR_RETURN(CommandResult sum, tshark({"-Y", "isakmp || _ws.malformed", "-z", "expert"}));
  bool in_errors = false, in_table = false;
  for (absl::string_view l : absl::StrSplit(sum.out, '\n')) {
    absl::string_view s = absl::StripAsciiWhitespace(l);
    if (absl::StartsWith(s, "Errors (") || absl::StartsWith(s, "Warns (") || absl::StartsWith(s, "Notes (") ||
        absl::StartsWith(s, "Chats (") || absl::StartsWith(s, "Comments (")) {
      in_table = true;
      in_errors = absl::StartsWith(s, "Errors (");
      continue;
    }
    if (in_table) {
      rep.expert += std::string(l) + "\n";
      if (in_errors && !s.empty() && !absl::StartsWith(s, "====") && !absl::StartsWith(s, "Frequency")) {
        rep.expert_errors.emplace_back(s);
      }
      continue;
    }
    if (s.empty()) continue;
    rep.summary.emplace_back(s);
    if (absl::StrContains(s, "ISAKMP")) rep.ike_packets++;
    if (absl::StrContains(s, "[Malformed Packet")) rep.malformed++;
  }
  // The full decode is kept for a failure report.
  if (!rep.Clean()) {
    rep.verbose = pcap.string() + ".decode.txt";
    IPFLEET_ASSIGN_OR_RETURN(CommandResult v, tshark({"-V", "-Y", "isakmp || _ws.malformed"}));
    IPFLEET_RETURN_IF_ERROR(files::WriteAtomic(rep.verbose, v.out, 0644));
  }
  return rep;
}

}  // namespace ipfleet::interop

namespace ipfleet::interop {

absl::StatusOr<std::vector<std::string>> FrameFields(const std::filesystem::path& pcap, const std::string& filter,
                                                     const std::string& field) {
  IPFLEET_ASSIGN_OR_RETURN(CommandResult r, RunOk({"tshark", "-n", "-r", pcap.string(), "-Y", filter, "-T", "fields",
                                                   "-e", field},
                                                  std::chrono::seconds(30)));
  std::vector<std::string> out;
  for (absl::string_view l : absl::StrSplit(r.out, '\n', absl::SkipEmpty())) out.emplace_back(l);
  return out;
}

}  // namespace ipfleet::interop
