// libFuzzer target for the CSR parsers that see untrusted input (agents' CSRs): the fast
// P-256 path (hand-walked DER) and the generic OpenSSL path, fed both the raw input as PEM text
// and the input wrapped as the DER body of a PEM CSR.
#include <openssl/pem.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "csr_fast.h"
#include "ipfleet/ca/csr.h"
#include "ipfleet/common/openssl.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  (void)ipfleet::ca::internal::TryFastCsr(text);
  (void)ipfleet::ca::ParseAndVerifyCsr(text);

  ipfleet::ossl::Bio bio(BIO_new(BIO_s_mem()));
  if (bio && PEM_write_bio(bio.get(), "CERTIFICATE REQUEST", "", data, static_cast<long>(size)) > 0) {
    std::string pem = ipfleet::ossl::BioToString(bio.get());
    auto fast = ipfleet::ca::internal::TryFastCsr(pem);
    auto generic = ipfleet::ca::ParseAndVerifyCsr(pem);
    // The fast path only accepts a CSR whose signature verifies; OpenSSL must agree that it does.
    if (fast.has_value() && !generic.ok()) __builtin_trap();
  }
  ipfleet::ossl::DrainErrors();
  return 0;
}
