// Certificates and CRLs in PEM: parse, serialize, inspect.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "ipfleet/common/openssl.h"
#include "ipfleet/common/status.h"

namespace ipfleet::ca {

using TimePoint = std::chrono::system_clock::time_point;

// Exactly one certificate from PEM (the first one if several); garbage -> InvalidArgument naming
// PEM_read_bio_X509.
absl::StatusOr<ossl::X509Ptr> ParseCertificatePem(std::string_view pem);
// Every certificate in a PEM bundle (a chain); at least one, else InvalidArgument.
absl::StatusOr<std::vector<ossl::X509Ptr>> ParseCertificateChainPem(std::string_view pem);
absl::StatusOr<std::string> CertificateToPem(X509* cert);
// DER (as carried in IKEv2 CERT payloads).
absl::StatusOr<ossl::X509Ptr> ParseCertificateDer(std::string_view der);
absl::StatusOr<std::string> CertificateToDer(X509* cert);
absl::StatusOr<ossl::X509Ptr> LoadCertificate(const std::filesystem::path& path);

absl::StatusOr<ossl::X509Crl> ParseCrlPem(std::string_view pem);

// Serial number as lower-case hex without leading zeros or separators ("3f0a...").
// This spelling is used everywhere in ipfleet (CLI, revocation store, SQLite).
absl::StatusOr<std::string> SerialHex(const ASN1_INTEGER* serial);
// Normalises user input ("3F:0A", "0x3f0a", "003f0a") to SerialHex spelling; InvalidArgument if
// not 1..40 hex digits.
absl::StatusOr<std::string> NormalizeSerialHex(std::string_view text);

// What a certificate says, for logs, the CLI and the inventory.
struct CertInfo {
  std::string subject_cn;
  std::string issuer_cn;
  std::string serial_hex;
  TimePoint not_before;
  TimePoint not_after;
  std::vector<std::string> ips;   // subjectAltName iPAddress, textual
  std::vector<std::string> dns;   // subjectAltName dNSName
  std::vector<std::string> ekus;  // dotted OIDs in certificate order
  bool is_ca = false;
};
absl::StatusOr<CertInfo> InspectCertificate(X509* cert);
absl::StatusOr<CertInfo> InspectCertificatePem(std::string_view pem);

}  // namespace ipfleet::ca
