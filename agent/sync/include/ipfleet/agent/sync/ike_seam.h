// The agent's view of its IKEv2 engine. sync/ and health/ talk only to this interface; the
// adapter over ipfleet_ike lives in ike_adapter.cc, tests use FakeIke (tests/agent/).
// Semantics the applier relies on:
//  * AddConnection loads a tunnel and, per its start action, initiates, installs trap policies
//    or just waits; it returns once the connection is loaded (negotiation runs asynchronously).
//  * ReplaceConnection is make-before-break: the new CHILD_SA is up before the old is deleted.
//  * Delete* tell the peer (INFORMATIONAL DELETE) and remove the kernel state.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ipfleet/agent/sync/config.h"
#include "ipfleet/common/status.h"

namespace ipfleet::agent {

enum class SaPhase { kConnecting, kEstablished, kRekeying, kDeleting, kDown };

struct ChildSaView {
  uint32_t spi_in = 0;
  uint32_t spi_out = 0;
  SaPhase phase = SaPhase::kEstablished;
  int64_t established_unix = 0;
  uint32_t rekeys = 0;
  std::string suite;
  std::string local_ts, remote_ts;
};

struct IkeSaView {
  uint64_t spi_i = 0, spi_r = 0;
  SaPhase phase = SaPhase::kConnecting;
  bool initiator = false;
  int64_t established_unix = 0;
  int64_t last_heard_unix = 0;  // 0 = never
  uint32_t rekeys = 0;
  // The engine's liveness checks went unanswered after all retransmissions.
  bool liveness_failed = false;
  // When the peer last sent INITIAL_CONTACT (0 = never): SAs older than this are stale.
  int64_t peer_initial_contact_unix = 0;
  // CHILD_SAs of this tunnel the engine itself deleted because the peer sent INITIAL_CONTACT (it
  // restarted and lost them), counted since the connection was added.
  uint64_t dropped_by_initial_contact = 0;
  std::string suite;
  std::string remote_identity;
  std::string last_error;
  std::vector<ChildSaView> children;
};

struct ConnectionOptions {
  // Kernel priority for the tunnel's protecting policies; always after every bypass rule.
  uint32_t policy_priority = 0;
  // PEM trust for the engine's certificate checks, from the bundle.
  std::vector<std::string> ca_chain_pem;
  std::string crl_pem;
  bool operator==(const ConnectionOptions&) const = default;
};

class IkeSeam {
 public:
  virtual ~IkeSeam() = default;
  virtual absl::Status AddConnection(const TunnelConfig& tunnel, const ConnectionOptions& options) = 0;
  virtual absl::Status ReplaceConnection(const TunnelConfig& tunnel, const ConnectionOptions& options) = 0;
  virtual absl::Status RemoveConnection(const std::string& tunnel) = 0;
  // A bundle's worth of connection changes: between BeginBatch and EndBatch the calls above only
  // record; EndBatch loads the resulting config once and starts what they start (one load for a
  // bundle of N tunnels instead of N loads of up to N tunnels each).
  virtual void BeginBatch() {}
  virtual absl::Status EndBatch() { return absl::OkStatus(); }
  // Starts negotiation now (IKE_SA if missing, else a CHILD_SA).
  virtual absl::Status Initiate(const std::string& tunnel) = 0;
  // Deletes the tunnel's CHILD_SAs (or one of them by inbound SPI when spi_in != 0), telling the peer.
  virtual absl::Status DeleteChildSas(const std::string& tunnel, uint32_t spi_in = 0) = 0;
  // Deletes the IKE_SA and its CHILD_SAs, telling the peer when it can.
  virtual absl::Status DeleteIkeSa(const std::string& tunnel) = 0;
  // Replaces every CHILD_SA of the tunnel with a freshly negotiated one, make-before-break (the
  // new pair carries the traffic before the old one is deleted, the peer told); a tunnel without
  // a CHILD_SA gets one, without an IKE_SA a new IKE_SA. flush-sa and rekey commands use it.
  virtual absl::Status Rekey(const std::string& tunnel) = 0;
  // nullopt when the tunnel has no IKE_SA at the moment.
  virtual std::optional<IkeSaView> Query(const std::string& tunnel) = 0;
  // New trust material (CA chain, CRL) from a bundle: revoked peers fail authentication after this.
  virtual absl::Status SetTrust(const std::vector<std::string>& ca_chain_pem, const std::string& crl_pem) = 0;
};

}  // namespace ipfleet::agent
