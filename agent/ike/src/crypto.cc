// OpenSSL 3 EVP implementation of the IKEv2 primitives declared in crypto.h.
#include "ipfleet/ike/crypto.h"

#include <absl/strings/str_cat.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/dh.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>

#include <cstdlib>

#include "ipfleet/ike/codec.h"

namespace ipfleet::ike {
namespace {

using MacCtx = std::unique_ptr<EVP_MAC_CTX, ossl::Deleter<EVP_MAC_CTX_free>>;
using ParamBld = std::unique_ptr<OSSL_PARAM_BLD, ossl::Deleter<OSSL_PARAM_BLD_free>>;
using Params = std::unique_ptr<OSSL_PARAM, ossl::Deleter<OSSL_PARAM_free>>;

// Fetched once: EVP_MAC_fetch is a provider lookup, far too slow per message.
EVP_MAC* HmacAlg() {
  static EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  return mac;
}

// One pre-keyed-less HMAC context per digest, duplicated per call (avoids digest lookup).
EVP_MAC_CTX* HmacTemplate(HashAlg h) {
  static EVP_MAC_CTX* t[3] = {nullptr, nullptr, nullptr};
  int i = static_cast<int>(h);
  if (!t[i]) {
    EVP_MAC_CTX* c = EVP_MAC_CTX_new(HmacAlg());
    OSSL_PARAM p[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>(HashName(h)), 0),
                      OSSL_PARAM_construct_end()};
    if (c && EVP_MAC_CTX_set_params(c, p) == 1) t[i] = c;
  }
  return t[i];
}

absl::Status Random(uint8_t* out, size_t n) {
  if (RAND_bytes(out, static_cast<int>(n)) != 1) return ossl::Error("RAND_bytes");
  return absl::OkStatus();
}

const char* GroupName(uint16_t group) {
  switch (group) {
    case dh::kModp2048: return "modp_2048";
    case dh::kEcp256: return "P-256";
    case dh::kEcp384: return "P-384";
    default: return nullptr;
  }
}
size_t PublicLen(uint16_t group) {
  switch (group) {
    case dh::kModp2048: return 256;
    case dh::kEcp256: return 64;
    case dh::kEcp384: return 96;
    case dh::kCurve25519: return 32;
    default: return 0;
  }
}
bool IsEc(uint16_t g) { return g == dh::kEcp256 || g == dh::kEcp384; }

absl::StatusOr<EVP_PKEY*> FromData(const char* type, OSSL_PARAM_BLD* bld, int selection) {
  Params params(OSSL_PARAM_BLD_to_param(bld));
  if (!params) return ossl::Error("OSSL_PARAM_BLD_to_param");
  ossl::PKeyCtx ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1) return ossl::Error("EVP_PKEY_fromdata_init");
  EVP_PKEY* k = nullptr;
  if (EVP_PKEY_fromdata(ctx.get(), &k, selection, params.get()) != 1)
    return ossl::Error("EVP_PKEY_fromdata", absl::StatusCode::kInvalidArgument);
  return k;
}

absl::StatusOr<Bytes> ExtractPublic(uint16_t group, EVP_PKEY* k) {
  Bytes out(PublicLen(group));
  if (group == dh::kModp2048) {
    BIGNUM* y = nullptr;
    if (EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_PUB_KEY, &y) != 1) return ossl::Error("EVP_PKEY_get_bn_param(pub)");
    ossl::BigNum owned(y);
    if (BN_bn2binpad(y, out.data(), out.size()) < 0) return ossl::Error("BN_bn2binpad");
  } else if (IsEc(group)) {
    uint8_t buf[1 + 96];
    size_t len = 0;
    if (EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, buf, sizeof buf, &len) != 1)
      return ossl::Error("EVP_PKEY_get_octet_string_param(encoded-pub-key)");
    if (len != out.size() + 1 || buf[0] != 0x04) return absl::InternalError("EC public key not uncompressed");
    std::copy(buf + 1, buf + len, out.begin());
  } else {
    size_t len = out.size();
    if (EVP_PKEY_get_raw_public_key(k, out.data(), &len) != 1 || len != 32)
      return ossl::Error("EVP_PKEY_get_raw_public_key");
  }
  return out;
}

}  // namespace

void Wipe(Bytes& b) {
  if (!b.empty()) OPENSSL_cleanse(b.data(), b.size());
}

size_t HashLen(HashAlg h) {
  switch (h) {
    case HashAlg::kSha256: return 32;
    case HashAlg::kSha384: return 48;
    case HashAlg::kSha512: return 64;
  }
  return 0;
}

const char* HashName(HashAlg h) {
  switch (h) {
    case HashAlg::kSha256: return "SHA256";
    case HashAlg::kSha384: return "SHA384";
    case HashAlg::kSha512: return "SHA512";
  }
  return "";
}

absl::StatusOr<Bytes> Hmac(HashAlg h, ByteView key, ByteView data) {
  EVP_MAC_CTX* tmpl = HmacTemplate(h);
  if (!tmpl) return ossl::Error("EVP_MAC_fetch(HMAC)");
  MacCtx ctx(EVP_MAC_CTX_dup(tmpl));
  if (!ctx) return ossl::Error("EVP_MAC_CTX_dup");
  static const uint8_t kEmpty = 0;
  if (EVP_MAC_init(ctx.get(), key.empty() ? &kEmpty : key.data(), key.size(), nullptr) != 1)
    return ossl::Error("EVP_MAC_init");
  if (EVP_MAC_update(ctx.get(), data.data(), data.size()) != 1) return ossl::Error("EVP_MAC_update");
  Bytes out(HashLen(h));
  size_t len = 0;
  if (EVP_MAC_final(ctx.get(), out.data(), &len, out.size()) != 1 || len != out.size())
    return ossl::Error("EVP_MAC_final");
  return out;
}

absl::StatusOr<Prf> Prf::FromTransform(uint16_t id) {
  switch (id) {
    case prf::kHmacSha256: return Prf(HashAlg::kSha256);
    case prf::kHmacSha384: return Prf(HashAlg::kSha384);
    case prf::kHmacSha512: return Prf(HashAlg::kSha512);
    default: return absl::InvalidArgumentError(absl::StrCat("unsupported PRF transform ", id));
  }
}

absl::StatusOr<Bytes> Prf::Compute(ByteView key, ByteView data) const { return Hmac(hash_, key, data); }

absl::StatusOr<Bytes> Prf::Plus(ByteView key, ByteView seed, size_t len) const {
  // T1 = prf(K, S | 0x01), Tn = prf(K, Tn-1 | S | n); the counter is one octet, so at most 255 blocks.
  size_t n = output_len();
  if ((len + n - 1) / n > 255) return absl::InvalidArgumentError("prf+: requested length exceeds 255 blocks");
  Bytes out;
  out.reserve(len + n);
  Bytes block;
  Bytes input;
  for (uint8_t i = 1; out.size() < len; ++i) {
    input.assign(block.begin(), block.end());
    input.insert(input.end(), seed.begin(), seed.end());
    input.push_back(i);
    Wipe(block);
    IPFLEET_ASSIGN_OR_RETURN(block, Compute(key, input));
    out.insert(out.end(), block.begin(), block.end());
  }
  Wipe(block);
  Wipe(input);
  out.resize(len);
  return out;
}

IkeKeys::~IkeKeys() {
  for (Bytes* b : {&skeyseed, &sk_d, &sk_ai, &sk_ar, &sk_ei, &sk_er, &sk_pi, &sk_pr}) Wipe(*b);
}

absl::StatusOr<IkeKeys> DeriveIkeKeys(const Prf& prf, const IkeKeyLengths& lens, ByteView ni, ByteView nr,
                                      ByteView shared, uint64_t spi_i, uint64_t spi_r) {
  IkeKeys k;
  Bytes nonces(ni.begin(), ni.end());
  nonces.insert(nonces.end(), nr.begin(), nr.end());
  IPFLEET_ASSIGN_OR_RETURN(k.skeyseed, prf.Compute(nonces, shared));
  Bytes seed = nonces;
  for (uint64_t spi : {spi_i, spi_r})
    for (int s = 56; s >= 0; s -= 8) seed.push_back(static_cast<uint8_t>(spi >> s));
  size_t total = 3 * lens.prf + 2 * lens.integ + 2 * lens.encr;
  IPFLEET_ASSIGN_OR_RETURN(Bytes stream, prf.Plus(k.skeyseed, seed, total));
  size_t off = 0;
  auto take = [&](size_t n) {
    Bytes b(stream.begin() + off, stream.begin() + off + n);
    off += n;
    return b;
  };
  k.sk_d = take(lens.prf);
  k.sk_ai = take(lens.integ);
  k.sk_ar = take(lens.integ);
  k.sk_ei = take(lens.encr);
  k.sk_er = take(lens.encr);
  k.sk_pi = take(lens.prf);
  k.sk_pr = take(lens.prf);
  Wipe(stream);
  return k;
}

absl::StatusOr<Bytes> DeriveChildKeymat(const Prf& prf, ByteView sk_d, ByteView shared, ByteView ni, ByteView nr,
                                        size_t len) {
  Bytes seed(shared.begin(), shared.end());
  seed.insert(seed.end(), ni.begin(), ni.end());
  seed.insert(seed.end(), nr.begin(), nr.end());
  auto r = prf.Plus(sk_d, seed, len);
  Wipe(seed);
  return r;
}

// ---- Diffie-Hellman ---------------------------------------------------------------------------

bool DhKey::Supported(uint16_t g) { return PublicLen(g) != 0; }

absl::StatusOr<DhKey> DhKey::Generate(uint16_t group) {
  if (!Supported(group)) return absl::InvalidArgumentError(absl::StrCat("unsupported DH group ", group));
  EVP_PKEY* k = nullptr;
  if (group == dh::kCurve25519) {
    ossl::PKeyCtx ctx(EVP_PKEY_CTX_new_from_name(nullptr, "X25519", nullptr));
    if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 || EVP_PKEY_generate(ctx.get(), &k) != 1)
      return ossl::Error("EVP_PKEY_generate(X25519)");
  } else {
    ossl::PKeyCtx ctx(EVP_PKEY_CTX_new_from_name(nullptr, group == dh::kModp2048 ? "DH" : "EC", nullptr));
    OSSL_PARAM p[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, const_cast<char*>(GroupName(group)), 0),
        OSSL_PARAM_construct_end()};
    if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 || EVP_PKEY_CTX_set_params(ctx.get(), p) != 1 ||
        EVP_PKEY_generate(ctx.get(), &k) != 1)
      return ossl::Error(absl::StrCat("EVP_PKEY_generate(", GroupName(group), ")"));
  }
  DhKey d;
  d.group_ = group;
  d.key_.reset(k, EVP_PKEY_free);
  IPFLEET_ASSIGN_OR_RETURN(d.public_, ExtractPublic(group, k));
  return d;
}

absl::StatusOr<DhKey> DhKey::FromPrivate(uint16_t group, ByteView priv, ByteView pub) {
  if (!Supported(group)) return absl::InvalidArgumentError(absl::StrCat("unsupported DH group ", group));
  EVP_PKEY* k = nullptr;
  if (group == dh::kCurve25519) {
    k = EVP_PKEY_new_raw_private_key_ex(nullptr, "X25519", nullptr, priv.data(), priv.size());
    if (!k) return ossl::Error("EVP_PKEY_new_raw_private_key_ex(X25519)");
  } else {
    ParamBld bld(OSSL_PARAM_BLD_new());
    ossl::BigNum p(BN_bin2bn(priv.data(), priv.size(), nullptr));
    Bytes encoded;
    ossl::BigNum y;
    if (!bld || !p || !OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, GroupName(group), 0) ||
        !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_PRIV_KEY, p.get()))
      return ossl::Error("OSSL_PARAM_BLD_push");
    if (IsEc(group)) {
      encoded.push_back(0x04);
      encoded.insert(encoded.end(), pub.begin(), pub.end());
      if (!OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, encoded.data(), encoded.size()))
        return ossl::Error("OSSL_PARAM_BLD_push_octet_string");
    } else {
      y.reset(BN_bin2bn(pub.data(), pub.size(), nullptr));
      if (!y || !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, y.get()))
        return ossl::Error("OSSL_PARAM_BLD_push_BN");
    }
    IPFLEET_ASSIGN_OR_RETURN(k, FromData(IsEc(group) ? "EC" : "DH", bld.get(), EVP_PKEY_KEYPAIR));
  }
  DhKey d;
  d.group_ = group;
  d.key_.reset(k, EVP_PKEY_free);
  IPFLEET_ASSIGN_OR_RETURN(d.public_, ExtractPublic(group, k));
  return d;
}

absl::StatusOr<Bytes> DhKey::Derive(ByteView peer) const {
  if (peer.size() != PublicLen(group_))
    return absl::InvalidArgumentError(
        absl::StrCat("DH group ", group_, ": peer public value has ", peer.size(), " bytes, expected ", PublicLen(group_)));
  EVP_PKEY* raw = nullptr;
  if (group_ == dh::kCurve25519) {
    raw = EVP_PKEY_new_raw_public_key_ex(nullptr, "X25519", nullptr, peer.data(), peer.size());
    if (!raw) return ossl::Error("EVP_PKEY_new_raw_public_key_ex(X25519)", absl::StatusCode::kInvalidArgument);
  } else if (group_ == dh::kModp2048) {
    // RFC 7296 / SP 800-56A: the peer value must satisfy 1 < y < p-1.
    ossl::BigNum y(BN_bin2bn(peer.data(), peer.size(), nullptr));
    BIGNUM* pr = nullptr;
    if (!y || EVP_PKEY_get_bn_param(key_.get(), OSSL_PKEY_PARAM_FFC_P, &pr) != 1) return ossl::Error("EVP_PKEY_get_bn_param(p)");
    ossl::BigNum p(pr);
    ossl::BigNum pm1(BN_dup(p.get()));
    if (!pm1 || !BN_sub_word(pm1.get(), 1)) return ossl::Error("BN_sub_word");
    if (BN_cmp(y.get(), BN_value_one()) <= 0 || BN_cmp(y.get(), pm1.get()) >= 0)
      return absl::InvalidArgumentError("MODP-2048 peer public value outside 1 < y < p-1");
    ParamBld bld(OSSL_PARAM_BLD_new());
    if (!bld || !OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, "modp_2048", 0) ||
        !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, y.get()))
      return ossl::Error("OSSL_PARAM_BLD_push");
    IPFLEET_ASSIGN_OR_RETURN(raw, FromData("DH", bld.get(), EVP_PKEY_PUBLIC_KEY));
  } else {
    // RFC 5903 section 7: x | y without the 0x04 prefix; the decoder checks the point is on the curve.
    Bytes encoded{0x04};
    encoded.insert(encoded.end(), peer.begin(), peer.end());
    ParamBld bld(OSSL_PARAM_BLD_new());
    if (!bld || !OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, GroupName(group_), 0) ||
        !OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, encoded.data(), encoded.size()))
      return ossl::Error("OSSL_PARAM_BLD_push");
    IPFLEET_ASSIGN_OR_RETURN(raw, FromData("EC", bld.get(), EVP_PKEY_PUBLIC_KEY));
  }
  ossl::PKey peer_key(raw);
  ossl::PKeyCtx ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key_.get(), nullptr));
  if (!ctx || EVP_PKEY_derive_init(ctx.get()) != 1) return ossl::Error("EVP_PKEY_derive_init");
  if (group_ == dh::kModp2048 && EVP_PKEY_CTX_set_dh_pad(ctx.get(), 1) != 1) return ossl::Error("EVP_PKEY_CTX_set_dh_pad");
  // validate=1: full public-key check (EC point on curve and in the group, DH subgroup/range).
  if (EVP_PKEY_derive_set_peer_ex(ctx.get(), peer_key.get(), 1) != 1)
    return ossl::Error("EVP_PKEY_derive_set_peer_ex", absl::StatusCode::kInvalidArgument);
  size_t len = 0;
  if (EVP_PKEY_derive(ctx.get(), nullptr, &len) != 1) return ossl::Error("EVP_PKEY_derive(size)");
  Bytes out(len);
  if (EVP_PKEY_derive(ctx.get(), out.data(), &len) != 1)
    return ossl::Error("EVP_PKEY_derive", absl::StatusCode::kInvalidArgument);
  out.resize(len);
  if (group_ == dh::kCurve25519) {
    // RFC 7748 section 6.1 / RFC 8031 section 2.3: an all-zero output means a low-order point.
    uint8_t acc = 0;
    for (uint8_t b : out) acc |= b;
    if (acc == 0) return absl::InvalidArgumentError("X25519 shared secret is all zero");
  }
  return out;
}

// ---- Ciphers ----------------------------------------------------------------------------------

namespace {
const EVP_CIPHER* GcmCipher(size_t key_len) {
  return key_len == 16 ? EVP_aes_128_gcm() : key_len == 32 ? EVP_aes_256_gcm() : key_len == 24 ? EVP_aes_192_gcm() : nullptr;
}
const EVP_CIPHER* CbcCipher(size_t key_len) {
  return key_len == 16 ? EVP_aes_128_cbc() : key_len == 32 ? EVP_aes_256_cbc() : key_len == 24 ? EVP_aes_192_cbc() : nullptr;
}
}  // namespace

absl::StatusOr<Bytes> GcmSeal(ByteView key, ByteView nonce, ByteView aad, ByteView pt) {
  const EVP_CIPHER* c = GcmCipher(key.size());
  if (!c || nonce.size() != 12) return absl::InvalidArgumentError("GcmSeal: bad key or nonce length");
  ossl::CipherCtx ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  Bytes out(pt.size() + 16);
  if (!ctx || EVP_EncryptInit_ex2(ctx.get(), c, key.data(), nonce.data(), nullptr) != 1)
    return ossl::Error("EVP_EncryptInit_ex2(gcm)");
  if (!aad.empty() && EVP_EncryptUpdate(ctx.get(), nullptr, &len, aad.data(), aad.size()) != 1)
    return ossl::Error("EVP_EncryptUpdate(aad)");
  if (EVP_EncryptUpdate(ctx.get(), out.data(), &len, pt.data(), pt.size()) != 1) return ossl::Error("EVP_EncryptUpdate");
  int fin = 0;
  if (EVP_EncryptFinal_ex(ctx.get(), out.data() + len, &fin) != 1) return ossl::Error("EVP_EncryptFinal_ex");
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, 16, out.data() + pt.size()) != 1)
    return ossl::Error("EVP_CTRL_GCM_GET_TAG");
  return out;
}

absl::StatusOr<Bytes> GcmOpen(ByteView key, ByteView nonce, ByteView aad, ByteView ct) {
  const EVP_CIPHER* c = GcmCipher(key.size());
  if (!c || nonce.size() != 12 || ct.size() < 16) return absl::InvalidArgumentError("GcmOpen: bad lengths");
  size_t n = ct.size() - 16;
  ossl::CipherCtx ctx(EVP_CIPHER_CTX_new());
  Bytes out(n);
  int len = 0;
  if (!ctx || EVP_DecryptInit_ex2(ctx.get(), c, key.data(), nonce.data(), nullptr) != 1)
    return ossl::Error("EVP_DecryptInit_ex2(gcm)");
  if (!aad.empty() && EVP_DecryptUpdate(ctx.get(), nullptr, &len, aad.data(), aad.size()) != 1)
    return ossl::Error("EVP_DecryptUpdate(aad)");
  if (EVP_DecryptUpdate(ctx.get(), out.data(), &len, ct.data(), n) != 1) return ossl::Error("EVP_DecryptUpdate");
  Bytes tag(ct.end() - 16, ct.end());
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, 16, tag.data()) != 1) return ossl::Error("EVP_CTRL_GCM_SET_TAG");
  int fin = 0;
  if (EVP_DecryptFinal_ex(ctx.get(), out.data() + len, &fin) != 1) {
    ossl::DrainErrors();
    return absl::PermissionDeniedError("AES-GCM: ICV check failed");
  }
  return out;
}

absl::StatusOr<Bytes> CbcEncryptRaw(ByteView key, ByteView iv, ByteView pt) {
  const EVP_CIPHER* c = CbcCipher(key.size());
  if (!c || iv.size() != 16 || pt.size() % 16) return absl::InvalidArgumentError("CbcEncryptRaw: bad lengths");
  ossl::CipherCtx ctx(EVP_CIPHER_CTX_new());
  Bytes out(pt.size());
  int len = 0;
  if (!ctx || EVP_EncryptInit_ex2(ctx.get(), c, key.data(), iv.data(), nullptr) != 1 ||
      EVP_CIPHER_CTX_set_padding(ctx.get(), 0) != 1 || EVP_EncryptUpdate(ctx.get(), out.data(), &len, pt.data(), pt.size()) != 1)
    return ossl::Error("EVP_Encrypt(aes-cbc)");
  return out;
}

absl::StatusOr<Bytes> CbcDecryptRaw(ByteView key, ByteView iv, ByteView ct) {
  const EVP_CIPHER* c = CbcCipher(key.size());
  if (!c || iv.size() != 16 || ct.size() % 16) return absl::InvalidArgumentError("CbcDecryptRaw: bad lengths");
  ossl::CipherCtx ctx(EVP_CIPHER_CTX_new());
  Bytes out(ct.size());
  int len = 0;
  if (!ctx || EVP_DecryptInit_ex2(ctx.get(), c, key.data(), iv.data(), nullptr) != 1 ||
      EVP_CIPHER_CTX_set_padding(ctx.get(), 0) != 1 || EVP_DecryptUpdate(ctx.get(), out.data(), &len, ct.data(), ct.size()) != 1)
    return ossl::Error("EVP_Decrypt(aes-cbc)");
  return out;
}

absl::StatusOr<size_t> EncrKeyLen(uint16_t encr_id, uint16_t key_bits) {
  if (key_bits != 128 && key_bits != 192 && key_bits != 256)
    return absl::InvalidArgumentError(absl::StrCat("unsupported key length ", key_bits));
  if (encr_id == encr::kAesGcm16) return key_bits / 8 + 4;
  if (encr_id == encr::kAesCbc) return key_bits / 8;
  return absl::InvalidArgumentError(absl::StrCat("unsupported encryption transform ", encr_id));
}

absl::StatusOr<size_t> IntegKeyLen(uint16_t integ_id) {
  switch (integ_id) {
    case integ::kNone: return 0;
    case integ::kHmacSha256_128: return 32;
    case integ::kHmacSha384_192: return 48;
    case integ::kHmacSha512_256: return 64;
    default: return absl::InvalidArgumentError(absl::StrCat("unsupported integrity transform ", integ_id));
  }
}

absl::StatusOr<SkCipher> SkCipher::Create(uint16_t encr_id, uint16_t key_bits, uint16_t integ_id) {
  SkCipher c;
  IPFLEET_ASSIGN_OR_RETURN(size_t klen, EncrKeyLen(encr_id, key_bits));
  c.key_bytes_ = key_bits / 8;
  (void)klen;
  if (encr_id == encr::kAesGcm16) {
    if (integ_id != integ::kNone) return absl::InvalidArgumentError("AES-GCM with an integrity transform");
    c.aead_ = true;
    c.icv_len_ = 16;
    return c;
  }
  switch (integ_id) {
    case integ::kHmacSha256_128: c.integ_hash_ = HashAlg::kSha256; c.icv_len_ = 16; break;
    case integ::kHmacSha384_192: c.integ_hash_ = HashAlg::kSha384; c.icv_len_ = 24; break;
    case integ::kHmacSha512_256: c.integ_hash_ = HashAlg::kSha512; c.icv_len_ = 32; break;
    default: return absl::InvalidArgumentError(absl::StrCat("AES-CBC needs HMAC-SHA2 integrity, got ", integ_id));
  }
  return c;
}

size_t SkCipher::encr_key_len() const { return key_bytes_ + (aead_ ? 4 : 0); }
size_t SkCipher::integ_key_len() const { return aead_ ? 0 : HashLen(integ_hash_); }

absl::StatusOr<Bytes> SkCipher::Protect(Header h, PayloadType first_inner, ByteView inner, ByteView ekey,
                                        ByteView akey) const {
  if (ekey.size() != encr_key_len() || akey.size() != integ_key_len())
    return absl::InvalidArgumentError("SK protect: key length mismatch");
  size_t iv_len = aead_ ? 8 : 16;
  size_t block = aead_ ? 1 : 16;
  // Plaintext = inner | padding | pad length; RFC 7296 3.14 allows any padding, we use the minimum.
  size_t pad = (block - (inner.size() + 1) % block) % block;
  Bytes pt(inner.begin(), inner.end());
  pt.resize(inner.size() + pad, 0);
  pt.push_back(static_cast<uint8_t>(pad));
  size_t body_len = iv_len + pt.size() + icv_len_;
  h.next_payload = PayloadType::kSk;
  h.length = kHeaderSize + kGenericPayloadHeaderSize + body_len;
  Bytes out;
  out.reserve(h.length);
  AppendHeader(h, out);
  out.push_back(static_cast<uint8_t>(first_inner));
  out.push_back(0);
  out.push_back(static_cast<uint8_t>((kGenericPayloadHeaderSize + body_len) >> 8));
  out.push_back(static_cast<uint8_t>((kGenericPayloadHeaderSize + body_len) & 0xff));
  uint8_t iv[16];
  IPFLEET_RETURN_IF_ERROR(Random(iv, iv_len));
  if (aead_) {
    // RFC 5282: nonce = salt (last 4 key bytes) | 8-byte IV; AAD = IKE header through SK header.
    uint8_t nonce[12];
    std::copy(ekey.end() - 4, ekey.end(), nonce);
    std::copy(iv, iv + 8, nonce + 4);
    IPFLEET_ASSIGN_OR_RETURN(Bytes ct, GcmSeal(ekey.first(key_bytes_), ByteView(nonce, 12), out, pt));
    out.insert(out.end(), iv, iv + 8);
    out.insert(out.end(), ct.begin(), ct.end());
  } else {
    IPFLEET_ASSIGN_OR_RETURN(Bytes ct, CbcEncryptRaw(ekey, ByteView(iv, 16), pt));
    out.insert(out.end(), iv, iv + 16);
    out.insert(out.end(), ct.begin(), ct.end());
    // RFC 7296 3.14 / RFC 4868: ICV over the whole message up to the ICV, truncated.
    IPFLEET_ASSIGN_OR_RETURN(Bytes mac, Hmac(integ_hash_, akey, out));
    out.insert(out.end(), mac.begin(), mac.begin() + icv_len_);
  }
  Wipe(pt);
  return out;
}

absl::StatusOr<Bytes> SkCipher::Unprotect(ByteView dgram, size_t body_len, ByteView ekey, ByteView akey) const {
  if (ekey.size() != encr_key_len() || akey.size() != integ_key_len())
    return absl::InvalidArgumentError("SK unprotect: key length mismatch");
  if (body_len + kGenericPayloadHeaderSize + kHeaderSize > dgram.size())
    return absl::InvalidArgumentError("SK payload exceeds datagram");
  size_t body_off = dgram.size() - body_len;
  ByteView body = dgram.subspan(body_off);
  Bytes pt;
  if (aead_) {
    if (body_len < 8 + 1 + 16) return absl::InvalidArgumentError("SK payload too short for AES-GCM");
    uint8_t nonce[12];
    std::copy(ekey.end() - 4, ekey.end(), nonce);
    std::copy(body.begin(), body.begin() + 8, nonce + 4);
    IPFLEET_ASSIGN_OR_RETURN(pt, GcmOpen(ekey.first(key_bytes_), ByteView(nonce, 12), dgram.first(body_off), body.subspan(8)));
  } else {
    if (body_len < 16 + 16 + icv_len_ || (body_len - 16 - icv_len_) % 16 != 0)
      return absl::InvalidArgumentError("SK payload length invalid for AES-CBC");
    ByteView signed_part = dgram.first(dgram.size() - icv_len_);
    IPFLEET_ASSIGN_OR_RETURN(Bytes mac, Hmac(integ_hash_, akey, signed_part));
    if (CRYPTO_memcmp(mac.data(), dgram.data() + dgram.size() - icv_len_, icv_len_) != 0)
      return absl::PermissionDeniedError("SK integrity check failed");
    IPFLEET_ASSIGN_OR_RETURN(pt, CbcDecryptRaw(ekey, body.first(16), body.subspan(16, body_len - 16 - icv_len_)));
  }
  if (pt.empty()) return absl::InvalidArgumentError("SK plaintext empty");
  size_t pad = pt.back();
  if (pad + 1 > pt.size()) return absl::InvalidArgumentError("SK pad length exceeds plaintext");
  pt.resize(pt.size() - 1 - pad);
  return pt;
}

std::string Hex(ByteView b) {
  static const char* d = "0123456789abcdef";
  std::string s;
  s.reserve(b.size() * 2);
  for (uint8_t c : b) {
    s.push_back(d[c >> 4]);
    s.push_back(d[c & 15]);
  }
  return s;
}

Bytes Unhex(std::string_view hex) {
  Bytes out;
  int hi = -1;
  for (char c : hex) {
    int v;
    if (c >= '0' && c <= '9') v = c - '0';
    else if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') v = c - 'A' + 10;
    else if (c == ' ' || c == '\n' || c == ':') continue;
    else std::abort();
    if (hi < 0) {
      hi = v;
    } else {
      out.push_back(static_cast<uint8_t>(hi << 4 | v));
      hi = -1;
    }
  }
  if (hi >= 0) std::abort();
  return out;
}

}  // namespace ipfleet::ike
