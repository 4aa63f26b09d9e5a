// The agent's IKE socket keeps a burst of requests that arrives while the engine is busy.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <unistd.h>

#include <string>

#include "ipfleet/agent/sync/ike_socket.h"

namespace ipfleet::agent {
namespace {

TEST(IkeSocketTest, ABurstOfRequestsWaitsInTheReceiveBuffer) {
  sockaddr_in local{};
  local.sin_family = AF_INET;
  local.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  local.sin_port = 0;  // any free port
  auto s = OpenIkeSocket(reinterpret_cast<sockaddr*>(&local), sizeof local);
  ASSERT_TRUE(s.ok()) << s.status();
  if (s->receive_buffer < kIkeReceiveBuffer) {
    ::close(s->fd);
    GTEST_SKIP() << "receive buffer capped at " << s->receive_buffer
                 << " bytes: needs root (SO_RCVBUFFORCE) or net.core.rmem_max >= " << kIkeReceiveBuffer;
  }
  socklen_t len = sizeof local;
  ASSERT_EQ(::getsockname(s->fd, reinterpret_cast<sockaddr*>(&local), &len), 0);

  // 1,000 requests the size of an IKE_SA_INIT with a few proposals, sent before any is read (the
  // kernel's default buffer held about 150 of them).
  constexpr int kBurst = 1000;
  int sender = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(sender, 0);
  const std::string request(480, 'x');
  for (int i = 0; i < kBurst; ++i) {
    ASSERT_EQ(::sendto(sender, request.data(), request.size(), 0, reinterpret_cast<sockaddr*>(&local), sizeof local),
              static_cast<ssize_t>(request.size()));
  }
  ::close(sender);

  int received = 0;
  char buf[2048];
  for (int i = 0; i <= kBurst; ++i) {  // bounded: one read per datagram sent, and one to see it empty
    if (::recv(s->fd, buf, sizeof buf, 0) < 0) break;  // non-blocking: EAGAIN once drained
    ++received;
  }
  EXPECT_EQ(received, kBurst);
  ::close(s->fd);
}

TEST(IkeSocketTest, AnAddressNotOnThisHostIsRefusedWithTheReason) {
  sockaddr_in local{};
  local.sin_family = AF_INET;
  local.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  auto first = OpenIkeSocket(reinterpret_cast<sockaddr*>(&local), sizeof local);
  ASSERT_TRUE(first.ok()) << first.status();
  socklen_t len = sizeof local;
  ASSERT_EQ(::getsockname(first->fd, reinterpret_cast<sockaddr*>(&local), &len), 0);
  ::close(first->fd);
  sockaddr_in foreign = local;
  foreign.sin_addr.s_addr = htonl(0xC0000201);  // 192.0.2.1: not ours
  auto bad = OpenIkeSocket(reinterpret_cast<sockaddr*>(&foreign), sizeof foreign);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_FALSE(bad.status().message().empty());
}

}  // namespace
}  // namespace ipfleet::agent
