// Internal: a fast path for the common CSR shape (EC P-256 key, ecdsa-with-SHA256).
//
// OpenSSL 3.0 decodes every public key through its provider decoder framework, which costs
// ~200 us per CSR — more than the signatures. For the CSR shape ipfleet agents send, we walk
// the DER with ASN1_get_object, build the key with EVP_PKEY_fromdata and verify the signature
// over the exact CertificationRequestInfo bytes. Anything else (or any doubt) returns nullopt
// and the caller takes the generic path (PEM_read_bio_X509_REQ + X509_REQ_verify), which also
// produces the error messages. The fast path can therefore only accept a CSR whose signature
// verifies under a P-256 key.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace ipfleet::ca::internal {

struct FastCsrKey {
  std::string p256_point;  // uncompressed or compressed SEC1 point of the verified key
};

std::optional<FastCsrKey> TryFastCsr(std::string_view pem);

}  // namespace ipfleet::ca::internal
