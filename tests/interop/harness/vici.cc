#include "harness/vici.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <absl/strings/str_cat.h>

namespace ipfleet::interop {
namespace {

// Packet and element types of the VICI protocol.
enum : uint8_t { kCmdRequest = 0, kCmdResponse = 1, kCmdUnknown = 2, kEventRegister = 3, kEventConfirm = 5,
                 kEventUnknown = 6, kEvent = 7 };
enum : uint8_t { kSectionStart = 1, kSectionEnd = 2, kKeyValue = 3, kListStart = 4, kListItem = 5, kListEnd = 6 };

void PutName(std::string& out, const std::string& name) {
  out.push_back(static_cast<char>(name.size()));
  out += name;
}

std::string Encode(uint8_t type, const std::string& name, const ViciMessage& msg) {
  std::string body;
  body.push_back(static_cast<char>(type));
  PutName(body, name);
  for (const auto& [k, v] : msg.kv) {
    body.push_back(static_cast<char>(kKeyValue));
    PutName(body, k);
    body.push_back(static_cast<char>((v.size() >> 8) & 0xff));
    body.push_back(static_cast<char>(v.size() & 0xff));
    body += v;
  }
  std::string out(4, '\0');
  const uint32_t len = static_cast<uint32_t>(body.size());
  out[0] = static_cast<char>(len >> 24);
  out[1] = static_cast<char>(len >> 16);
  out[2] = static_cast<char>(len >> 8);
  out[3] = static_cast<char>(len);
  return out + body;
}

// Decodes message elements; every read is bounds-checked against the packet.
absl::StatusOr<ViciMessage> DecodeMessage(const std::string& p, size_t pos) {
  ViciMessage m;
  std::vector<std::string> path;
  std::string list_key;
  auto name = [&](std::string& out) -> bool {
    if (pos >= p.size()) return false;
    size_t n = static_cast<uint8_t>(p[pos++]);
    if (pos + n > p.size()) return false;
    out = p.substr(pos, n);
    pos += n;
    return true;
  };
  auto value = [&](std::string& out) -> bool {
    if (pos + 2 > p.size()) return false;
    size_t n = (static_cast<uint8_t>(p[pos]) << 8) | static_cast<uint8_t>(p[pos + 1]);
    pos += 2;
    if (pos + n > p.size()) return false;
    out = p.substr(pos, n);
    pos += n;
    return true;
  };
  auto prefix = [&] {
    std::string s;
    for (const auto& x : path) s += x + ".";
    return s;
  };
  while (pos < p.size()) {
    uint8_t t = static_cast<uint8_t>(p[pos++]);
    std::string k, v;
    switch (t) {
      case kSectionStart:
        if (!name(k)) return absl::InvalidArgumentError("vici: truncated section name");
        path.push_back(k);
        break;
      case kSectionEnd:
        if (path.empty()) return absl::InvalidArgumentError("vici: unbalanced section end");
        path.pop_back();
        break;
      case kKeyValue:
        if (!name(k) || !value(v)) return absl::InvalidArgumentError("vici: truncated key/value");
        m.kv.emplace_back(prefix() + k, v);
        break;
      case kListStart:
        if (!name(list_key)) return absl::InvalidArgumentError("vici: truncated list name");
        break;
      case kListItem:
        if (!value(v)) return absl::InvalidArgumentError("vici: truncated list item");
        m.kv.emplace_back(prefix() + list_key, v);
        break;
      case kListEnd:
        break;
      default:
        return absl::InvalidArgumentError(absl::StrCat("vici: unknown element type ", t));
    }
  }
  return m;
}

}  // namespace

std::string ViciMessage::Get(const std::string& key) const {
  for (const auto& [k, v] : kv) {
    if (k == key) return v;
  }
  return "";
}

absl::StatusOr<ViciClient> ViciClient::Connect(const std::string& socket_path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket(AF_UNIX): ", std::strerror(errno)));
  ViciClient c(fd);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof addr.sun_path) return absl::InvalidArgumentError("vici socket path too long");
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return absl::UnavailableError(absl::StrCat("connect(", socket_path, "): ", std::strerror(errno)));
  }
  return c;
}

ViciClient& ViciClient::operator=(ViciClient&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) close(fd_);
    fd_ = o.fd_;
    o.fd_ = -1;
    inbuf_ = std::move(o.inbuf_);
    queued_ = std::move(o.queued_);
  }
  return *this;
}

ViciClient::~ViciClient() {
  if (fd_ >= 0) close(fd_);
}

absl::Status ViciClient::WriteAll(const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = write(fd_, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::InternalError(absl::StrCat("vici write: ", std::strerror(errno)));
    }
    off += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status ViciClient::Send(const std::string& command, const ViciMessage& args) {
  return WriteAll(Encode(kCmdRequest, command, args));
}

absl::StatusOr<ViciClient::Packet> ViciClient::ReadPacket(std::chrono::milliseconds timeout) {
  if (!queued_.empty()) {
    Packet p = std::move(queued_.front());
    queued_.erase(queued_.begin());
    return p;
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (inbuf_.size() >= 4) {
      const uint32_t len = (static_cast<uint8_t>(inbuf_[0]) << 24) | (static_cast<uint8_t>(inbuf_[1]) << 16) |
                           (static_cast<uint8_t>(inbuf_[2]) << 8) | static_cast<uint8_t>(inbuf_[3]);
      if (len > 512 * 1024) return absl::InvalidArgumentError("vici: packet too large");
      if (inbuf_.size() >= 4 + len) {
        std::string p = inbuf_.substr(4, len);
        inbuf_.erase(0, 4 + len);
        if (p.empty()) return absl::InvalidArgumentError("vici: empty packet");
        Packet out;
        out.type = static_cast<uint8_t>(p[0]);
        size_t pos = 1;
        if (out.type == kEvent) {
          if (p.size() < 2 || 2 + static_cast<size_t>(static_cast<uint8_t>(p[1])) > p.size()) {
            return absl::InvalidArgumentError("vici: truncated event name");
          }
          out.name = p.substr(2, static_cast<uint8_t>(p[1]));
          pos = 2 + out.name.size();
        }
        IPFLEET_ASSIGN_OR_RETURN(out.msg, DecodeMessage(p, pos));
        return out;
      }
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return absl::DeadlineExceededError("vici: no packet before the deadline");
    pollfd pfd{fd_, POLLIN, 0};
    int n = poll(&pfd, 1, static_cast<int>(left.count()));
    if (n < 0 && errno != EINTR) return absl::InternalError(absl::StrCat("vici poll: ", std::strerror(errno)));
    if (n <= 0) continue;
    char buf[16384];
    ssize_t r = read(fd_, buf, sizeof buf);
    if (r == 0) return absl::UnavailableError("vici: connection closed by charon");
    if (r < 0) {
      if (errno == EINTR) continue;
      return absl::InternalError(absl::StrCat("vici read: ", std::strerror(errno)));
    }
    inbuf_.append(buf, static_cast<size_t>(r));
  }
}

absl::StatusOr<ViciMessage> ViciClient::Request(const std::string& command, const ViciMessage& args,
                                                std::chrono::milliseconds timeout) {
  IPFLEET_RETURN_IF_ERROR(Send(command, args));
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::vector<Packet> events;
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    auto p = ReadPacket(std::max(left, std::chrono::milliseconds(0)));
    if (!p.ok()) {
      queued_.insert(queued_.end(), events.begin(), events.end());
      return p.status();
    }
    if (p->type == kEvent) {
      events.push_back(*std::move(p));
      continue;
    }
    queued_.insert(queued_.end(), events.begin(), events.end());
    if (p->type == kCmdUnknown) return absl::NotFoundError("vici: unknown command " + command);
    if (p->type != kCmdResponse) return absl::InternalError(absl::StrCat("vici: unexpected packet type ", p->type));
    return p->msg;
  }
}

absl::Status ViciClient::RegisterEvent(const std::string& event, std::chrono::milliseconds timeout) {
  IPFLEET_RETURN_IF_ERROR(WriteAll(Encode(kEventRegister, event, {})));
  IPFLEET_ASSIGN_OR_RETURN(Packet p, ReadPacket(timeout));
  if (p.type == kEventUnknown) return absl::NotFoundError("vici: unknown event " + event);
  if (p.type != kEventConfirm) return absl::InternalError(absl::StrCat("vici: event register got type ", p.type));
  return absl::OkStatus();
}

}  // namespace ipfleet::interop
