#include "ipfleet/agent/health/prober.h"

#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#include <absl/strings/str_cat.h>

namespace ipfleet::agent::health {
namespace {

uint16_t Checksum(const uint8_t* data, size_t len) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < len; i += 2) sum += (data[i] << 8) | data[i + 1];
  if (len & 1) sum += data[len - 1] << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return htons(static_cast<uint16_t>(~sum));
}

constexpr size_t kMaxTracked = 256;

}  // namespace

IcmpProber::IcmpProber() : ident_(static_cast<uint16_t>(std::random_device{}())) {}

IcmpProber::~IcmpProber() {
  if (fd4_ >= 0) close(fd4_);
  if (fd6_ >= 0) close(fd6_);
}

absl::StatusOr<uint64_t> IcmpProber::Send(const IpAddress& src, const IpAddress& dst) {
  const bool v6 = dst.family == AF_INET6;
  int& fd = v6 ? fd6_ : fd4_;
  if (fd < 0) {
    fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, v6 ? int{IPPROTO_ICMPV6} : int{IPPROTO_ICMP});
    if (fd < 0) return absl::PermissionDeniedError(absl::StrCat("socket(SOCK_RAW, ICMP): ", std::strerror(errno)));
  }
  uint16_t seq = next_seq_++;
  uint8_t pkt[16] = {};
  pkt[0] = static_cast<uint8_t>(v6 ? int{ICMP6_ECHO_REQUEST} : int{ICMP_ECHO});
  uint16_t id_n = htons(ident_), seq_n = htons(seq);
  std::memcpy(pkt + 4, &id_n, 2);
  std::memcpy(pkt + 6, &seq_n, 2);
  std::memcpy(pkt + 8, "ipfleet!", 8);
  if (!v6) {
    uint16_t c = Checksum(pkt, sizeof(pkt));
    std::memcpy(pkt + 2, &c, 2);  // ICMPv6 checksums are filled in by the kernel
  }
  // The source address selects the protecting policy's selector; send from it explicitly.
  sockaddr_storage from{}, to{};
  socklen_t len;
  if (v6) {
    auto* f = reinterpret_cast<sockaddr_in6*>(&from);
    auto* t = reinterpret_cast<sockaddr_in6*>(&to);
    f->sin6_family = t->sin6_family = AF_INET6;
    std::memcpy(&f->sin6_addr, src.bytes.data(), 16);
    std::memcpy(&t->sin6_addr, dst.bytes.data(), 16);
    len = sizeof(sockaddr_in6);
  } else {
    auto* f = reinterpret_cast<sockaddr_in*>(&from);
    auto* t = reinterpret_cast<sockaddr_in*>(&to);
    f->sin_family = t->sin_family = AF_INET;
    std::memcpy(&f->sin_addr, src.bytes.data(), 4);
    std::memcpy(&t->sin_addr, dst.bytes.data(), 4);
    len = sizeof(sockaddr_in);
  }
  // Rebinding a raw socket to another source is allowed; probes are rare.
  if (bind(fd, reinterpret_cast<sockaddr*>(&from), len) != 0 && errno != EINVAL) {
    return absl::InternalError(absl::StrCat("bind probe source ", src.ToString(), ": ", std::strerror(errno)));
  }
  if (sendto(fd, pkt, sizeof(pkt), 0, reinterpret_cast<sockaddr*>(&to), len) < 0) {
    return absl::UnavailableError(absl::StrCat("sendto probe ", dst.ToString(), ": ", std::strerror(errno)));
  }
  if (answered_.size() >= kMaxTracked) answered_.erase(answered_.begin());
  answered_[seq] = false;
  return uint64_t{v6 ? 1u : 0u} << 32 | seq;
}

void IcmpProber::Drain(int fd, bool v6) {
  uint8_t buf[2048];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n <= 0) return;
    const uint8_t* icmp = buf;
    size_t len = static_cast<size_t>(n);
    if (!v6) {  // IPv4 raw sockets deliver the IP header too
      size_t ihl = (buf[0] & 0x0f) * 4u;
      if (len < ihl + 8) continue;
      icmp += ihl;
      len -= ihl;
    } else if (len < 8) {
      continue;
    }
    if (icmp[0] != (v6 ? int{ICMP6_ECHO_REPLY} : int{ICMP_ECHOREPLY})) continue;
    uint16_t id, seq;
    std::memcpy(&id, icmp + 4, 2);
    std::memcpy(&seq, icmp + 6, 2);
    if (ntohs(id) != ident_) continue;
    if (auto it = answered_.find(ntohs(seq)); it != answered_.end()) it->second = true;
  }
}

bool IcmpProber::Answered(uint64_t handle) {
  bool v6 = (handle >> 32) & 1;
  int fd = v6 ? fd6_ : fd4_;
  if (fd >= 0) Drain(fd, v6);
  auto it = answered_.find(static_cast<uint16_t>(handle & 0xffff));
  return it != answered_.end() && it->second;
}

}  // namespace ipfleet::agent::health
