// The controller's view of its CA: issue and record certificates, revoke them (CA state file and
// inventory), and keep the current CRL ready for enrollment responses and every later bundle.
#pragma once

#include <mutex>
#include <string>
#include <vector>

#include "ipfleet/ca/authority.h"
#include "ipfleet/common/status.h"
#include "ipfleet/controller/api/context.h"
#include "ipfleet/controller/inventory/store.h"

namespace ipfleet::controller {

class Pki {
 public:
  Pki(ca::CertificateAuthority& ca, inventory::Store& store, Clock clock)
      : ca_(ca), store_(store), clock_(std::move(clock)) {}

  // Copies revocations the CA knows but the inventory does not (a crash between the two writes,
  // or `ipfleet-controller ca revoke` while stopped) into the inventory, and on a shared
  // inventory the other way round (SyncRevocations), then generates a CRL.
  absl::Status Start();
  // Replicas share the inventory but each keeps its CA state file: a serial another replica
  // revoked is in the inventory only. Imports such revocations into this CA and regenerates the
  // CRL when there were any, so that bundles signed here never trust a revoked certificate.
  // Nothing to do with a lone controller's own inventory.
  absl::Status SyncRevocations();

  const std::string& CaPem() const { return ca_.CertificatePem(); }
  const std::string& Fingerprint() const { return ca_.Fingerprint(); }
  // The CRL to hand out now (PEM) and its number.
  std::string CurrentCrl() const;
  uint64_t CrlNumber() const;
  // Generates a fresh CRL (after a revocation, and periodically before nextUpdate).
  absl::Status RefreshCrl();

  // Signs a certificate; the caller stores ToRecord(...) in its own transaction.
  absl::StatusOr<ca::IssuedCert> Issue(std::string_view csr_pem, const ca::IssueRequest& request) const {
    return ca_.Issue(csr_pem, request);
  }
  absl::StatusOr<ca::IssuedCert> Renew(std::string_view csr_pem, std::string_view old_cert_pem) const {
    return ca_.Renew(csr_pem, old_cert_pem);
  }
  static inventory::Certificate ToRecord(const ca::IssuedCert& issued, const ca::IssueRequest& request,
                                         const std::string& kind);

  // Revokes `serial` in the CA and the inventory (audit row with `actor`), then regenerates the
  // CRL. Revoking an already revoked serial is not an error. NotFound when neither the CA's
  // issued certificates nor the inventory know the serial.
  absl::Status Revoke(const std::string& serial, const std::string& reason, const std::string& actor);

  ca::CertificateAuthority& authority() { return ca_; }

 private:
  // Revocations in the inventory that this CA's state lacks, recorded there; returns how many.
  absl::StatusOr<size_t> ImportRevocations();

  ca::CertificateAuthority& ca_;
  inventory::Store& store_;
  Clock clock_;
  mutable std::mutex mu_;
  std::string crl_pem_;
  uint64_t crl_number_ = 0;
};

}  // namespace ipfleet::controller
