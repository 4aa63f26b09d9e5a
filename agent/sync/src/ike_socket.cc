#include "ipfleet/agent/sync/ike_socket.h"

#include <absl/strings/str_cat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ipfleet::agent {

absl::StatusOr<IkeSocket> OpenIkeSocket(const sockaddr* local, socklen_t length) {
  int fd = ::socket(local->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket(UDP): ", std::strerror(errno)));
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &kIkeReceiveBuffer, sizeof kIkeReceiveBuffer) != 0) {
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &kIkeReceiveBuffer, sizeof kIkeReceiveBuffer);  // capped
  }
  if (::bind(fd, local, length) != 0) {
    int e = errno;
    ::close(fd);
    return absl::UnavailableError(std::strerror(e));
  }
  IkeSocket out;
  out.fd = fd;
  socklen_t size = sizeof out.receive_buffer;
  ::getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &out.receive_buffer, &size);
  return out;
}

}  // namespace ipfleet::agent
