// Make-before-break apply of a verified DesiredState:
//   1. bypass rules of the new state (allow/block policies) — always before protecting policies;
//   2. new trust (CA chain, CRL) to the IKE engine;
//   3. added tunnels, then changed tunnels (new SAs/policies up before old ones go);
//   4. removed tunnels;
//   5. bypass rules no longer wanted.
// Static-key tunnels are programmed into the kernel directly; IKE tunnels go to the engine.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "ipfleet/agent/sync/config.h"
#include "ipfleet/agent/sync/ike_seam.h"
#include "ipfleet/common/status.h"
#include "ipfleet/kernel/xfrm.h"

namespace ipfleet::agent {

struct TunnelOutcome {
  std::string tunnel;
  enum class Change { kAdded, kChanged, kUnchanged, kRemoved } change = Change::kUnchanged;
  absl::Status status;
};

struct ApplyOutcome {
  // Not OK when nothing could be applied (bypass rules failed); the old state then still runs.
  absl::Status status;
  std::vector<TunnelOutcome> tunnels;
};

class Applier {
 public:
  Applier(kernel::Xfrm& xfrm, IkeSeam& ike) : xfrm_(xfrm), ike_(ike) {}

  ApplyOutcome Apply(const DesiredState& next);
  // After a restart: brings the kernel's owned state to `state` (removing owned leftovers of the
  // previous run, which the fresh IKE engine cannot know) and loads every tunnel.
  ApplyOutcome Restore(const DesiredState& state);

  const DesiredState& current() const { return current_; }
  bool has_state() const { return has_state_; }
  // Static tunnel programming, also used by flush-sa on a static tunnel.
  absl::Status InstallStatic(const TunnelConfig& t, uint32_t priority);
  absl::Status RemoveStatic(const TunnelConfig& t);
  uint32_t priority() const { return priority_; }

 private:
  // Ends the IKE batch that Apply/Restore began; a failed load marks the IKE tunnels it added or changed.
  void EndIkeBatch(const DesiredState& next, ApplyOutcome& out);
  absl::Status InstallBypass(const std::vector<BypassConfig>& rules, std::vector<kernel::PolicyId>* added);
  ConnectionOptions Options(const DesiredState& s) const;

  kernel::Xfrm& xfrm_;
  IkeSeam& ike_;
  DesiredState current_;
  bool has_state_ = false;
  uint32_t priority_ = 0;
};

}  // namespace ipfleet::agent
