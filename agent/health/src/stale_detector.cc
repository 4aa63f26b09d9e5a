#include "ipfleet/agent/health/stale_detector.h"

#include <cstdio>

namespace ipfleet::agent::health {

ChildStaleDetector::Action ChildStaleDetector::Observe(const CounterSample& s) {
  if (!have_sample_) {
    have_sample_ = true;
    last_in_ = s.packets_in;
    last_out_ = s.packets_out;
    out_at_last_in_change_ = s.packets_out;
    last_in_change_ms_ = s.now_ms;
    return Action::kNone;
  }
  last_out_ = s.packets_out;
  if (s.packets_in != last_in_) {
    // Anything received means the peer still holds the SA: all clear (also answers a probe).
    last_in_ = s.packets_in;
    out_at_last_in_change_ = s.packets_out;
    last_in_change_ms_ = s.now_ms;
    state_ = State::kHealthy;
    return Action::kNone;
  }
  const int64_t flat_ms = s.now_ms - last_in_change_ms_;
  const bool out_rising = s.packets_out > out_at_last_in_change_;
  switch (state_) {
    case State::kHealthy:
    case State::kSuspect:
      if (!out_rising) {
        state_ = State::kHealthy;
        return Action::kNone;
      }
      if (flat_ms < p_.threshold_ms) {
        state_ = State::kSuspect;
        return Action::kNone;
      }
      state_ = State::kProbing;
      probe_sent_ms_ = s.now_ms;
      return Action::kSendProbe;
    case State::kProbing:
      if (s.now_ms - probe_sent_ms_ < p_.probe_timeout_ms) return Action::kNone;
      state_ = State::kStale;
      {
        char buf[128];
        std::snprintf(buf, sizeof(buf), "outbound +%llu packets, inbound flat %.1f s, probe unanswered %.1f s",
                      static_cast<unsigned long long>(s.packets_out - out_at_last_in_change_), flat_ms / 1000.0,
                      (s.now_ms - probe_sent_ms_) / 1000.0);
        detail_ = buf;
      }
      return Action::kDeclareStale;
    case State::kStale:
      return Action::kNone;
  }
  return Action::kNone;
}

void ChildStaleDetector::ProbeAnswered(int64_t now_ms) {
  if (state_ == State::kStale) return;
  state_ = State::kHealthy;
  out_at_last_in_change_ = last_out_;
  last_in_change_ms_ = now_ms;
}

std::string ChildStaleDetector::reason() const {
  switch (state_) {
    case State::kStale: return "probe-unanswered";
    case State::kSuspect:
    case State::kProbing: return "no-inbound-traffic";
    default: return "";
  }
}

std::vector<uint32_t> UnknownSaTracker::Observe(int64_t now_ms, const std::set<uint32_t>& owned,
                                                const std::set<uint32_t>& known) {
  std::vector<uint32_t> stale;
  std::map<uint32_t, int64_t> next;
  for (uint32_t spi : owned) {
    if (known.count(spi)) continue;
    auto it = first_seen_unknown_.find(spi);
    int64_t first = it == first_seen_unknown_.end() ? now_ms : it->second;
    if (now_ms - first >= grace_ms_) {
      stale.push_back(spi);
    } else {
      next[spi] = first;
    }
  }
  first_seen_unknown_ = std::move(next);
  return stale;
}

}  // namespace ipfleet::agent::health
