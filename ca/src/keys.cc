#include "ipfleet/ca/keys.h"

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/pem.h>

#include "ipfleet/common/files.h"

namespace ipfleet::ca {

std::string_view KeyTypeName(KeyType type) {
  switch (type) {
    case KeyType::kEcdsaP256: return "ecdsa-p256";
    case KeyType::kRsa3072: return "rsa-3072";
  }
  return "unknown";
}

absl::StatusOr<KeyType> ParseKeyType(std::string_view name) {
  if (name == "ecdsa-p256") return KeyType::kEcdsaP256;
  if (name == "rsa-3072") return KeyType::kRsa3072;
  return absl::InvalidArgumentError("unknown key type \"" + std::string(name) +
                                    "\" (use ecdsa-p256 or rsa-3072)");
}

absl::StatusOr<ossl::PKey> GenerateKey(KeyType type) {
  EVP_PKEY* raw = nullptr;
  if (type == KeyType::kEcdsaP256) {
    raw = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  } else {
    raw = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(3072));
  }
  if (raw == nullptr) return ossl::Error("EVP_PKEY_Q_keygen");
  return ossl::PKey(raw);
}

namespace {

// The curve name of an EC key ("prime256v1"/"P-256" spellings vary; we normalise via NID).
std::string CurveName(EVP_PKEY* key) {
  char name[80] = {};
  size_t len = 0;
  if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, name, sizeof name, &len) != 1) {
    ossl::DrainErrors();
    return {};
  }
  return std::string(name, len);
}

bool IsCurve(const std::string& name, int nid) {
  int got = OBJ_txt2nid(name.c_str());
  if (got == NID_undef) got = EC_curve_nist2nid(name.c_str());
  return got == nid;
}

}  // namespace

absl::StatusOr<KeyType> KeyTypeOf(EVP_PKEY* key) {
  if (key == nullptr) return absl::InvalidArgumentError("no key");
  if (EVP_PKEY_is_a(key, "EC") && IsCurve(CurveName(key), NID_X9_62_prime256v1)) {
    return KeyType::kEcdsaP256;
  }
  if (EVP_PKEY_is_a(key, "RSA") && EVP_PKEY_get_bits(key) == 3072) return KeyType::kRsa3072;
  return absl::InvalidArgumentError("key is neither EC P-256 nor RSA 3072");
}

absl::Status CheckAcceptableKey(EVP_PKEY* key) {
  if (key == nullptr) return absl::InvalidArgumentError("refused key: no public key");
  if (EVP_PKEY_is_a(key, "EC")) {
    std::string curve = CurveName(key);
    if (IsCurve(curve, NID_X9_62_prime256v1) || IsCurve(curve, NID_secp384r1)) {
      return absl::OkStatus();
    }
    return absl::InvalidArgumentError("refused key type: EC curve " +
                                      (curve.empty() ? std::string("(unknown)") : curve) +
                                      " (need EC P-256/P-384 or RSA >= 2048)");
  }
  if (EVP_PKEY_is_a(key, "RSA")) {
    int bits = EVP_PKEY_get_bits(key);
    if (bits >= 2048) return absl::OkStatus();
    return absl::InvalidArgumentError("refused key type: RSA " + std::to_string(bits) +
                                      " bits (need EC P-256/P-384 or RSA >= 2048)");
  }
  const char* type = EVP_PKEY_get0_type_name(key);
  return absl::InvalidArgumentError(std::string("refused key type: ") +
                                    (type != nullptr ? type : "unknown") +
                                    " (need EC P-256/P-384 or RSA >= 2048)");
}

absl::StatusOr<std::string> PrivateKeyToPem(EVP_PKEY* key) {
  ossl::Bio bio(BIO_new(BIO_s_mem()));
  if (!bio) return ossl::Error("BIO_new");
  if (PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return ossl::Error("PEM_write_bio_PrivateKey");
  }
  return ossl::BioToString(bio.get());
}

absl::StatusOr<ossl::PKey> PrivateKeyFromPem(std::string_view pem) {
  ossl::Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return ossl::Error("BIO_new_mem_buf");
  // An empty passphrase callback result makes encrypted keys fail instead of prompting.
  EVP_PKEY* raw = PEM_read_bio_PrivateKey(bio.get(), nullptr,
                                          [](char*, int, int, void*) { return 0; }, nullptr);
  if (raw == nullptr) {
    return ossl::Error("PEM_read_bio_PrivateKey", absl::StatusCode::kInvalidArgument);
  }
  return ossl::PKey(raw);
}

absl::StatusOr<std::string> PublicKeyToPem(EVP_PKEY* key) {
  ossl::Bio bio(BIO_new(BIO_s_mem()));
  if (!bio) return ossl::Error("BIO_new");
  if (PEM_write_bio_PUBKEY(bio.get(), key) != 1) return ossl::Error("PEM_write_bio_PUBKEY");
  return ossl::BioToString(bio.get());
}

absl::Status SavePrivateKey(const std::filesystem::path& path, EVP_PKEY* key) {
  IPFLEET_ASSIGN_OR_RETURN(std::string pem, PrivateKeyToPem(key));
  absl::Status st = files::WriteAtomic(path, pem, 0600);
  // Best effort: do not leave key bytes in our heap longer than needed.
  OPENSSL_cleanse(pem.data(), pem.size());
  return st;
}

absl::StatusOr<ossl::PKey> LoadPrivateKey(const std::filesystem::path& path) {
  IPFLEET_ASSIGN_OR_RETURN(std::string pem, files::Read(path));
  auto key = PrivateKeyFromPem(pem);
  OPENSSL_cleanse(pem.data(), pem.size());
  if (!key.ok()) {
    return absl::Status(key.status().code(),
                        "damaged key file " + path.string() + ": " + std::string(key.status().message()));
  }
  return key;
}

}  // namespace ipfleet::ca
