#include "ipfleet/ca/cert.h"

#include <arpa/inet.h>
#include <openssl/pem.h>

#include <algorithm>
#include <cctype>

#include "ipfleet/common/files.h"
#include "x509_util.h"

namespace ipfleet::ca {

namespace {

ossl::Bio MemBio(std::string_view data) {
  return ossl::Bio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

}  // namespace

absl::StatusOr<ossl::X509Ptr> ParseCertificatePem(std::string_view pem) {
  ossl::Bio bio = MemBio(pem);
  if (!bio) return ossl::Error("BIO_new_mem_buf");
  X509* raw = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
  if (raw == nullptr) return ossl::Error("PEM_read_bio_X509", absl::StatusCode::kInvalidArgument);
  return ossl::X509Ptr(raw);
}

absl::StatusOr<std::vector<ossl::X509Ptr>> ParseCertificateChainPem(std::string_view pem) {
  ossl::Bio bio = MemBio(pem);
  if (!bio) return ossl::Error("BIO_new_mem_buf");
  std::vector<ossl::X509Ptr> out;
  for (;;) {
    X509* raw = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
    if (raw == nullptr) break;
    out.emplace_back(raw);
  }
  if (out.empty()) return ossl::Error("PEM_read_bio_X509", absl::StatusCode::kInvalidArgument);
  ossl::DrainErrors();  // the expected "no start line" at the end of the bundle
  return out;
}

absl::StatusOr<std::string> CertificateToPem(X509* cert) {
  ossl::Bio bio(BIO_new(BIO_s_mem()));
  if (!bio) return ossl::Error("BIO_new");
  if (PEM_write_bio_X509(bio.get(), cert) != 1) return ossl::Error("PEM_write_bio_X509");
  return ossl::BioToString(bio.get());
}

absl::StatusOr<ossl::X509Ptr> ParseCertificateDer(std::string_view der) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  X509* raw = d2i_X509(nullptr, &p, static_cast<long>(der.size()));
  if (raw == nullptr) return ossl::Error("d2i_X509", absl::StatusCode::kInvalidArgument);
  ossl::X509Ptr cert(raw);
  if (p != reinterpret_cast<const unsigned char*>(der.data()) + der.size()) {
    return absl::InvalidArgumentError("d2i_X509: trailing bytes after the certificate");
  }
  return cert;
}

absl::StatusOr<std::string> CertificateToDer(X509* cert) {
  unsigned char* buf = nullptr;
  int len = i2d_X509(cert, &buf);
  if (len <= 0) return ossl::Error("i2d_X509");
  std::string out(reinterpret_cast<char*>(buf), static_cast<size_t>(len));
  OPENSSL_free(buf);
  return out;
}

absl::StatusOr<ossl::X509Ptr> LoadCertificate(const std::filesystem::path& path) {
  IPFLEET_ASSIGN_OR_RETURN(std::string pem, files::Read(path));
  auto cert = ParseCertificatePem(pem);
  if (!cert.ok()) {
    return absl::Status(cert.status().code(), "damaged certificate file " + path.string() + ": " +
                                                  std::string(cert.status().message()));
  }
  return cert;
}

absl::StatusOr<ossl::X509Crl> ParseCrlPem(std::string_view pem) {
  ossl::Bio bio = MemBio(pem);
  if (!bio) return ossl::Error("BIO_new_mem_buf");
  X509_CRL* raw = PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr);
  if (raw == nullptr) return ossl::Error("PEM_read_bio_X509_CRL", absl::StatusCode::kInvalidArgument);
  return ossl::X509Crl(raw);
}

absl::StatusOr<std::string> SerialHex(const ASN1_INTEGER* serial) {
  ossl::BigNum bn(ASN1_INTEGER_to_BN(serial, nullptr));
  if (!bn) return ossl::Error("ASN1_INTEGER_to_BN");
  char* hex = BN_bn2hex(bn.get());
  if (hex == nullptr) return ossl::Error("BN_bn2hex");
  std::string out(hex);
  OPENSSL_free(hex);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  bool neg = !out.empty() && out[0] == '-';
  std::string digits = neg ? out.substr(1) : out;
  size_t nz = digits.find_first_not_of('0');
  digits = nz == std::string::npos ? "0" : digits.substr(nz);
  return neg ? "-" + digits : digits;
}

absl::StatusOr<std::string> NormalizeSerialHex(std::string_view text) {
  std::string_view t = text;
  if (t.starts_with("0x") || t.starts_with("0X")) t.remove_prefix(2);
  std::string digits;
  for (char c : t) {
    if (c == ':' || c == ' ') continue;
    if (!std::isxdigit(static_cast<unsigned char>(c))) {
      return absl::InvalidArgumentError("serial \"" + std::string(text) + "\" is not hexadecimal");
    }
    digits += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  size_t nz = digits.find_first_not_of('0');
  if (digits.empty()) return absl::InvalidArgumentError("empty serial");
  digits = nz == std::string::npos ? "0" : digits.substr(nz);
  if (digits.size() > 40) {
    return absl::InvalidArgumentError("serial \"" + std::string(text) + "\" is longer than 20 bytes");
  }
  return digits;
}

absl::StatusOr<CertInfo> InspectCertificate(X509* cert) {
  if (cert == nullptr) return absl::InvalidArgumentError("no certificate");
  CertInfo info;
  info.subject_cn = internal::CommonName(X509_get_subject_name(cert));
  info.issuer_cn = internal::CommonName(X509_get_issuer_name(cert));
  IPFLEET_ASSIGN_OR_RETURN(info.serial_hex, SerialHex(X509_get0_serialNumber(cert)));
  IPFLEET_ASSIGN_OR_RETURN(info.not_before, internal::FromAsn1Time(X509_get0_notBefore(cert)));
  IPFLEET_ASSIGN_OR_RETURN(info.not_after, internal::FromAsn1Time(X509_get0_notAfter(cert)));

  ossl::GeneralNames sans(static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  if (sans) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans.get()); ++i) {
      const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans.get(), i);
      if (gn->type == GEN_DNS) {
        const ASN1_IA5STRING* s = gn->d.dNSName;
        info.dns.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                              static_cast<size_t>(ASN1_STRING_length(s)));
      } else if (gn->type == GEN_IPADD) {
        const ASN1_OCTET_STRING* s = gn->d.iPAddress;
        char buf[INET6_ADDRSTRLEN] = {};
        int len = ASN1_STRING_length(s);
        int family = len == 4 ? AF_INET : len == 16 ? AF_INET6 : 0;
        if (family != 0 && inet_ntop(family, ASN1_STRING_get0_data(s), buf, sizeof buf) != nullptr) {
          info.ips.emplace_back(buf);
        }
      }
    }
  }
  std::unique_ptr<EXTENDED_KEY_USAGE, ossl::Deleter<EXTENDED_KEY_USAGE_free>> eku(
      static_cast<EXTENDED_KEY_USAGE*>(X509_get_ext_d2i(cert, NID_ext_key_usage, nullptr, nullptr)));
  if (eku) {
    for (int i = 0; i < sk_ASN1_OBJECT_num(eku.get()); ++i) {
      info.ekus.push_back(internal::OidText(sk_ASN1_OBJECT_value(eku.get(), i)));
    }
  }
  info.is_ca = (X509_get_extension_flags(cert) & EXFLAG_CA) != 0;
  ossl::DrainErrors();  // absent extensions leave nothing worth reporting
  return info;
}

absl::StatusOr<CertInfo> InspectCertificatePem(std::string_view pem) {
  IPFLEET_ASSIGN_OR_RETURN(ossl::X509Ptr cert, ParseCertificatePem(pem));
  return InspectCertificate(cert.get());
}

}  // namespace ipfleet::ca
