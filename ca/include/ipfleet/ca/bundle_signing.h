// Detached signatures over policy bundles (the exact serialized bytes of a PolicyBundle).
//
// The signer is a key whose certificate the fleet CA issued with profile policy-signer: it
// carries the EKU kOidPolicySigning (profiles.h) and CN=ipfleet-policy-signer. Algorithms:
// "ecdsa-sha256" (DER ECDSA-Sig-Value) for EC keys, "rsa-pss-sha256" (salt = digest length)
// for RSA keys — the strings of SignedBundle.algorithm in the proto.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "ipfleet/ca/cert.h"
#include "ipfleet/common/openssl.h"
#include "ipfleet/common/status.h"

namespace ipfleet::ca {

struct BundleSignature {
  std::string signature;        // raw signature bytes
  std::string signer_cert_pem;  // the policy-signing certificate
  std::string algorithm;        // "ecdsa-sha256" | "rsa-pss-sha256"
};

class BundleSigner {
 public:
  // From DIR/ca/policy-signer.{key,crt}, as written by InitControllerPki.
  static absl::StatusOr<BundleSigner> Load(const std::filesystem::path& data_dir);
  // Checks that key and certificate match and that the certificate has the policy-signing EKU.
  static absl::StatusOr<BundleSigner> FromPem(std::string_view key_pem, std::string_view cert_pem);

  // Signs exactly `bytes`. Thread-safe.
  absl::StatusOr<BundleSignature> Sign(std::string_view bytes) const;

  const std::string& CertificatePem() const { return cert_pem_; }

 private:
  ossl::PKey key_;
  std::string cert_pem_;
  std::string algorithm_;
};

// Convenience: BundleSigner::Load(data_dir) then Sign(bytes).
absl::StatusOr<BundleSignature> SignBundle(const std::filesystem::path& data_dir,
                                           std::string_view bytes);

// Verifies a detached bundle signature: the signer certificate must chain to a CA in
// `ca_chain_pem` (one or more PEM certificates; the first self-signed one is the trust anchor),
// be valid now, carry the policy-signing EKU, and not be listed in `crl_pem` (which must be
// signed by the CA; empty = no revocation check). `algorithm`, when not empty, must match the
// signer's key type. Returns the signer's details; errors are Unauthenticated (bad signature,
// chain, role, revoked) or InvalidArgument (unparseable input) and name the failing check.
absl::StatusOr<CertInfo> VerifyBundle(std::string_view bytes, std::string_view signature,
                                      std::string_view signer_cert_pem,
                                      std::string_view ca_chain_pem, std::string_view crl_pem,
                                      std::string_view algorithm = {});

}  // namespace ipfleet::ca
