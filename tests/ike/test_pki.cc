// Minimal X.509 issuing for tests (aborts on OpenSSL failure: test setup, not product code).
#include "test_pki.h"

#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include <cstdlib>
#include <memory>

#include "ipfleet/common/openssl.h"

namespace ipfleet::ike::testing {
namespace {

void Check(bool ok, const char* what) {
  if (!ok) {
    fprintf(stderr, "test_pki: %s failed: %s\n", what, ossl::DrainErrors().c_str());
    std::abort();
  }
}

ossl::PKey NewKey(KeyType t) {
  EVP_PKEY* k = nullptr;
  if (t == KeyType::kRsa2048) k = EVP_RSA_gen(2048);
  else k = EVP_EC_gen(t == KeyType::kEcP384 ? "P-384" : "P-256");
  Check(k != nullptr, "keygen");
  return ossl::PKey(k);
}

std::string KeyPem(EVP_PKEY* k) {
  ossl::Bio b(BIO_new(BIO_s_mem()));
  Check(PEM_write_bio_PrivateKey(b.get(), k, nullptr, nullptr, 0, nullptr, nullptr) == 1, "PEM_write_bio_PrivateKey");
  return ossl::BioToString(b.get());
}
std::string CertPem(X509* c) {
  ossl::Bio b(BIO_new(BIO_s_mem()));
  Check(PEM_write_bio_X509(b.get(), c) == 1, "PEM_write_bio_X509");
  return ossl::BioToString(b.get());
}
ossl::X509Ptr ReadCert(const std::string& pem) {
  ossl::Bio b(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  X509* c = PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr);
  Check(c != nullptr, "PEM_read_bio_X509");
  return ossl::X509Ptr(c);
}
ossl::PKey ReadKey(const std::string& pem) {
  ossl::Bio b(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  EVP_PKEY* k = PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr);
  Check(k != nullptr, "PEM_read_bio_PrivateKey");
  return ossl::PKey(k);
}
void AddExt(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  ossl::X509Ext ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
  Check(ext != nullptr, "X509V3_EXT_conf_nid");
  Check(X509_add_ext(cert, ext.get(), -1) == 1, "X509_add_ext");
}
ossl::X509Ptr NewCert(const std::string& cn, long serial, EVP_PKEY* pub) {
  ossl::X509Ptr c(X509_new());
  X509_set_version(c.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(c.get()), serial);
  X509_gmtime_adj(X509_getm_notBefore(c.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(c.get()), 86400);
  X509_NAME* n = X509_get_subject_name(c.get());
  X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_NAME_add_entry_by_txt(n, "O", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>("ipfleet"), -1, -1, 0);
  X509_set_pubkey(c.get(), pub);
  return c;
}

}  // namespace

Pem MakeCa(const std::string& cn) {
  auto key = NewKey(KeyType::kEcP256);
  auto c = NewCert(cn, 1, key.get());
  X509_set_issuer_name(c.get(), X509_get_subject_name(c.get()));
  AddExt(c.get(), c.get(), NID_basic_constraints, "critical,CA:TRUE");
  AddExt(c.get(), c.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
  AddExt(c.get(), c.get(), NID_subject_key_identifier, "hash");
  Check(X509_sign(c.get(), key.get(), EVP_sha256()) > 0, "X509_sign(ca)");
  return Pem{CertPem(c.get()), KeyPem(key.get())};
}

Pem IssueCert(const Pem& ca, const std::string& cn, const std::vector<std::string>& sans, long serial, KeyType type) {
  auto ca_cert = ReadCert(ca.cert);
  auto ca_key = ReadKey(ca.key);
  auto key = NewKey(type);
  auto c = NewCert(cn, serial, key.get());
  X509_set_issuer_name(c.get(), X509_get_subject_name(ca_cert.get()));
  std::string san;
  for (const auto& s : sans) san += (san.empty() ? "" : ",") + s;
  if (!san.empty()) AddExt(c.get(), ca_cert.get(), NID_subject_alt_name, san);
  AddExt(c.get(), ca_cert.get(), NID_authority_key_identifier, "keyid");
  Check(X509_sign(c.get(), ca_key.get(), EVP_sha256()) > 0, "X509_sign(ee)");
  return Pem{CertPem(c.get()), KeyPem(key.get())};
}

Pem IssueIntermediate(const Pem& ca, const std::string& cn, long serial) {
  auto ca_cert = ReadCert(ca.cert);
  auto ca_key = ReadKey(ca.key);
  auto key = NewKey(KeyType::kEcP256);
  auto c = NewCert(cn, serial, key.get());
  X509_set_issuer_name(c.get(), X509_get_subject_name(ca_cert.get()));
  AddExt(c.get(), c.get(), NID_basic_constraints, "critical,CA:TRUE");
  AddExt(c.get(), c.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
  AddExt(c.get(), c.get(), NID_subject_key_identifier, "hash");
  AddExt(c.get(), ca_cert.get(), NID_authority_key_identifier, "keyid");
  Check(X509_sign(c.get(), ca_key.get(), EVP_sha256()) > 0, "X509_sign(intermediate)");
  return Pem{CertPem(c.get()), KeyPem(key.get())};
}

std::string MakeCrl(const Pem& ca, const std::vector<long>& revoked) {
  auto ca_cert = ReadCert(ca.cert);
  auto ca_key = ReadKey(ca.key);
  ossl::X509Crl crl(X509_CRL_new());
  X509_CRL_set_version(crl.get(), 1);
  X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(ca_cert.get()));
  ossl::Asn1Time last(ASN1_TIME_adj(nullptr, time(nullptr), 0, -60));
  ossl::Asn1Time next(ASN1_TIME_adj(nullptr, time(nullptr), 1, 0));
  X509_CRL_set1_lastUpdate(crl.get(), last.get());
  X509_CRL_set1_nextUpdate(crl.get(), next.get());
  for (long s : revoked) {
    X509_REVOKED* r = X509_REVOKED_new();
    ossl::Asn1Integer serial(ASN1_INTEGER_new());
    ASN1_INTEGER_set(serial.get(), s);
    X509_REVOKED_set_serialNumber(r, serial.get());
    X509_REVOKED_set_revocationDate(r, last.get());
    X509_CRL_add0_revoked(crl.get(), r);
  }
  X509_CRL_sort(crl.get());
  Check(X509_CRL_sign(crl.get(), ca_key.get(), EVP_sha256()) > 0, "X509_CRL_sign");
  ossl::Bio b(BIO_new(BIO_s_mem()));
  Check(PEM_write_bio_X509_CRL(b.get(), crl.get()) == 1, "PEM_write_bio_X509_CRL");
  return ossl::BioToString(b.get());
}

}  // namespace ipfleet::ike::testing
