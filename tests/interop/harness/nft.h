// nftables in a test namespace: load a ruleset, read a named counter, drop a table. Used to build the NAT
// router, to drop IP fragments on a small-MTU link and to hold IKE packets back for simultaneous rekeys.
#pragma once

#include <cstdint>
#include <string>

#include "ipfleet/common/status.h"

namespace ipfleet::interop {

// `nft -f -` equivalent: writes `ruleset` to `file` and loads it inside `ns`.
absl::Status NftLoad(const std::string& ns, const std::string& ruleset, const std::string& file);
// Packets counted so far by the named counter object `table`/`counter` of `family` (e.g. "inet").
absl::StatusOr<uint64_t> NftCounter(const std::string& ns, const std::string& family, const std::string& table,
                                    const std::string& counter);
absl::Status NftDeleteTable(const std::string& ns, const std::string& family, const std::string& table);

}  // namespace ipfleet::interop
