// A minimal client of charon's VICI protocol (strongSwan's src/libcharon/plugins/vici/README.md): length-
// prefixed packets over a unix socket, messages of key/value, section and list elements. Used where spawning
// swanctl per request would dominate the measurement (the charon benchmark fires hundreds of initiates).
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "ipfleet/common/status.h"

namespace ipfleet::interop {

// A flattened VICI message: top-level key/values only (enough for requests and the replies/events we read);
// nested sections are kept with dotted keys ("ike.child-sas.c-1.state").
struct ViciMessage {
  std::vector<std::pair<std::string, std::string>> kv;
  std::string Get(const std::string& key) const;  // first match, "" when absent
};

class ViciClient {
 public:
  static absl::StatusOr<ViciClient> Connect(const std::string& socket_path);
  ViciClient(ViciClient&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  ViciClient& operator=(ViciClient&& o) noexcept;
  ViciClient(const ViciClient&) = delete;
  ViciClient& operator=(const ViciClient&) = delete;
  ~ViciClient();

  // Sends a named command request and returns its response; events that arrive meanwhile are queued.
  absl::StatusOr<ViciMessage> Request(const std::string& command, const ViciMessage& args,
                                      std::chrono::milliseconds timeout);
  // Sends a command without waiting for its response (collect it with ReadPacket).
  absl::Status Send(const std::string& command, const ViciMessage& args);
  absl::Status RegisterEvent(const std::string& event, std::chrono::milliseconds timeout);

  struct Packet {
    int type = -1;  // 1 response, 7 event, ...
    std::string name;  // event name
    ViciMessage msg;
  };
  // Events that arrived during Request() calls (taken out of the queue).
  std::vector<Packet> TakeQueued() { return std::exchange(queued_, {}); }
  // Next packet (queued events first), waiting at most `timeout`.
  absl::StatusOr<Packet> ReadPacket(std::chrono::milliseconds timeout);

 private:
  explicit ViciClient(int fd) : fd_(fd) {}
  absl::Status WriteAll(const std::string& data);
  int fd_ = -1;
  std::string inbuf_;
  std::vector<Packet> queued_;
};

}  // namespace ipfleet::interop
