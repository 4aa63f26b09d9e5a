#include "ipfleet/controller/api/pki.h"

#include <absl/strings/str_cat.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <filesystem>
#include <set>

#include "ipfleet/ca/layout.h"
#include "ipfleet/ca/revocation.h"

namespace ipfleet::controller {
namespace {

int64_t ToUnix(ca::TimePoint t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

}  // namespace

int64_t SystemNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

inventory::Certificate Pki::ToRecord(const ca::IssuedCert& issued, const ca::IssueRequest& request,
                                     const std::string& kind) {
  inventory::Certificate c;
  c.serial = issued.serial_hex;
  c.name = issued.common_name;
  c.kind = kind;
  c.not_before_unix = ToUnix(issued.not_before);
  c.not_after_unix = ToUnix(issued.not_after);
  c.ip_addresses = request.ips;
  c.dns_names = request.dns;
  c.pem = issued.pem;
  return c;
}

absl::Status Pki::Start() {
  std::vector<ca::RevokedEntry> revoked = ca_.Revoked();
  IPFLEET_ASSIGN_OR_RETURN(std::vector<inventory::Certificate> certs, store_.ListCertificates(true));
  std::set<std::string> known_revoked;
  for (const auto& c : certs) {
    if (c.revoked) known_revoked.insert(c.serial);
  }
  std::vector<ca::RevokedEntry> missing;
  for (const auto& r : revoked) {
    if (!known_revoked.count(r.serial_hex)) missing.push_back(r);
  }
  if (!missing.empty()) {
    IPFLEET_RETURN_IF_ERROR(store_.Transact([&](inventory::Tx& tx) -> absl::Status {
      for (const auto& r : missing) {
        IPFLEET_RETURN_IF_ERROR(tx.RevokeCertificate(
            r.serial_hex, std::string(ca::RevocationReasonName(r.reason)), ToUnix(r.revoked_at)));
      }
      return absl::OkStatus();
    }));
    spdlog::info("event=revocations_reconciled count={}", missing.size());
  }
  if (store_.Shared()) IPFLEET_RETURN_IF_ERROR(ImportRevocations().status());
  return RefreshCrl();
}

absl::Status Pki::SyncRevocations() {
  if (!store_.Shared()) return absl::OkStatus();
  IPFLEET_ASSIGN_OR_RETURN(size_t imported, ImportRevocations());
  return imported ? RefreshCrl() : absl::OkStatus();
}

absl::StatusOr<size_t> Pki::ImportRevocations() {
  IPFLEET_ASSIGN_OR_RETURN(std::vector<inventory::RevocationRecord> all, store_.ListRevocations());
  size_t imported = 0;
  for (const auto& r : all) {
    if (ca_.IsRevoked(r.serial)) continue;
    absl::StatusOr<ca::RevocationReason> reason = ca::ParseRevocationReason(r.reason);
    absl::Status st = ca_.Revoke(r.serial, reason.ok() ? *reason : ca::RevocationReason::kUnspecified);
    if (!st.ok() && !absl::IsAlreadyExists(st)) return st;
    ++imported;
  }
  if (imported) spdlog::info("event=revocations_imported count={} from=inventory", imported);
  return imported;
}

std::string Pki::CurrentCrl() const {
  std::lock_guard<std::mutex> lock(mu_);
  return crl_pem_;
}

uint64_t Pki::CrlNumber() const {
  std::lock_guard<std::mutex> lock(mu_);
  return crl_number_;
}

absl::Status Pki::RefreshCrl() {
  IPFLEET_ASSIGN_OR_RETURN(ca::GeneratedCrl crl, ca_.Crl());
  std::lock_guard<std::mutex> lock(mu_);
  crl_pem_ = std::move(crl.pem);
  crl_number_ = crl.crl_number;
  spdlog::info("event=crl_generated number={}", crl_number_);
  return absl::OkStatus();
}

absl::Status Pki::Revoke(const std::string& serial, const std::string& reason_text,
                         const std::string& actor) {
  ca::RevocationReason reason = ca::RevocationReason::kUnspecified;
  if (!reason_text.empty()) {
    IPFLEET_ASSIGN_OR_RETURN(reason, ca::ParseRevocationReason(reason_text));
  }
  absl::StatusOr<inventory::Certificate> known = store_.GetCertificate(serial);
  if (!known.ok()) {
    if (!absl::IsNotFound(known.status())) return known.status();
    std::error_code ec;
    if (!std::filesystem::exists(ca::layout::IssuedDir(ca_.data_dir()) / (serial + ".pem"), ec) &&
        !ca_.IsRevoked(serial)) {
      return absl::NotFoundError(absl::StrCat("no certificate with serial ", serial,
                                              "; see `ipfleet cert list` for serials"));
    }
  }
  // The CA's state file first: it is what the CRL is built from. A crash before the inventory
  // write is repaired by Start().
  absl::Status st = ca_.Revoke(serial, reason);
  if (!st.ok() && !absl::IsAlreadyExists(st)) return st;
  int64_t now = clock_();
  std::string reason_name(ca::RevocationReasonName(reason));
  IPFLEET_RETURN_IF_ERROR(store_.Transact([&](inventory::Tx& tx) -> absl::Status {
    IPFLEET_RETURN_IF_ERROR(tx.RevokeCertificate(serial, reason_name, now));
    return tx.AppendAudit({0, now, actor, "cert.revoke", serial, absl::StrCat("reason=", reason_name), true});
  }));
  spdlog::info("event=certificate_revoked serial={} reason={} actor={}", serial, reason_name, actor);
  return RefreshCrl();
}

}  // namespace ipfleet::controller
