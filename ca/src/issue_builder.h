// Internal: builds and signs X.509 certificates and CRLs for the CA. Profile extensions are
// encoded once per CA (they never change) and copied into each certificate, so issuing costs
// one CSR verification, one SAN/SKI encoding and one signature.
#pragma once

#include <array>
#include <string>
#include <vector>

#include "ipfleet/ca/authority.h"
#include "ipfleet/ca/profiles.h"
#include "ipfleet/common/openssl.h"
#include "ipfleet/common/status.h"

namespace ipfleet::ca::internal {

// Extensions shared by every certificate of one profile.
struct ProfileExtensions {
  ossl::X509Ext basic_constraints;  // CA:FALSE, critical
  ossl::X509Ext key_usage_ec;       // digitalSignature, critical
  ossl::X509Ext key_usage_rsa;      // digitalSignature + keyEncipherment, critical
  ossl::X509Ext eku;
};

struct IssuerTemplate {
  X509* ca_cert = nullptr;  // not owned
  EVP_PKEY* ca_key = nullptr;  // not owned
  ossl::X509Ext aki;        // keyid of the CA
  std::array<ProfileExtensions, 4> profiles;  // indexed by Profile
};

absl::Status BuildIssuerTemplate(X509* ca_cert, EVP_PKEY* ca_key, IssuerTemplate* out);

// Validates a request (CN, SAN syntax, days) before any key material is touched.
absl::Status ValidateRequest(const IssueRequest& request);

// The subject's public key: either an EVP_PKEY (checked with CheckAcceptableKey, encoded by
// OpenSSL) or the point of an already verified P-256 key from the CSR fast path (put into the
// certificate as raw SubjectPublicKeyInfo parameters, no encoder round trip).
struct LeafKey {
  EVP_PKEY* pkey = nullptr;
  std::string p256_point;
};

// Signs a leaf certificate for `key`.
absl::StatusOr<IssuedCert> SignLeaf(const IssuerTemplate& tmpl, const LeafKey& key,
                                    const IssueRequest& request);

// Self-signed root for a new CA.
absl::StatusOr<ossl::X509Ptr> MakeRoot(EVP_PKEY* key, const std::string& name, int days);

// Random positive 128-bit serial.
absl::StatusOr<ossl::Asn1Integer> RandomSerial();

// Signs `cert` with the CA key via EVP_DigestSign (SHA-256).
absl::Status SignCert(X509* cert, EVP_PKEY* key);

// CRL v2 with AKI, cRLNumber, nextUpdate, one entry (with reasonCode) per revocation.
absl::StatusOr<std::string> MakeCrl(X509* ca_cert, EVP_PKEY* ca_key, const CaState& state,
                                    uint64_t crl_number, TimePoint this_update,
                                    TimePoint next_update);

// Which profile a certificate we issued was made with (from its EKUs), for Renew.
Profile ProfileFromEkus(const std::vector<std::string>& ekus);

}  // namespace ipfleet::ca::internal
