// Two network namespaces joined by a veth pair — the interop topology (LAB.md):
//   ns a: veth 192.0.2.1/24, lo 198.51.100.1/32      ns b: veth 192.0.2.2/24, lo 198.51.100.2/32
// The 198.51.100.x addresses are the protected subnets: kernel-libipsec refuses CHILD_SAs whose
// selectors are the IKE addresses themselves.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "ipfleet/common/status.h"

namespace ipfleet::interop {

struct NetnsSide {
  std::string ns;      // namespace name
  std::string veth;    // interface name inside it
  std::string addr;    // outer (IKE) address
  std::string subnet;  // protected /32 on lo
};

class NetnsPair {
 public:
  // Creates the pair with names unique to this process (prefix "ipfi<pid>x<n>"). Removes leftovers of
  // earlier runs whose creating process is gone.
  static absl::StatusOr<std::unique_ptr<NetnsPair>> Create();
  ~NetnsPair();
  NetnsPair(const NetnsPair&) = delete;
  NetnsPair& operator=(const NetnsPair&) = delete;

  const NetnsSide& a() const { return a_; }
  const NetnsSide& b() const { return b_; }

  // Removes namespaces named like ours whose creating process is gone (Create does this too).
  static void RemoveLeftovers();

  // argv prefixed with `ip netns exec NS`.
  static std::vector<std::string> Exec(const std::string& ns, std::vector<std::string> argv);

 private:
  NetnsPair() = default;
  NetnsSide a_, b_;
  bool created_a_ = false, created_b_ = false;
};

// True when the current process may create namespaces (root).
bool HaveRoot();

}  // namespace ipfleet::interop
