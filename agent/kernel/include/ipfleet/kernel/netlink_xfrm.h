// The real implementation: XFRM over NETLINK_XFRM with libmnl.
#pragma once

#include <memory>
#include <string>

#include <absl/status/statusor.h>

#include "ipfleet/kernel/xfrm.h"

namespace ipfleet::kernel {

struct NetlinkOptions {
  // When set (e.g. "/run/netns/lab-a"), the sockets are opened inside that network namespace;
  // the calling thread returns to its own namespace before NewNetlinkXfrm() returns.
  std::string netns_path;
  // Upper bound of one sendmsg in a batch; messages that would overflow it go in the next one.
  size_t batch_bytes = 128 * 1024;
};

absl::StatusOr<std::unique_ptr<Xfrm>> NewNetlinkXfrm(const NetlinkOptions& options = {});

}  // namespace ipfleet::kernel
