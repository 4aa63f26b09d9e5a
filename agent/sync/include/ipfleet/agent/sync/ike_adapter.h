// IkeSeam over the real engine (ipfleet_ike): translates TunnelConfig into ike::PeerConfig,
// owns the engine's loop thread (UDP port 500 per local address, XFRM events, timers), and
// serialises every engine call behind one mutex (the engine is single-threaded).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "ipfleet/agent/sync/ike_seam.h"
#include "ipfleet/ike/engine.h"
#include "ipfleet/kernel/xfrm.h"

namespace ipfleet::agent {

struct HostCredentials {
  std::string cert_pem;
  std::string key_pem;  // secret: never logged
};

// Exposed for tests: the engine config for one tunnel.
absl::StatusOr<ike::PeerConfig> ToPeerConfig(const TunnelConfig& t, const ConnectionOptions& o,
                                             const HostCredentials& creds);

class EngineAdapter : public IkeSeam {
 public:
  // `xfrm` is the engine's own kernel handle (not shared with other threads).
  EngineAdapter(kernel::Xfrm& xfrm, std::function<HostCredentials()> credentials, uint16_t ike_port = 500);
  ~EngineAdapter() override;
  absl::Status Start();
  void Stop();

  absl::Status AddConnection(const TunnelConfig& tunnel, const ConnectionOptions& options) override;
  absl::Status ReplaceConnection(const TunnelConfig& tunnel, const ConnectionOptions& options) override;
  absl::Status RemoveConnection(const std::string& tunnel) override;
  void BeginBatch() override;
  absl::Status EndBatch() override;
  absl::Status Initiate(const std::string& tunnel) override;
  absl::Status DeleteChildSas(const std::string& tunnel, uint32_t spi_in) override;
  absl::Status DeleteIkeSa(const std::string& tunnel) override;
  absl::Status Rekey(const std::string& tunnel) override;
  std::optional<IkeSaView> Query(const std::string& tunnel) override;
  absl::Status SetTrust(const std::vector<std::string>& ca_chain_pem, const std::string& crl_pem) override;

 private:
  class UdpNetwork;
  struct Conn {
    TunnelConfig tunnel;
    // Shared by every connection with equal options (the bundle's CA chain and CRL, once).
    std::shared_ptr<const ConnectionOptions> options;
  };
  std::shared_ptr<const ConnectionOptions> InternLocked(const ConnectionOptions& o);
  absl::Status ReloadLocked();
  // Reloads and initiates `tunnel` if `start` — or, inside a batch, leaves both to EndBatch.
  absl::Status LoadAndStartLocked(const std::string& tunnel, bool start);
  absl::Status EnsureSocketLocked(const kernel::IpAddress& addr);
  void Loop();
  void OnEvent(const ike::Event& e);
  void RetireOldChildrenLocked();
  void ReauthLocked();

  kernel::Xfrm& xfrm_;
  std::function<HostCredentials()> credentials_;
  uint16_t port_;
  ike::SystemClock clock_;
  std::unique_ptr<UdpNetwork> net_;
  std::unique_ptr<ike::Engine> engine_;

  std::mutex mu_;
  std::map<std::string, Conn> conns_;
  std::vector<std::string> ca_chain_;
  std::string crl_;
  std::map<std::string, std::string> last_error_;
  std::set<std::string> liveness_failed_;
  std::map<std::string, uint64_t> dropped_by_initial_contact_;  // per tunnel (engine events)
  bool batching_ = false;                    // between BeginBatch and EndBatch
  std::vector<std::string> batch_initiate_;  // tunnels to start at EndBatch
  // Make-before-break: children to delete once the tunnel has a newer installed child.
  std::map<std::string, std::set<uint64_t>> retire_;
  // Re-authentication after a CRL change: the engine checks revocation only while authenticating,
  // so each IKE_SA authenticated under the old CRL is replaced by a new one (make-before-break), and
  // deleted anyway when the new one fails (a revoked peer cannot re-authenticate).
  struct Reauth {
    std::set<uint64_t> old_ike;
    std::chrono::steady_clock::time_point start_at, deadline;
    uint64_t new_ike = 0;  // 0: not started yet
  };
  std::map<std::string, Reauth> reauth_;
  int wake_fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace ipfleet::agent
