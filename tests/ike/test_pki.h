// Test certificates made with OpenSSL directly: a CA, host certificates with SANs, a CRL.
#pragma once

#include <string>
#include <vector>

namespace ipfleet::ike::testing {

struct Pem {
  std::string cert;
  std::string key;
};

enum class KeyType { kEcP256, kEcP384, kRsa2048 };

// Self-signed CA (ECDSA P-256), valid from an hour ago for a day.
Pem MakeCa(const std::string& cn);
// End-entity certificate signed by `ca`: subject CN=cn,O=ipfleet; sans like "IP:192.0.2.1",
// "DNS:host-a.example"; serial number `serial`.
Pem IssueCert(const Pem& ca, const std::string& cn, const std::vector<std::string>& sans, long serial,
              KeyType type = KeyType::kEcP256);
// Intermediate CA (CA:TRUE, keyCertSign) signed by `ca`, for certificate chains.
Pem IssueIntermediate(const Pem& ca, const std::string& cn, long serial);
// CRL signed by `ca` revoking the given serials.
std::string MakeCrl(const Pem& ca, const std::vector<long>& revoked);

}  // namespace ipfleet::ike::testing
