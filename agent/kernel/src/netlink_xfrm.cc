// Xfrm over NETLINK_XFRM with libmnl. Two sockets: one for requests (batched sendmsg, one ack per
// message mapped back by sequence number), one joined to the ACQUIRE/EXPIRE multicast groups.
#include "ipfleet/kernel/netlink_xfrm.h"

#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/xfrm.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include <absl/strings/str_cat.h>
#include <spdlog/spdlog.h>

#include "internal.h"
#include "nl_codec.h"

namespace ipfleet::kernel {
namespace {

struct MnlCloser {
  void operator()(mnl_socket* s) const { mnl_socket_close(s); }
};
using MnlSocket = std::unique_ptr<mnl_socket, MnlCloser>;

struct FdCloser {
  void operator()(int* fd) const {
    if (*fd >= 0) close(*fd);
    delete fd;
  }
};
using Fd = std::unique_ptr<int, FdCloser>;
Fd MakeFd(int fd) { return Fd(new int(fd)); }

absl::Status SysError(const std::string& call) {
  return nl::ErrnoStatus(errno, call);
}

// Most acks a batch may wait for; with the enlarged receive buffer they all fit queued.
constexpr size_t kMaxMessagesPerSend = 2048;
constexpr int kSocketBuffer = 16 * 1024 * 1024;
constexpr size_t kRecvBuffer = 64 * 1024;

absl::StatusOr<MnlSocket> OpenSocket() {
  MnlSocket nl(mnl_socket_open2(NETLINK_XFRM, SOCK_CLOEXEC));
  if (!nl) return SysError("mnl_socket_open(NETLINK_XFRM)");
  int fd = mnl_socket_get_fd(nl.get());
  // Room for thousands of queued acks; FORCE needs CAP_NET_ADMIN, plain SO_RCVBUF is capped.
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &kSocketBuffer, sizeof kSocketBuffer) != 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &kSocketBuffer, sizeof kSocketBuffer);
  }
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &kSocketBuffer, sizeof kSocketBuffer) != 0) {
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &kSocketBuffer, sizeof kSocketBuffer);
  }
  int one = 1;
  // Errors carry only the failed message's header back, plus the kernel's explanation text.
  mnl_socket_setsockopt(nl.get(), NETLINK_CAP_ACK, &one, sizeof one);
  mnl_socket_setsockopt(nl.get(), NETLINK_EXT_ACK, &one, sizeof one);
  timeval tv{10, 0};  // a kernel that never answers must not hang the agent
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (mnl_socket_bind(nl.get(), 0, MNL_SOCKET_AUTOPID) < 0) return SysError("mnl_socket_bind");
  return nl;
}

// The text of NLMSGERR_ATTR_MSG in an extended ack, if any.
std::string ExtAckText(const nlmsghdr* nlh) {
  if ((nlh->nlmsg_flags & NLM_F_ACK_TLVS) == 0) return {};
  const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
  size_t offset = sizeof(nlmsgerr);
  if ((nlh->nlmsg_flags & NLM_F_CAPPED) == 0) offset += err->msg.nlmsg_len - sizeof(nlmsghdr);
  std::string text;
  mnl_attr_parse(
      nlh, offset,
      [](const nlattr* attr, void* data) -> int {
        if (mnl_attr_get_type(attr) == NLMSGERR_ATTR_MSG &&
            mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) == 0) {
          *static_cast<std::string*>(data) = mnl_attr_get_str(attr);
        }
        return MNL_CB_OK;
      },
      &text);
  return text;
}

class NetlinkXfrm final : public Xfrm {
 public:
  NetlinkXfrm(MnlSocket req, MnlSocket events, size_t batch_bytes)
      : req_(std::move(req)), events_(std::move(events)), batch_bytes_(batch_bytes),
        send_buf_(batch_bytes), recv_buf_(kRecvBuffer) {
    portid_ = mnl_socket_get_portid(req_.get());
    seq_ = static_cast<uint32_t>(time(nullptr));
  }

  absl::StatusOr<uint32_t> AllocSpi(const SpiRequest& r) override {
    auto len = nl::BuildAllocSpi(r, ++seq_, send_buf_.data(), send_buf_.size());
    if (!len.ok()) return len.status();
    std::string what = absl::StrCat("XFRM_MSG_ALLOCSPI dst=", r.dst.ToString(), " reqid=", r.reqid);
    auto reply = Request(*len, what);
    if (!reply.ok()) return reply.status();
    return reply->params.spi;
  }

  absl::Status AddSa(const SaParams& sa) override { return One(AddSa_{sa}); }
  absl::Status UpdateSa(const SaParams& sa) override { return One(UpdateSa_{sa}); }
  absl::Status DeleteSa(const SaId& id) override { return One(DeleteSa_{id}); }

  absl::StatusOr<SaState> QuerySa(const SaId& id) override {
    auto len = nl::BuildGetSa(id, ++seq_, send_buf_.data(), send_buf_.size());
    if (!len.ok()) return len.status();
    return Request(*len, absl::StrCat("XFRM_MSG_GETSA ", id.ToString()));
  }

  absl::StatusOr<std::vector<SaState>> DumpSas() override {
    std::vector<SaState> out;
    auto st = Dump(XFRM_MSG_GETSA, [&](const nlmsghdr* nlh) -> absl::Status {
      auto sa = nl::ParseSa(nlh);
      if (!sa.ok()) return sa.status();
      out.push_back(std::move(*sa));
      return absl::OkStatus();
    });
    if (!st.ok()) return st;
    return out;
  }

  absl::Status AddPolicy(const PolicyParams& p) override { return One(AddPolicy_{p}); }
  absl::Status UpdatePolicy(const PolicyParams& p) override { return One(UpdatePolicy_{p}); }
  absl::Status DeletePolicy(const PolicyId& id) override { return One(DeletePolicy_{id}); }

  absl::StatusOr<std::vector<PolicyState>> DumpPolicies() override {
    std::vector<PolicyState> out;
    auto st = Dump(XFRM_MSG_GETPOLICY, [&](const nlmsghdr* nlh) -> absl::Status {
      auto p = nl::ParsePolicy(nlh);
      if (!p.ok()) return p.status();
      out.push_back(std::move(*p));
      return absl::OkStatus();
    });
    if (!st.ok()) return st;
    return out;
  }

  std::vector<absl::Status> Apply(std::span<const BatchOp> ops) override;

  absl::Status Subscribe(EventCallback callback) override {
    unsigned groups[] = {XFRMNLGRP_ACQUIRE, XFRMNLGRP_EXPIRE};
    for (unsigned g : groups) {
      if (mnl_socket_setsockopt(events_.get(), NETLINK_ADD_MEMBERSHIP, &g, sizeof g) < 0) {
        return SysError(absl::StrCat("setsockopt(NETLINK_ADD_MEMBERSHIP, group=", g, ")"));
      }
    }
    int fd = mnl_socket_get_fd(events_.get());
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) return SysError("fcntl(O_NONBLOCK)");
    callback_ = std::move(callback);
    return absl::OkStatus();
  }

  int event_fd() const override { return callback_ ? mnl_socket_get_fd(events_.get()) : -1; }

  absl::StatusOr<size_t> Dispatch() override;

  absl::StatusOr<FlushReport> FlushOwned() override { return FlushOwnedWith(*this); }
  absl::StatusOr<ReconcileReport> Reconcile(const DesiredState& desired) override {
    return ReconcileWith(*this, desired);
  }

 private:
  // Aliases so the single-op methods can name the batch op types despite the method names.
  using AddSa_ = kernel::AddSa;
  using UpdateSa_ = kernel::UpdateSa;
  using DeleteSa_ = kernel::DeleteSa;
  using AddPolicy_ = kernel::AddPolicy;
  using UpdatePolicy_ = kernel::UpdatePolicy;
  using DeletePolicy_ = kernel::DeletePolicy;

  absl::Status One(BatchOp op) { return Apply(std::span<const BatchOp>(&op, 1))[0]; }
  absl::StatusOr<SaState> Request(size_t len, const std::string& what);
  absl::Status Dump(uint16_t type, const std::function<absl::Status(const nlmsghdr*)>& each);
  absl::Status AssignIndices(std::vector<BatchOp>& ops);
  void SendAndCollect(size_t len, uint32_t first_seq, const std::vector<size_t>& op_of,
                      std::span<const BatchOp> ops, std::vector<absl::Status>& results);

  MnlSocket req_;
  MnlSocket events_;
  size_t batch_bytes_;
  std::vector<char> send_buf_;
  std::vector<char> recv_buf_;
  uint32_t portid_ = 0;
  uint32_t seq_ = 0;
  EventCallback callback_;
  std::optional<uint32_t> next_index_;  // next owned policy index serial, learnt from a dump
};

absl::StatusOr<SaState> NetlinkXfrm::Request(size_t len, const std::string& what) {
  const auto* req = reinterpret_cast<const nlmsghdr*>(send_buf_.data());
  uint32_t seq = req->nlmsg_seq;
  if (mnl_socket_sendto(req_.get(), send_buf_.data(), len) < 0) return SysError(what + " sendto");
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(req_.get(), recv_buf_.data(), recv_buf_.size());
    if (n < 0) return SysError(what + " recvfrom");
    const auto* nlh = reinterpret_cast<const nlmsghdr*>(recv_buf_.data());
    int left = static_cast<int>(n);
    for (; nl::MessageOk(nlh, left); nlh = mnl_nlmsg_next(nlh, &left)) {
      if (nlh->nlmsg_seq != seq) continue;  // a late ack of an earlier request
      if (nlh->nlmsg_type == NLMSG_ERROR) {
        const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
        if (err->error == 0) return absl::InternalError(what + ": ack without reply");
        std::string ext = ExtAckText(nlh);
        return nl::ErrnoStatus(-err->error, ext.empty() ? what : absl::StrCat(what, " (", ext, ")"));
      }
      auto sa = nl::ParseSa(nlh);
      if (!sa.ok()) return absl::Status(sa.status().code(), absl::StrCat(what, ": ", sa.status().message()));
      return sa;
    }
  }
}

absl::Status NetlinkXfrm::Dump(uint16_t type,
                               const std::function<absl::Status(const nlmsghdr*)>& each) {
  uint32_t seq = ++seq_;
  auto len = nl::BuildDump(type, seq, send_buf_.data(), send_buf_.size());
  if (!len.ok()) return len.status();
  std::string what = absl::StrCat(nl::MessageName(type), " dump");
  if (mnl_socket_sendto(req_.get(), send_buf_.data(), *len) < 0) return SysError(what + " sendto");
  struct Ctx {
    const std::function<absl::Status(const nlmsghdr*)>* each;
    absl::Status status;
  } ctx{&each, absl::OkStatus()};
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(req_.get(), recv_buf_.data(), recv_buf_.size());
    if (n < 0) return SysError(what + " recvfrom");
    int rc = mnl_cb_run(
        recv_buf_.data(), n, seq, portid_,
        [](const nlmsghdr* nlh, void* data) -> int {
          auto* c = static_cast<Ctx*>(data);
          if (!c->status.ok()) return MNL_CB_OK;  // keep draining, report the first error
          c->status = (*c->each)(nlh);
          return MNL_CB_OK;
        },
        &ctx);
    if (rc == MNL_CB_ERROR) return SysError(what);
    if (rc == MNL_CB_STOP) break;
  }
  if (!ctx.status.ok()) {
    return absl::Status(ctx.status.code(), absl::StrCat(what, ": ", ctx.status.message()));
  }
  return absl::OkStatus();
}

// Gives every policy without an index an owned one. The first time, one dump tells which owned
// indices exist already (e.g. from before a restart), so new ones do not collide with them.
absl::Status NetlinkXfrm::AssignIndices(std::vector<BatchOp>& ops) {
  bool needed = false;
  for (const auto& op : ops) {
    if (const auto* a = std::get_if<kernel::AddPolicy>(&op)) needed |= a->policy.index == 0;
    if (const auto* u = std::get_if<kernel::UpdatePolicy>(&op)) needed |= u->policy.index == 0;
  }
  if (!needed) return absl::OkStatus();
  if (!next_index_) {
    uint32_t next = 0;
    auto st = Dump(XFRM_MSG_GETPOLICY, [&](const nlmsghdr* nlh) -> absl::Status {
      auto p = nl::ParsePolicy(nlh);
      if (p.ok() && IsOwnedPolicyIndex(p->params.index)) {
        next = std::max(next, internal::OwnedPolicyIndexSerial(p->params.index) + 1);
      }
      return absl::OkStatus();
    });
    if (!st.ok()) return st;
    next_index_ = next;
  }
  for (auto& op : ops) {
    PolicyParams* p = nullptr;
    if (auto* a = std::get_if<kernel::AddPolicy>(&op)) p = &a->policy;
    if (auto* u = std::get_if<kernel::UpdatePolicy>(&op)) p = &u->policy;
    if (p != nullptr && p->index == 0) p->index = internal::OwnedPolicyIndex((*next_index_)++, p->dir);
  }
  return absl::OkStatus();
}

std::vector<absl::Status> NetlinkXfrm::Apply(std::span<const BatchOp> in) {
  std::vector<absl::Status> results(in.size(), absl::OkStatus());
  std::vector<BatchOp> ops(in.begin(), in.end());
  if (auto st = AssignIndices(ops); !st.ok()) {
    std::fill(results.begin(), results.end(), st);
    return results;
  }
  size_t cap = std::min(batch_bytes_, send_buf_.size());
  size_t used = 0;
  size_t dirty = 0;  // how much of the send buffer held key material this call
  uint32_t first_seq = seq_ + 1;
  std::vector<size_t> op_of;  // message k of this send carries ops[op_of[k]]
  for (size_t i = 0; i < ops.size(); ++i) {
    uint32_t seq = first_seq + static_cast<uint32_t>(op_of.size());
    auto len = nl::BuildOp(ops[i], seq, send_buf_.data() + used, cap - used);
    if (!len.ok()) dirty = cap;  // a half-built message may hold key bytes anywhere
    if (!len.ok() && absl::IsResourceExhausted(len.status()) && used > 0) {
      // Does not fit behind the others: send those, then build it again in the empty buffer.
      SendAndCollect(used, first_seq, op_of, ops, results);
      used = 0;
      first_seq = seq_ + 1;
      op_of.clear();
      seq = first_seq;
      len = nl::BuildOp(ops[i], seq, send_buf_.data(), cap);
    }
    if (!len.ok()) {
      results[i] = absl::IsResourceExhausted(len.status())
                       ? absl::ResourceExhaustedError(absl::StrCat(
                             nl::DescribeOp(ops[i]), ": larger than the batch buffer"))
                       : len.status();
      continue;
    }
    used += NLMSG_ALIGN(*len);
    dirty = std::max(dirty, used);
    op_of.push_back(i);
    seq_ = seq;
    if (op_of.size() >= kMaxMessagesPerSend) {
      SendAndCollect(used, first_seq, op_of, ops, results);
      used = 0;
      first_seq = seq_ + 1;
      op_of.clear();
    }
  }
  if (!op_of.empty()) SendAndCollect(used, first_seq, op_of, ops, results);
  // Keys were in the send buffer.
  explicit_bzero(send_buf_.data(), std::min(cap, dirty + 4096));
  return results;
}

void NetlinkXfrm::SendAndCollect(size_t len, uint32_t first_seq, const std::vector<size_t>& op_of,
                                 std::span<const BatchOp> ops, std::vector<absl::Status>& results) {
  std::vector<bool> acked(op_of.size(), false);
  size_t pending = op_of.size();
  auto fail_rest = [&](const absl::Status& why) {
    for (size_t k = 0; k < op_of.size(); ++k) {
      if (!acked[k]) {
        results[op_of[k]] = absl::Status(why.code(), absl::StrCat(nl::DescribeOp(ops[op_of[k]]),
                                                                  ": ", why.message()));
      }
    }
  };
  if (mnl_socket_sendto(req_.get(), send_buf_.data(), len) < 0) {
    fail_rest(SysError("sendmsg"));
    return;
  }
  while (pending > 0) {
    ssize_t n = mnl_socket_recvfrom(req_.get(), recv_buf_.data(), recv_buf_.size());
    if (n < 0) {
      fail_rest(SysError("recvmsg (ack)"));
      return;
    }
    const auto* nlh = reinterpret_cast<const nlmsghdr*>(recv_buf_.data());
    int left = static_cast<int>(n);
    for (; nl::MessageOk(nlh, left); nlh = mnl_nlmsg_next(nlh, &left)) {
      if (nlh->nlmsg_type != NLMSG_ERROR) continue;
      uint32_t k = nlh->nlmsg_seq - first_seq;  // the ack's seq is its request's seq
      if (k >= op_of.size() || acked[k]) continue;
      acked[k] = true;
      --pending;
      const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
      if (err->error != 0) {
        std::string what = nl::DescribeOp(ops[op_of[k]]);
        std::string ext = ExtAckText(nlh);
        if (!ext.empty()) absl::StrAppend(&what, " (", ext, ")");
        results[op_of[k]] = nl::ErrnoStatus(-err->error, what);
      }
    }
  }
}

absl::StatusOr<size_t> NetlinkXfrm::Dispatch() {
  if (!callback_) return absl::FailedPreconditionError("Dispatch: Subscribe() first");
  size_t delivered = 0;
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(events_.get(), recv_buf_.data(), recv_buf_.size());
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return delivered;
      if (errno == ENOBUFS) {
        // The kernel dropped events while we were slow; the agent's periodic dump catches up.
        spdlog::warn("event=xfrm_events_lost reason=ENOBUFS");
        continue;
      }
      return SysError("recvmsg (xfrm events)");
    }
    const auto* nlh = reinterpret_cast<const nlmsghdr*>(recv_buf_.data());
    int left = static_cast<int>(n);
    for (; nl::MessageOk(nlh, left); nlh = mnl_nlmsg_next(nlh, &left)) {
      auto ev = nl::ParseEvent(nlh);
      if (!ev.ok()) {
        if (!absl::IsUnimplemented(ev.status())) {
          spdlog::warn("event=xfrm_event_unparsable error=\"{}\"", ev.status().ToString());
        }
        continue;
      }
      callback_(*ev);
      ++delivered;
    }
  }
}

// Runs `fn` with the calling thread inside the network namespace at `path`, then returns.
template <typename Fn>
auto InNetns(const std::string& path, Fn fn) -> decltype(fn()) {
  if (path.empty()) return fn();
  Fd self = MakeFd(open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
  if (*self < 0) return SysError("open(/proc/thread-self/ns/net)");
  Fd target = MakeFd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (*target < 0) return SysError(absl::StrCat("open(", path, ")"));
  if (setns(*target, CLONE_NEWNET) != 0) return SysError(absl::StrCat("setns(", path, ")"));
  auto result = fn();
  if (setns(*self, CLONE_NEWNET) != 0) {
    // Staying in the wrong namespace would silently misdirect everything after: stop here.
    spdlog::critical("event=setns_back_failed errno={}", errno);
    std::abort();
  }
  return result;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Xfrm>> NewNetlinkXfrm(const NetlinkOptions& options) {
  using Pair = std::pair<MnlSocket, MnlSocket>;
  auto sockets = InNetns(options.netns_path, []() -> absl::StatusOr<Pair> {
    auto req = OpenSocket();
    if (!req.ok()) return req.status();
    auto ev = OpenSocket();
    if (!ev.ok()) return ev.status();
    return Pair(std::move(*req), std::move(*ev));
  });
  if (!sockets.ok()) return sockets.status();
  size_t batch = std::clamp<size_t>(options.batch_bytes, 4096, 4 * 1024 * 1024);
  return std::unique_ptr<Xfrm>(
      new NetlinkXfrm(std::move(sockets->first), std::move(sockets->second), batch));
}

}  // namespace ipfleet::kernel
