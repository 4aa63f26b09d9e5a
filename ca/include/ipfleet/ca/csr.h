// Certificate signing requests: agents make them, the CA parses and verifies them.
#pragma once

#include <string>
#include <string_view>

#include "ipfleet/common/openssl.h"
#include "ipfleet/common/status.h"

namespace ipfleet::ca {

// Parses a PEM CSR, verifies its self-signature (X509_REQ_verify) and checks the key type with
// CheckAcceptableKey. Errors are InvalidArgument and name the step that failed.
// Nothing else from the CSR (subject, requested extensions) is ever used by the CA.
absl::StatusOr<ossl::X509Req> ParseAndVerifyCsr(std::string_view pem);

// Only the signature / key checks on an already parsed CSR.
absl::Status VerifyCsr(X509_REQ* csr);

// Builds a CSR for `key` with subject CN=common_name, signed with SHA-256 (for agents and tests).
absl::StatusOr<std::string> MakeCsrPem(EVP_PKEY* key, std::string_view common_name);

}  // namespace ipfleet::ca
