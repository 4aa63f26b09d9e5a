// Private keys for the CA, the controller, the policy signer and agents.
// Only OpenSSL 3 EVP APIs; every key is an ossl::PKey (RAII).
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "ipfleet/common/openssl.h"
#include "ipfleet/common/status.h"

namespace ipfleet::ca {

// Key types ipfleet generates. (Accepted in CSRs: see CheckAcceptableKey.)
enum class KeyType {
  kEcdsaP256,  // default everywhere: fast to sign, small certificates
  kRsa3072,    // for fleets that must use RSA
};

// "ecdsa-p256" / "rsa-3072" (the spelling of the --ca-key flag).
std::string_view KeyTypeName(KeyType type);
absl::StatusOr<KeyType> ParseKeyType(std::string_view name);

// Generates a fresh key pair.
absl::StatusOr<ossl::PKey> GenerateKey(KeyType type);

// The key type of an existing key, or InvalidArgument for anything ipfleet does not generate.
absl::StatusOr<KeyType> KeyTypeOf(EVP_PKEY* key);

// Refuses keys other than EC P-256 / P-384 and RSA >= 2048 bits; the error says what was found
// (e.g. "refused key type: RSA 1024 bits (need EC P-256/P-384 or RSA >= 2048)").
absl::Status CheckAcceptableKey(EVP_PKEY* key);

// PKCS#8 PEM, unencrypted (the file mode protects it).
absl::StatusOr<std::string> PrivateKeyToPem(EVP_PKEY* key);
absl::StatusOr<ossl::PKey> PrivateKeyFromPem(std::string_view pem);

// SubjectPublicKeyInfo PEM of the public half.
absl::StatusOr<std::string> PublicKeyToPem(EVP_PKEY* key);

// Writes the key as PEM, mode 0600, atomically (temp file + rename).
absl::Status SavePrivateKey(const std::filesystem::path& path, EVP_PKEY* key);
// Reads a PEM private key; a damaged file gives an error naming the path and the OpenSSL call.
absl::StatusOr<ossl::PKey> LoadPrivateKey(const std::filesystem::path& path);

}  // namespace ipfleet::ca
