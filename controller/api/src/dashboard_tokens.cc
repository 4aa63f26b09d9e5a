#include "ipfleet/controller/api/dashboard_tokens.h"

#include <absl/strings/escaping.h>
#include <absl/strings/str_cat.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "ipfleet/common/files.h"
#include "ipfleet/common/openssl.h"

namespace ipfleet::controller {
namespace {

constexpr char kPrefix[] = "ipfd1.";
constexpr size_t kKeyBytes = 32;
constexpr size_t kNonceBytes = 16;

}  // namespace

absl::StatusOr<std::unique_ptr<DashboardTokens>> DashboardTokens::LoadOrCreate(const std::filesystem::path& dir) {
  std::filesystem::path path = dir / "dashboard.key";
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    std::string key(kKeyBytes, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(key.data()), static_cast<int>(key.size())) != 1) {
      return ossl::Error("RAND_bytes");
    }
    IPFLEET_RETURN_IF_ERROR(files::WriteAtomic(path, key, 0600));
  }
  IPFLEET_ASSIGN_OR_RETURN(std::string key, files::Read(path));
  if (key.size() != kKeyBytes) {
    return absl::DataLossError(absl::StrCat(path.string(), " is not a dashboard key (", key.size(),
                                            " bytes, expected ", kKeyBytes, "); delete it to make a new one"));
  }
  return std::make_unique<DashboardTokens>(std::move(key));
}

std::string DashboardTokens::Mac(const std::string& payload) const {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()), reinterpret_cast<const unsigned char*>(payload.data()),
       payload.size(), mac, &len);
  return std::string(reinterpret_cast<char*>(mac), len);
}

absl::StatusOr<std::string> DashboardTokens::Issue(int64_t now_unix, int64_t ttl_seconds, int64_t* expires_unix) const {
  if (ttl_seconds == 0) ttl_seconds = kDefaultTtlSeconds;
  if (ttl_seconds < 0 || ttl_seconds > kMaxTtlSeconds) {
    return absl::InvalidArgumentError(absl::StrCat("dashboard token lifetime must be 1 s to ", kMaxTtlSeconds / 86400,
                                                   " days, not ", ttl_seconds, " s"));
  }
  int64_t expiry = now_unix + ttl_seconds;
  std::string payload(8 + kNonceBytes, '\0');
  for (int i = 0; i < 8; ++i) payload[i] = static_cast<char>((static_cast<uint64_t>(expiry) >> (56 - 8 * i)) & 0xff);
  if (RAND_bytes(reinterpret_cast<unsigned char*>(payload.data() + 8), kNonceBytes) != 1) {
    return ossl::Error("RAND_bytes");
  }
  if (expires_unix) *expires_unix = expiry;
  return absl::StrCat(kPrefix, absl::WebSafeBase64Escape(payload), ".", absl::WebSafeBase64Escape(Mac(payload)));
}

absl::Status DashboardTokens::Check(const std::string& token, int64_t now_unix) const {
  auto refuse = [](const char* why) { return absl::UnauthenticatedError(absl::StrCat("dashboard token ", why)); };
  if (token.rfind(kPrefix, 0) != 0) return refuse("is not an ipfleet dashboard token");
  std::string rest = token.substr(sizeof(kPrefix) - 1);
  size_t dot = rest.find('.');
  std::string payload, mac;
  if (dot == std::string::npos || !absl::WebSafeBase64Unescape(rest.substr(0, dot), &payload) ||
      !absl::WebSafeBase64Unescape(rest.substr(dot + 1), &mac) || payload.size() != 8 + kNonceBytes) {
    return refuse("is malformed");
  }
  // Only the canonical text is a token: base64 leaves spare bits in its last character, and a
  // token must not have several spellings.
  if (absl::StrCat(kPrefix, absl::WebSafeBase64Escape(payload), ".", absl::WebSafeBase64Escape(mac)) != token) {
    return refuse("is malformed");
  }
  std::string want = Mac(payload);
  if (mac.size() != want.size() || CRYPTO_memcmp(mac.data(), want.data(), want.size()) != 0) {
    return refuse("was not issued by this controller (or its dashboard.key changed)");
  }
  uint64_t expiry = 0;
  for (int i = 0; i < 8; ++i) expiry = (expiry << 8) | static_cast<unsigned char>(payload[i]);
  if (static_cast<int64_t>(expiry) <= now_unix) return refuse("has expired; get a new one with `ipfleet dashboard token`");
  return absl::OkStatus();
}

}  // namespace ipfleet::controller
