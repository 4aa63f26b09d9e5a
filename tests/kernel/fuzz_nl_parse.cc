// libFuzzer target: arbitrary bytes as a stream of netlink messages through every XFRM parser
// (dump entries and multicast events come from the kernel, but a parser must never read out of
// bounds whatever it is given).
#include <libmnl/libmnl.h>
#include <linux/xfrm.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "nl_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Netlink buffers are 4-byte aligned; give the parsers the same.
  std::vector<uint32_t> aligned(size / 4 + 1);
  std::memcpy(aligned.data(), data, size);
  const auto* nlh = reinterpret_cast<const nlmsghdr*>(aligned.data());
  int left = static_cast<int>(size);
  for (; ipfleet::kernel::nl::MessageOk(nlh, left); nlh = mnl_nlmsg_next(nlh, &left)) {
    // Try the message under every type the layer parses, whatever type it claims.
    std::vector<uint32_t> copy(nlh->nlmsg_len / 4 + 1);
    std::memcpy(copy.data(), nlh, nlh->nlmsg_len);
    auto* m = reinterpret_cast<nlmsghdr*>(copy.data());
    for (uint16_t type : {XFRM_MSG_NEWSA, XFRM_MSG_NEWPOLICY, XFRM_MSG_ACQUIRE, XFRM_MSG_EXPIRE,
                          XFRM_MSG_POLEXPIRE}) {
      m->nlmsg_type = type;
      (void)ipfleet::kernel::nl::ParseSa(m);
      (void)ipfleet::kernel::nl::ParsePolicy(m);
      (void)ipfleet::kernel::nl::ParseEvent(m);
    }
  }
  return 0;
}
