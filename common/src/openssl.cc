#include "ipfleet/common/openssl.h"

#include <openssl/err.h>

#include <array>

namespace ipfleet::ossl {

std::string DrainErrors() {
  std::string out;
  unsigned long err;
  while ((err = ERR_get_error()) != 0) {
    std::array<char, 256> buf{};
    ERR_error_string_n(err, buf.data(), buf.size());
    if (!out.empty()) out += "; ";
    out += buf.data();
  }
  return out;
}

absl::Status Error(std::string_view call, absl::StatusCode code) {
  std::string reason = DrainErrors();
  std::string msg(call);
  msg += " failed";
  if (!reason.empty()) msg += ": " + reason;
  return absl::Status(code, msg);
}

std::string BioToString(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  if (len <= 0 || data == nullptr) return {};
  return std::string(data, static_cast<size_t>(len));
}

}  // namespace ipfleet::ossl
