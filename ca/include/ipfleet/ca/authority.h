// The built-in certificate authority: create or load it from the controller's data directory,
// issue and renew certificates from CSRs, revoke them, and generate CRLs.
//
// Files (see layout.h): DIR/ca/ca.key (0600), DIR/ca/ca.crt, DIR/ca/state.json (revocations +
// CRL number), DIR/ca/ca.crl (last CRL). The CA does not store issued certificates itself: Issue
// returns the certificate and the caller stores it (the controller in SQLite, the offline CLI under
// DIR/ca/issued/). An optional store callback lets a caller make "issued" and "stored" one step.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "ipfleet/ca/cert.h"
#include "ipfleet/ca/keys.h"
#include "ipfleet/ca/profiles.h"
#include "ipfleet/ca/revocation.h"
#include "ipfleet/common/openssl.h"
#include "ipfleet/common/status.h"

namespace ipfleet::ca {

namespace internal {
struct IssuerTemplate;
}

struct InitOptions {
  KeyType key_type = KeyType::kEcdsaP256;
  std::string name = "ipfleet CA";  // subject CN of the root
  int days = 3650;                  // root validity
};

struct IssueRequest {
  std::string common_name;       // subject CN (required) — from the inventory, never the CSR
  std::vector<std::string> ips;  // subjectAltName iPAddress (IPv4 / IPv6 text), validated
  std::vector<std::string> dns;  // subjectAltName dNSName, validated (LDH labels, optional "*.")
  int days = 365;                // validity, 1..3650
  Profile profile = Profile::kHost;
};

struct IssuedCert {
  std::string pem;         // the certificate, PEM
  std::string serial_hex;  // 128-bit random positive serial, NormalizeSerialHex spelling
  TimePoint not_before;    // backdated 5 minutes for clock skew
  TimePoint not_after;
  std::string common_name;
  Profile profile = Profile::kHost;
};

struct GeneratedCrl {
  std::string pem;          // CRL v2, signed by the CA, with nextUpdate and cRLNumber
  uint64_t crl_number = 0;  // monotonically increasing across calls and processes
  TimePoint this_update;
  TimePoint next_update;
};

// Called by Issue/Renew after signing; a non-OK status makes Issue fail with that status.
// Must be thread-safe when Issue is called from several threads.
using StoreFn = std::function<absl::Status(const IssuedCert&)>;

class CertificateAuthority {
 public:
  // Creates a new CA in DIR/ca (DIR is created if missing). Refuses (AlreadyExists) when
  // DIR/ca/ca.key or DIR/ca/ca.crt exists. On failure nothing is left behind in DIR/ca.
  static absl::StatusOr<std::unique_ptr<CertificateAuthority>> Init(
      const std::filesystem::path& data_dir, const InitOptions& options = {});

  // Loads an existing CA; checks that key and certificate belong together and that the
  // certificate is a CA. A missing, unreadable or damaged file gives an error naming it.
  static absl::StatusOr<std::unique_ptr<CertificateAuthority>> Load(
      const std::filesystem::path& data_dir);

  // Issues a certificate for the key in `csr_pem` (signature verified, key type checked).
  // Subject and SANs come only from `request`. Thread-safe; writes no files.
  absl::StatusOr<IssuedCert> Issue(std::string_view csr_pem, const IssueRequest& request) const;
  absl::StatusOr<IssuedCert> Issue(X509_REQ* csr, const IssueRequest& request) const;
  // Issues directly for a public key the caller holds (e.g. the controller's own key at init).
  absl::StatusOr<IssuedCert> IssueForKey(EVP_PKEY* public_key, const IssueRequest& request) const;

  // New certificate for the same subject, SANs and profile as `old_cert_pem` (which this CA must
  // have issued and which must not be revoked), for the key in `new_csr_pem`. days <= 0 keeps
  // the old certificate's validity length.
  absl::StatusOr<IssuedCert> Renew(std::string_view new_csr_pem, std::string_view old_cert_pem,
                                   int days = 0) const;

  // Records a revocation in DIR/ca/state.json (under a file lock, re-reading the file first, so
  // the offline CLI and a running controller can both revoke). AlreadyExists if already revoked.
  absl::Status Revoke(std::string_view serial_hex,
                      RevocationReason reason = RevocationReason::kUnspecified);
  bool IsRevoked(std::string_view serial_hex) const;
  std::vector<RevokedEntry> Revoked() const;

  // Generates a CRL with the next CRL number, nextUpdate = now + validity; persists the number
  // (state.json) and the CRL (DIR/ca/ca.crl).
  absl::StatusOr<GeneratedCrl> Crl(std::chrono::seconds validity = std::chrono::hours(24 * 7));

  // Optional: called for every certificate issued (see StoreFn).
  void SetStore(StoreFn store) { store_ = std::move(store); }

  const std::string& CertificatePem() const { return ca_cert_pem_; }
  X509* Certificate() const { return ca_cert_.get(); }
  const std::string& Fingerprint() const { return fingerprint_; }  // SHA-256, colon hex
  KeyType key_type() const { return key_type_; }
  const std::filesystem::path& data_dir() const { return data_dir_; }

  ~CertificateAuthority();
  CertificateAuthority(const CertificateAuthority&) = delete;
  CertificateAuthority& operator=(const CertificateAuthority&) = delete;

 private:
  CertificateAuthority() = default;
  // Derives the cached fields (fingerprint, issuing template) once key and certificate are set.
  absl::Status Finish();
  absl::StatusOr<IssuedCert> Store(absl::StatusOr<IssuedCert> issued) const;

  std::filesystem::path data_dir_;
  ossl::PKey ca_key_;
  ossl::X509Ptr ca_cert_;
  std::string ca_cert_pem_;
  std::string fingerprint_;
  KeyType key_type_ = KeyType::kEcdsaP256;
  std::unique_ptr<internal::IssuerTemplate> tmpl_;  // profile extensions encoded once
  StoreFn store_;
  mutable std::mutex state_mu_;
  CaState state_;
};

// Creates everything `ipfleet-controller init` needs in DIR: the CA, the controller's TLS key and
// certificate (profile controller, SANs from `addresses`, default 127.0.0.1 + localhost) and the
// policy-signing key and certificate. Refuses an existing CA; on failure removes what it wrote.
struct ControllerInitOptions {
  InitOptions ca;
  std::vector<std::string> addresses;  // IPs and DNS names for the TLS certificate's SAN
  std::string controller_name = "ipfleet-controller";
};
absl::StatusOr<std::unique_ptr<CertificateAuthority>> InitControllerPki(
    const std::filesystem::path& data_dir, const ControllerInitOptions& options);

}  // namespace ipfleet::ca
