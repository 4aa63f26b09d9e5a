// Our engine as an interop peer: agent/ike/tools' `ipfleet-ike-peer` (docs/ike.md) run inside a namespace
// with a generated config, its --status-file read back as our own view of the SAs.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/process.h"
#include "ipfleet/common/status.h"

namespace ipfleet::interop {

// The ipfleet-ike-peer binary: IPFLEET_IKE_PEER from the build, or the environment variable of the same
// name; "" when not executable.
std::string ConfiguredIkePeer();

struct IkePeerTunnel {
  std::string name = "t";
  std::string local, remote;
  std::string local_id, remote_id;
  bool psk = true;
  std::string psk_secret;
  std::filesystem::path cert, key, ca, crl;
  std::string ike_proposal = "aes128gcm16-prfsha256-x25519";
  std::string esp_proposal = "aes128gcm16";
  std::string child_name = "c";
  std::string local_ts, remote_ts;
  int dpd_interval_s = 0;
  std::string dpd_action = "clear";
  std::string start_action = "none";
  // More keys of the tunnel and of its child (docs/ike.md), e.g. {"ike_rekey_time": 3} or {"pfs": "x25519"}.
  nlohmann::json extra = nlohmann::json::object();
  nlohmann::json child_extra = nlohmann::json::object();
};

struct IkePeerOptions {
  std::string binary;
  std::string netns;
  std::filesystem::path dir;
  std::string listen;
  std::vector<IkePeerTunnel> tunnels;
  bool initiate = false;
  bool write_status = true;               // --status-file (what Sas() reads); benchmarks turn it off
  int initiate_window = 0;                // --initiate-window (0: all tunnels at once)
  std::optional<int> cpu = std::nullopt;  // pin the peer to this CPU (taskset), as charon.h does
  int retransmit_timeout_ms = 1000;
  int retransmit_tries = 3;
  std::string log_level = "debug";
  // More top-level keys (docs/ike.md), e.g. {"fragment_size": 576, "nat_keepalive": 1}.
  nlohmann::json settings = nlohmann::json::object();
};

struct OurChildSa {
  std::string name, state, spi_in, spi_out, mode, suite;
  std::vector<std::string> local_ts, remote_ts;
};
struct OurIkeSa {
  std::string tunnel, state, spi_i, spi_r, local, remote, local_id, remote_id, suite;
  bool initiator = false;
  std::vector<OurChildSa> children;
};

class IkePeer {
 public:
  static absl::StatusOr<std::unique_ptr<IkePeer>> Start(const IkePeerOptions& options);
  ~IkePeer();
  IkePeer(const IkePeer&) = delete;
  IkePeer& operator=(const IkePeer&) = delete;

  // Our view: the status file (empty list before it is first written).
  absl::StatusOr<std::vector<OurIkeSa>> Sas();
  absl::StatusOr<std::vector<OurIkeSa>> WaitSas(const std::function<bool(const std::vector<OurIkeSa>&)>& pred,
                                                std::chrono::milliseconds timeout);
  absl::Status Signal(int sig) { return process_.Signal(sig); }
  bool Running() { return process_.Running(); }
  pid_t pid() const { return process_.pid(); }
  std::string Log() const;
  std::string LogTail(size_t max_lines = 40) const;
  std::string StatusText() const;
  const std::filesystem::path& config_path() const { return config_; }
  void Stop();

 private:
  IkePeer() = default;
  IkePeerOptions options_;
  std::filesystem::path config_, status_, log_;
  Process process_;
};

bool OursOneEstablished(const std::vector<OurIkeSa>& sas);
bool OursNone(const std::vector<OurIkeSa>& sas);
std::string Describe(const std::vector<OurIkeSa>& sas);

}  // namespace ipfleet::interop
