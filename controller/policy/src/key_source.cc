#include "ipfleet/policy/key_source.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "ipfleet/common/openssl.h"

namespace ipfleet::policy {

absl::StatusOr<std::string> OpenSslKeySource::RandomBytes(size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    return ossl::Error("RAND_bytes");
  }
  return out;
}

absl::StatusOr<std::string> DeterministicKeySource::RandomBytes(size_t n) {
  std::string out;
  while (out.size() < n) {
    unsigned char in[16];
    for (int i = 0; i < 8; ++i) {
      in[i] = static_cast<unsigned char>(seed_ >> (8 * i));
      in[8 + i] = static_cast<unsigned char>(counter_ >> (8 * i));
    }
    ++counter_;
    unsigned char md[32];
    unsigned int len = 0;
    if (EVP_Digest(in, sizeof(in), md, &len, EVP_sha256(), nullptr) != 1) return ossl::Error("EVP_Digest");
    out.append(reinterpret_cast<char*>(md), len);
  }
  out.resize(n);
  return out;
}

}  // namespace ipfleet::policy
