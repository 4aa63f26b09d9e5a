// N namespaces on one bridge (a hub namespace), for mesh starts: host i has 192.0.2.(i+1)/24 on its veth and
// 198.51.100.(i+1)/32 on lo, every host reaches every other directly.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "harness/netns.h"
#include "ipfleet/common/status.h"

namespace ipfleet::interop {

class NetnsMesh {
 public:
  static absl::StatusOr<std::unique_ptr<NetnsMesh>> Create(int hosts);  // at most 200
  ~NetnsMesh();
  NetnsMesh(const NetnsMesh&) = delete;
  NetnsMesh& operator=(const NetnsMesh&) = delete;
  const std::vector<NetnsSide>& hosts() const { return hosts_; }

 private:
  NetnsMesh() = default;
  std::string hub_;
  std::vector<NetnsSide> hosts_;
  std::vector<std::string> created_;
};

}  // namespace ipfleet::interop
