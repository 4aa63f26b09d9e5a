#include "harness/nft.h"

#include <absl/strings/numbers.h>
#include <absl/strings/str_cat.h>

#include "harness/netns.h"
#include "harness/process.h"
#include "ipfleet/common/files.h"

namespace ipfleet::interop {

absl::Status NftLoad(const std::string& ns, const std::string& ruleset, const std::string& file) {
  IPFLEET_RETURN_IF_ERROR(files::WriteAtomic(file, ruleset, 0600));
  return RunOk(NetnsPair::Exec(ns, {"nft", "-f", file}), std::chrono::seconds(5)).status();
}

absl::StatusOr<uint64_t> NftCounter(const std::string& ns, const std::string& family, const std::string& table,
                                    const std::string& counter) {
  IPFLEET_ASSIGN_OR_RETURN(CommandResult r, RunOk(NetnsPair::Exec(ns, {"nft", "list", "counter", family, table,
                                                                       counter}),
                                                  std::chrono::seconds(5)));
  // "... counter NAME { packets 12 bytes 3456 }" (also split over lines).
  size_t p = r.out.find("packets ");
  uint64_t n = 0;
  if (p == std::string::npos) return absl::InternalError("nft counter output without packets: " + r.out);
  size_t e = r.out.find_first_not_of("0123456789", p + 8);
  if (!absl::SimpleAtoi(r.out.substr(p + 8, e - (p + 8)), &n))
    return absl::InternalError("nft counter output unparsable: " + r.out);
  return n;
}

absl::Status NftDeleteTable(const std::string& ns, const std::string& family, const std::string& table) {
  return RunOk(NetnsPair::Exec(ns, {"nft", "delete", "table", family, table}), std::chrono::seconds(5)).status();
}

}  // namespace ipfleet::interop
