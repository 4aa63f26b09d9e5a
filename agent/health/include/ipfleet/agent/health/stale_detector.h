// Stale-SA judgement, pure (time and counters are inputs), so tests drive it with a fake clock.
//
// A CHILD_SA is stale when its outbound packet counter rises while the inbound one stands still
// for at least `threshold`, AND a probe sent through the SA (an ICMP echo between the tunnel's
// inner addresses) then goes unanswered for `probe_timeout`. One-way traffic alone never makes
// an SA stale: the probe's answer arrives through the inbound SA and clears the suspicion.
// This is the case racoon missed: the peer dropped the CHILD_SA but kept its IKE_SA, so
// liveness checks passed while every packet went into a dead SA for an hour.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace ipfleet::agent::health {

struct StaleParams {
  int64_t threshold_ms = 5000;      // outbound rising, inbound flat for this long -> probe
  int64_t probe_timeout_ms = 2000;  // probe unanswered this long -> stale
};

struct CounterSample {
  int64_t now_ms = 0;
  uint64_t packets_out = 0;
  uint64_t packets_in = 0;
};

class ChildStaleDetector {
 public:
  enum class State { kHealthy, kSuspect, kProbing, kStale };
  enum class Action { kNone, kSendProbe, kDeclareStale };

  explicit ChildStaleDetector(StaleParams params) : p_(params) {}

  // Feed one sample (counters are monotonic per SA). Returns what the caller must do now.
  Action Observe(const CounterSample& s);
  // The prober saw the echo reply (independent of counters); clears the suspicion.
  void ProbeAnswered(int64_t now_ms);

  State state() const { return state_; }
  // For reports: "probe-unanswered" once stale, "no-inbound-traffic" while suspect/probing.
  std::string reason() const;
  // Operator detail for the forced renegotiation ("outbound +12 packets, inbound flat 6.0 s").
  std::string detail() const { return detail_; }
  int64_t last_in_change_ms() const { return last_in_change_ms_; }

 private:
  StaleParams p_;
  State state_ = State::kHealthy;
  bool have_sample_ = false;
  uint64_t last_in_ = 0;
  uint64_t out_at_last_in_change_ = 0;
  uint64_t last_out_ = 0;
  int64_t last_in_change_ms_ = 0;
  int64_t probe_sent_ms_ = 0;
  std::string detail_;
};

// Owned kernel SAs that IKE does not know: reported only after they stayed unknown for `grace_ms`
// (a CHILD_SA being negotiated exists in the kernel a moment before the engine lists it).
class UnknownSaTracker {
 public:
  explicit UnknownSaTracker(int64_t grace_ms) : grace_ms_(grace_ms) {}
  // `owned` are the SPIs of owned kernel SAs, `known` the SPIs IKE (or static config) accounts for.
  // Returns the SPIs that are now stale.
  std::vector<uint32_t> Observe(int64_t now_ms, const std::set<uint32_t>& owned, const std::set<uint32_t>& known);

 private:
  int64_t grace_ms_;
  std::map<uint32_t, int64_t> first_seen_unknown_;
};

// A CHILD_SA established before the peer's latest INITIAL_CONTACT belongs to the peer's previous
// life (it rebooted or restarted) and can no longer work.
inline bool OlderThanInitialContact(int64_t sa_established_unix, int64_t peer_initial_contact_unix) {
  return peer_initial_contact_unix > 0 && sa_established_unix > 0 && sa_established_unix < peer_initial_contact_unix;
}

}  // namespace ipfleet::agent::health
