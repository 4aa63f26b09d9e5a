// strongSwan's charon inside a network namespace, as LAB.md describes: a private /run (unshare -m + tmpfs),
// its own strongswan.conf through STRONGSWAN_CONF, kernel-libipsec (this kernel has no ESP), a VICI socket
// in the instance's directory; driven and queried through swanctl.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "harness/process.h"
#include "harness/swanctl.h"
#include "ipfleet/common/status.h"

namespace ipfleet::interop {

// True when charon and swanctl are installed (the interop tests skip otherwise).
bool CharonAvailable(std::string* why = nullptr);

struct CharonOptions {
  std::string netns;
  std::filesystem::path dir;  // created; holds strongswan.conf, swanctl/, vici socket, charon.log
  int ike_log_level = 2;      // charon's "ike" and "enc" log levels (1 is quieter, for benchmarks)
  int net_log_level = 1;
  int threads = 16;
  std::optional<int> cpu = std::nullopt;  // pin charon to this CPU (taskset)
  int retransmit_tries = 3;   // bounded retransmissions so liveness failures show within seconds
  double retransmit_timeout_s = 1.0;
  double retransmit_base = 1.4;
  std::string extra = "";     // more lines for the charon { } section, e.g. "reuse_ikesa = no"
};

// Certificate material copied into swanctl's directories before loading.
struct CharonCreds {
  std::vector<std::filesystem::path> certs;     // -> swanctl/x509/
  std::vector<std::filesystem::path> cacerts;   // -> swanctl/x509ca/
  std::vector<std::filesystem::path> keys;      // -> swanctl/private/
  std::vector<std::filesystem::path> crls;      // -> swanctl/x509crl/
};

class Charon {
 public:
  static absl::StatusOr<std::unique_ptr<Charon>> Start(const CharonOptions& options);
  ~Charon();
  Charon(const Charon&) = delete;
  Charon& operator=(const Charon&) = delete;

  // Writes swanctl.conf (+ credentials) and runs `swanctl --load-all --clear`.
  absl::Status Load(const std::string& swanctl_conf, const CharonCreds& creds = {});
  // Runs swanctl against this instance's VICI socket with the given arguments.
  absl::StatusOr<CommandResult> Swanctl(const std::vector<std::string>& args,
                                        std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // `swanctl --initiate --child CHILD` (blocks until established or failed, bounded by timeout).
  absl::Status Initiate(const std::string& child, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // `swanctl --terminate --ike NAME` (or --child).
  absl::Status TerminateIke(const std::string& ike);
  absl::Status TerminateChild(const std::string& child);
  // charon's own view of its SAs.
  absl::StatusOr<std::vector<IkeSaView>> ListSas();
  // Polls ListSas until `pred` holds; returns the last view (error when the deadline passes).
  absl::StatusOr<std::vector<IkeSaView>> WaitSas(const std::function<bool(const std::vector<IkeSaView>&)>& pred,
                                                 std::chrono::milliseconds timeout, std::string* last = nullptr);

  std::string Log() const;  // charon.log so far
  // Lines of charon.log matching any of the substrings (for failure reports).
  std::string LogLines(const std::vector<std::string>& needles, size_t max_lines = 60) const;
  const std::filesystem::path& dir() const { return options_.dir; }
  std::string vici_uri() const { return "unix://" + (options_.dir / "vici.sock").string(); }
  pid_t pid() const { return process_.pid(); }
  bool Running() { return process_.Running(); }
  // Stops charon (SIGTERM, bounded wait, SIGKILL).
  void Stop();
  // SIGKILL: a peer that vanishes without a DELETE.
  void Kill();

 private:
  explicit Charon(CharonOptions options) : options_(std::move(options)) {}
  CharonOptions options_;
  Process process_;
};

// Helpers that state the usual expectation: one ESTABLISHED IKE_SA with one INSTALLED CHILD_SA.
bool OneEstablished(const std::vector<IkeSaView>& sas);
bool NoSas(const std::vector<IkeSaView>& sas);

}  // namespace ipfleet::interop
