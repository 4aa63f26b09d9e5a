// XFRM netlink messages <-> the plain data model. Pure functions over byte buffers (no sockets),
// so unit tests build a message and parse it back. Built with libmnl, parsed with one validating
// callback per attribute.
#pragma once

#include <linux/netlink.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include <absl/status/statusor.h>

#include "ipfleet/kernel/xfrm.h"

namespace ipfleet::kernel::nl {

// Every Build* writes one complete request at `buf` using at most `cap` bytes and returns its
// length. When it does not fit it returns ResourceExhausted and the space holds nothing useful:
// the caller sends what it has and builds the message again in an empty buffer (a message is
// split from the batch, never truncated). Requests carry NLM_F_REQUEST|NLM_F_ACK.
absl::StatusOr<size_t> BuildOp(const BatchOp& op, uint32_t seq, void* buf, size_t cap);
absl::StatusOr<size_t> BuildAllocSpi(const SpiRequest& request, uint32_t seq, void* buf,
                                     size_t cap);
absl::StatusOr<size_t> BuildGetSa(const SaId& id, uint32_t seq, void* buf, size_t cap);
// A dump request (XFRM_MSG_GETSA or XFRM_MSG_GETPOLICY with NLM_F_DUMP).
absl::StatusOr<size_t> BuildDump(uint16_t type, uint32_t seq, void* buf, size_t cap);

// "XFRM_MSG_NEWSA spi=0x... dst=... proto=esp", the prefix of every error about `op`.
std::string DescribeOp(const BatchOp& op);
const char* MessageName(uint16_t type);

// Parses an XFRM_MSG_NEWSA (dump entry, GETSA/ALLOCSPI reply).
absl::StatusOr<SaState> ParseSa(const nlmsghdr* nlh);
// Parses an XFRM_MSG_NEWPOLICY (dump entry).
absl::StatusOr<PolicyState> ParsePolicy(const nlmsghdr* nlh);
// Parses XFRM_MSG_ACQUIRE, XFRM_MSG_EXPIRE, XFRM_MSG_POLEXPIRE.
absl::StatusOr<XfrmEvent> ParseEvent(const nlmsghdr* nlh);

// mnl_nlmsg_ok, plus a guard it lacks: it compares (int)nlmsg_len, so a length of 2^31 or more
// passes as negative. Every loop over received messages uses this.
bool MessageOk(const nlmsghdr* nlh, int left);

// errno -> absl code (EEXIST AlreadyExists, ENOENT/ESRCH NotFound, EINVAL InvalidArgument, ...).
absl::Status ErrnoStatus(int err, const std::string& message);

}  // namespace ipfleet::kernel::nl
