// The IKEv2 engine: an IKE_SA manager driven by datagrams, kernel events and time.
// Single-threaded: the owner calls OnDatagram/OnKernelEvent/Tick from one loop. Time comes from
// a Clock and datagrams leave through a Network, so tests drive both (see sim_network.h).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ipfleet/common/status.h"
#include "ipfleet/ike/config.h"
#include "ipfleet/ike/wire.h"
#include "ipfleet/kernel/xfrm.h"

namespace ipfleet::ike {

using TimePoint = std::chrono::steady_clock::time_point;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint Now() const = 0;
};

class SystemClock : public Clock {
 public:
  TimePoint Now() const override { return std::chrono::steady_clock::now(); }
};

struct Endpoint {
  kernel::IpAddress addr;
  uint16_t port = 500;
  std::string ToString() const;
  friend bool operator==(const Endpoint&, const Endpoint&) = default;
  friend auto operator<=>(const Endpoint&, const Endpoint&) = default;
};

// Where the engine's datagrams go (a UDP socket, or the simulated network).
class Network {
 public:
  virtual ~Network() = default;
  virtual void Send(const Endpoint& local, const Endpoint& remote, Bytes datagram) = 0;
};

enum class IkeState { kConnecting, kEstablished, kDeleting };
enum class ChildState { kInstalling, kInstalled, kDeleting };
const char* ToString(IkeState s);
const char* ToString(ChildState s);

struct ChildSaInfo {
  uint64_t id = 0;
  std::string name;
  ChildState state = ChildState::kInstalling;
  uint32_t spi_in = 0;   // host byte order
  uint32_t spi_out = 0;
  uint32_t reqid = 0;
  kernel::Mode mode = kernel::Mode::kTunnel;
  std::vector<std::string> local_ts, remote_ts;
  std::string suite;
  std::chrono::seconds age{0};
};

struct IkeSaInfo {
  uint64_t id = 0;
  std::string tunnel;
  IkeState state = IkeState::kConnecting;
  bool initiator = false;
  uint64_t spi_i = 0, spi_r = 0;
  Endpoint local, remote;
  std::string local_id, remote_id;
  std::string suite;
  std::chrono::seconds age{0};         // since creation
  std::chrono::seconds last_heard{0};  // since the last authenticated message from the peer
  std::vector<ChildSaInfo> children;
};

enum class EventType {
  kIkeEstablished,
  kIkeFailed,        // establishment failed (detail says why)
  kIkeDeleted,
  kChildInstalled,
  kChildFailed,
  kChildDeleted,
  kLivenessFailed,   // the peer stopped answering (retransmissions exhausted)
  kProposalMismatch, // detail names the transform types without a match
};
const char* ToString(EventType t);

struct Event {
  EventType type;
  std::string tunnel;
  uint64_t ike_id = 0;
  uint64_t child_id = 0;
  std::string detail;
};

struct EngineStats {
  uint64_t datagrams_in = 0, datagrams_out = 0, retransmits = 0, retransmits_answered = 0, dropped = 0,
           invalid_spi_replies = 0;
};

class Engine {
 public:
  // `xfrm` must outlive the engine. Call Load() before anything else.
  static std::unique_ptr<Engine> Create(Clock& clock, Network& network, kernel::Xfrm& xfrm);
  virtual ~Engine() = default;

  // Parses credentials and proposals, installs trap policies, initiates start-at-load tunnels.
  // Replaces any earlier config (existing SAs keep their config until they are deleted).
  virtual absl::Status Load(const IkeConfig& config) = 0;

  // Inputs.
  virtual void OnDatagram(const Endpoint& local, const Endpoint& remote, ByteView data) = 0;
  virtual void OnKernelEvent(const kernel::XfrmEvent& event) = 0;
  virtual void Tick() = 0;  // runs due timers (retransmissions, liveness, half-open expiry)
  virtual std::optional<TimePoint> NextDeadline() const = 0;

  // Operations. Initiate establishes the tunnel's IKE_SA and all its CHILD_SAs.
  virtual absl::StatusOr<uint64_t> Initiate(const std::string& tunnel) = 0;
  // Negotiates each of the tunnel's CHILD_SAs that has no live SA (none, or only ones being
  // deleted) with CREATE_CHILD_SA on the tunnel's IKE_SA when one is up or coming up; starts a new
  // IKE_SA only when there is none. flush-sa and CHILD_SA repair use it: a working IKE_SA is kept
  // (no new authentication, one exchange instead of two).
  virtual absl::Status InitiateChildren(const std::string& tunnel) = 0;
  virtual absl::Status DeleteIke(uint64_t ike_id) = 0;    // INFORMATIONAL DELETE, then removal
  virtual absl::Status DeleteChild(uint64_t child_id) = 0;
  // CREATE_CHILD_SA rekey now (also driven by lifetimes and the kernel's soft EXPIRE).
  virtual absl::Status RekeyChild(uint64_t child_id) = 0;
  virtual absl::Status RekeyIke(uint64_t ike_id) = 0;
  // Deletes every IKE_SA of the tunnel (or of all tunnels when empty); returns how many.
  virtual absl::StatusOr<size_t> Flush(const std::string& tunnel) = 0;

  // State for health reporting.
  virtual std::vector<IkeSaInfo> ListSas() const = 0;
  virtual std::vector<IkeSaInfo> ListSas(const std::string& tunnel) const = 0;  // that tunnel's only
  virtual EngineStats stats() const = 0;
  virtual void SetEventCallback(std::function<void(const Event&)> cb) = 0;
};

}  // namespace ipfleet::ike
