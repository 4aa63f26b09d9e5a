// IKEv2 cryptography on OpenSSL 3 EVP: PRFs and prf+ (RFC 7296 2.13), SKEYSEED/SK_* (2.14),
// CHILD_SA KEYMAT (2.17), Diffie-Hellman groups 14/19/20/31 with the peer-value checks their
// RFCs require, and the Encrypted payload (AES-GCM per RFC 5282, AES-CBC + HMAC-SHA2 per
// RFC 4868). Secrets live in Bytes that are wiped by SecretBytes' destructor where it matters.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "ipfleet/common/openssl.h"
#include "ipfleet/common/status.h"
#include "ipfleet/ike/wire.h"

namespace ipfleet::ike {

using ByteView = std::span<const uint8_t>;

// Overwrites a buffer before it is freed (OPENSSL_cleanse).
void Wipe(Bytes& b);

// ---- PRF / HMAC -----------------------------------------------------------------------------
enum class HashAlg { kSha256, kSha384, kSha512 };
size_t HashLen(HashAlg h);
const char* HashName(HashAlg h);  // OpenSSL digest name

// HMAC over OpenSSL EVP_MAC.
absl::StatusOr<Bytes> Hmac(HashAlg h, ByteView key, ByteView data);

class Prf {
 public:
  // PRF_HMAC_SHA2_256/384/512 (RFC 4868); InvalidArgument for others.
  static absl::StatusOr<Prf> FromTransform(uint16_t prf_id);
  explicit Prf(HashAlg h) : hash_(h) {}
  size_t output_len() const { return HashLen(hash_); }
  // Preferred key length = output length for HMAC PRFs (RFC 7296 2.13/2.14).
  size_t key_len() const { return HashLen(hash_); }
  HashAlg hash() const { return hash_; }
  absl::StatusOr<Bytes> Compute(ByteView key, ByteView data) const;
  // prf+ (RFC 7296 2.13): T1 | T2 | ... truncated to `len`; at most 255 iterations.
  absl::StatusOr<Bytes> Plus(ByteView key, ByteView seed, size_t len) const;

 private:
  HashAlg hash_;
};

// ---- Key derivation -------------------------------------------------------------------------
struct IkeKeyLengths {
  size_t encr = 0;   // including the 4-byte salt for AES-GCM (RFC 5282 section 7.1)
  size_t integ = 0;  // 0 for AEAD
  size_t prf = 0;    // SK_d, SK_pi, SK_pr
};

struct IkeKeys {
  Bytes skeyseed;
  Bytes sk_d, sk_ai, sk_ar, sk_ei, sk_er, sk_pi, sk_pr;
  ~IkeKeys();
};

// RFC 7296 2.14: SKEYSEED = prf(Ni | Nr, g^ir); {SK_d ...} = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr).
absl::StatusOr<IkeKeys> DeriveIkeKeys(const Prf& prf, const IkeKeyLengths& lens, ByteView ni, ByteView nr,
                                      ByteView shared_secret, uint64_t spi_i, uint64_t spi_r);

// RFC 7296 2.17: KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr).
absl::StatusOr<Bytes> DeriveChildKeymat(const Prf& prf, ByteView sk_d, ByteView shared_secret, ByteView ni,
                                        ByteView nr, size_t len);

// ---- Diffie-Hellman -------------------------------------------------------------------------
class DhKey {
 public:
  // Fresh ephemeral key for group 14, 19, 20 or 31.
  static absl::StatusOr<DhKey> Generate(uint16_t group);
  // Known private key (tests with published vectors). `pub` is the IKE encoding of the public
  // value (needed for EC groups; ignored for 31 which derives it).
  static absl::StatusOr<DhKey> FromPrivate(uint16_t group, ByteView priv, ByteView pub);
  static bool Supported(uint16_t group);

  uint16_t group() const { return group_; }
  // The KE payload data: MODP y padded to |p|; ECP x|y (RFC 5903 section 7); X25519 32 bytes.
  const Bytes& public_value() const { return public_; }
  // Validates the peer's value (RFC 7296 / 5903 / 8031 checks) and computes the shared secret:
  // MODP padded to |p|, ECP the x coordinate, X25519 32 bytes (all-zero refused).
  absl::StatusOr<Bytes> Derive(ByteView peer_public) const;

 private:
  uint16_t group_ = 0;
  std::shared_ptr<EVP_PKEY> key_;
  Bytes public_;
};

// ---- AES-GCM primitive (exposed for known-answer tests) ---------------------------------------
absl::StatusOr<Bytes> GcmSeal(ByteView key, ByteView nonce12, ByteView aad, ByteView plaintext);  // ct || tag16
absl::StatusOr<Bytes> GcmOpen(ByteView key, ByteView nonce12, ByteView aad, ByteView ct_and_tag);
absl::StatusOr<Bytes> CbcEncryptRaw(ByteView key, ByteView iv, ByteView plaintext);  // no padding
absl::StatusOr<Bytes> CbcDecryptRaw(ByteView key, ByteView iv, ByteView ciphertext);

// ---- Encrypted payload protection -------------------------------------------------------------
// One negotiated IKE cipher suite: ENCR (+ INTEG unless AEAD).
class SkCipher {
 public:
  // encr_id ENCR_AES_GCM_16 or ENCR_AES_CBC with key bits 128/256 (CBC also 192);
  // integ_id NONE for GCM, HMAC_SHA2_256_128/384_192/512_256 for CBC.
  static absl::StatusOr<SkCipher> Create(uint16_t encr_id, uint16_t key_bits, uint16_t integ_id);
  size_t encr_key_len() const;  // with salt for GCM
  size_t integ_key_len() const;
  bool aead() const { return aead_; }

  // Builds a complete datagram: header (length and next payload = SK filled in), the SK payload
  // whose inner chain is `inner` starting with `first_inner`, encrypted and integrity protected.
  absl::StatusOr<Bytes> Protect(Header header, PayloadType first_inner, ByteView inner, ByteView encr_key,
                                ByteView integ_key) const;
  // Verifies and decrypts the SK payload of `datagram` (it must be the last payload, with
  // `sk_body_len` bytes of body). Returns the inner chain bytes.
  absl::StatusOr<Bytes> Unprotect(ByteView datagram, size_t sk_body_len, ByteView encr_key,
                                  ByteView integ_key) const;
  // RFC 7383 2.5: one Encrypted Fragment (SKF) datagram carrying `chunk` of the inner chain.
  // Fragment Number/Total are covered by the integrity check (AAD). sk_fragment.cc.
  absl::StatusOr<Bytes> ProtectFragment(Header header, PayloadType first_inner, uint16_t number, uint16_t total,
                                        ByteView chunk, ByteView encr_key, ByteView integ_key) const;
  // Largest inner chunk that fits a datagram of `datagram_len` bytes as one SKF message.
  size_t MaxFragmentChunk(size_t datagram_len) const;

 private:
  bool aead_ = false;
  size_t key_bytes_ = 0;
  HashAlg integ_hash_ = HashAlg::kSha256;
  size_t icv_len_ = 0;
};

// Key lengths (bytes) an ESP/IKE transform set needs; InvalidArgument when unsupported.
absl::StatusOr<size_t> EncrKeyLen(uint16_t encr_id, uint16_t key_bits);  // with salt for GCM
absl::StatusOr<size_t> IntegKeyLen(uint16_t integ_id);

std::string Hex(ByteView b);
Bytes Unhex(std::string_view hex);  // test helper; ignores spaces, aborts on bad input

}  // namespace ipfleet::ike
