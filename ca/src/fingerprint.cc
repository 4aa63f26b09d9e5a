#include "ipfleet/ca/fingerprint.h"

#include <cctype>

#include "ipfleet/ca/cert.h"

namespace ipfleet::ca {

absl::StatusOr<std::string> FingerprintSha256(X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(cert, EVP_sha256(), md, &len) != 1) return ossl::Error("X509_digest");
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(len * 3);
  for (unsigned int i = 0; i < len; ++i) {
    if (i != 0) out += ':';
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 0xf];
  }
  return out;
}

absl::StatusOr<std::string> FingerprintSha256Pem(std::string_view cert_pem) {
  IPFLEET_ASSIGN_OR_RETURN(ossl::X509Ptr cert, ParseCertificatePem(cert_pem));
  return FingerprintSha256(cert.get());
}

bool FingerprintEquals(std::string_view a, std::string_view b) {
  auto norm = [](std::string_view s) {
    std::string out;
    for (char c : s) {
      if (c == ':' || c == ' ') continue;
      out += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    return out;
  };
  std::string na = norm(a);
  return !na.empty() && na == norm(b);
}

}  // namespace ipfleet::ca
