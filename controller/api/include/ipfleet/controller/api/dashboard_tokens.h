// Login tokens for the web dashboard. Stateless: a token is its expiry and a random nonce,
// authenticated with HMAC-SHA-256 under a key kept in the data directory (dashboard.key, 0600,
// made at first start). Nothing is stored per token, so any replica holding the key accepts it;
// deleting the key (and restarting) invalidates every token at once.
//
//   token = "ipfd1." base64url(expiry as 8 bytes big-endian || 16 random bytes) "." base64url(mac)
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "ipfleet/common/status.h"

namespace ipfleet::controller {

class DashboardTokens {
 public:
  static constexpr int64_t kDefaultTtlSeconds = 8 * 3600;
  static constexpr int64_t kMaxTtlSeconds = 7 * 24 * 3600;

  // Reads DIR/dashboard.key, creating it (32 random bytes, mode 0600) when missing.
  static absl::StatusOr<std::unique_ptr<DashboardTokens>> LoadOrCreate(const std::filesystem::path& dir);
  explicit DashboardTokens(std::string key) : key_(std::move(key)) {}

  // A token valid until now + ttl (0: the default; more than the maximum is refused).
  absl::StatusOr<std::string> Issue(int64_t now_unix, int64_t ttl_seconds, int64_t* expires_unix) const;
  // OK when the token is ours and not expired; Unauthenticated otherwise (the message says why,
  // never repeats the token).
  absl::Status Check(const std::string& token, int64_t now_unix) const;

 private:
  std::string Mac(const std::string& payload) const;
  std::string key_;
};

}  // namespace ipfleet::controller
