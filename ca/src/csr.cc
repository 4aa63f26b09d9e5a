#include "ipfleet/ca/csr.h"

#include <openssl/pem.h>

#include "ipfleet/ca/keys.h"

namespace ipfleet::ca {

absl::Status VerifyCsr(X509_REQ* csr) {
  // get0 keeps ownership with the request.
  EVP_PKEY* key = X509_REQ_get0_pubkey(csr);
  if (key == nullptr) return ossl::Error("X509_REQ_get0_pubkey", absl::StatusCode::kInvalidArgument);
  // Key type first: a refused key should say so even when its signature is fine.
  IPFLEET_RETURN_IF_ERROR(CheckAcceptableKey(key));
  if (X509_REQ_verify(csr, key) != 1) {
    return ossl::Error("X509_REQ_verify (CSR signature does not match its key)",
                       absl::StatusCode::kInvalidArgument);
  }
  return absl::OkStatus();
}

absl::StatusOr<ossl::X509Req> ParseAndVerifyCsr(std::string_view pem) {
  ossl::Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return ossl::Error("BIO_new_mem_buf");
  X509_REQ* raw = PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr);
  if (raw == nullptr) {
    return ossl::Error("PEM_read_bio_X509_REQ (not a PEM certificate request)",
                       absl::StatusCode::kInvalidArgument);
  }
  ossl::X509Req req(raw);
  IPFLEET_RETURN_IF_ERROR(VerifyCsr(req.get()));
  return req;
}

absl::StatusOr<std::string> MakeCsrPem(EVP_PKEY* key, std::string_view common_name) {
  ossl::X509Req req(X509_REQ_new());
  if (!req) return ossl::Error("X509_REQ_new");
  if (X509_REQ_set_version(req.get(), 0) != 1) return ossl::Error("X509_REQ_set_version");
  X509_NAME* name = X509_REQ_get_subject_name(req.get());
  std::string cn(common_name);
  if (!cn.empty() &&
      X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0) != 1) {
    return ossl::Error("X509_NAME_add_entry_by_NID");
  }
  if (X509_REQ_set_pubkey(req.get(), key) != 1) return ossl::Error("X509_REQ_set_pubkey");
  if (X509_REQ_sign(req.get(), key, EVP_sha256()) <= 0) return ossl::Error("X509_REQ_sign");
  ossl::Bio bio(BIO_new(BIO_s_mem()));
  if (!bio) return ossl::Error("BIO_new");
  if (PEM_write_bio_X509_REQ(bio.get(), req.get()) != 1) return ossl::Error("PEM_write_bio_X509_REQ");
  return ossl::BioToString(bio.get());
}

}  // namespace ipfleet::ca
