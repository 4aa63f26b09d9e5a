// The agent's IKE UDP sockets: bound to one local address and port, non-blocking, with a receive
// buffer sized for bursts.
#pragma once

#include <sys/socket.h>

#include "ipfleet/common/status.h"

namespace ipfleet::agent {

// What the agent asks for. IKE requests arrive in bursts: a fleet's agents coming back after a
// controller or network outage, a peer retransmitting everything after a partition, the bench
// tool's 200 simultaneous IKE_SA_INITs. The kernel's default (net.core.rmem_default, 208 KiB)
// held about 150 such datagrams while the engine was busy; the rest were dropped and cost a
// retransmission timeout each. 4 MiB holds a few thousand.
inline constexpr int kIkeReceiveBuffer = 4 << 20;

struct IkeSocket {
  int fd = -1;
  int receive_buffer = 0;  // as the kernel reports it (SO_RCVBUF: twice what was granted)
};

// Opens a UDP socket of `local`'s family (non-blocking, close-on-exec, SO_REUSEADDR), sizes its
// receive buffer (SO_RCVBUFFORCE, which the agent may use as root; else SO_RCVBUF, capped by
// net.core.rmem_max) and binds it. Unavailable with the reason when the bind fails.
absl::StatusOr<IkeSocket> OpenIkeSocket(const sockaddr* local, socklen_t length);

}  // namespace ipfleet::agent
