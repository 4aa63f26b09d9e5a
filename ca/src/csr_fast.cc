#include "csr_fast.h"

#include <openssl/asn1.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <cstring>

#include "ipfleet/common/openssl.h"

namespace ipfleet::ca::internal {

namespace {

// DER of AlgorithmIdentifier { id-ecPublicKey, prime256v1 } and { ecdsa-with-SHA256 }.
constexpr unsigned char kP256Spki[] = {0x30, 0x13, 0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01,
                                       0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07};
constexpr unsigned char kEcdsaSha256[] = {0x30, 0x0A, 0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02};

struct Tlv {
  const unsigned char* start = nullptr;  // first byte of the tag
  size_t total = 0;                      // tag + length + content
  const unsigned char* content = nullptr;
  size_t len = 0;
  int tag = 0;
  int cls = 0;
  bool constructed = false;
};

// One definite-length TLV from [p, end); advances p past it.
bool Next(const unsigned char*& p, const unsigned char* end, Tlv* t) {
  if (p >= end) return false;
  const unsigned char* start = p;
  long len = 0;
  int tag = 0, cls = 0;
  int r = ASN1_get_object(&p, &len, &tag, &cls, static_cast<long>(end - p));
  if ((r & 0x80) != 0 || (r & 0x01) != 0 || len < 0 || len > end - p) return false;
  t->start = start;
  t->content = p;
  t->len = static_cast<size_t>(len);
  t->total = static_cast<size_t>(p + len - start);
  t->tag = tag;
  t->cls = cls;
  t->constructed = (r & V_ASN1_CONSTRUCTED) != 0;
  p += len;
  return true;
}

bool IsSeq(const Tlv& t) { return t.cls == V_ASN1_UNIVERSAL && t.tag == V_ASN1_SEQUENCE && t.constructed; }

// A primitive universal-class element with `tag`; a context-specific [3] must not pass as a BIT STRING
// (found by fuzz_ca_csr: OpenSSL refuses what a tag-number-only check accepted).
bool IsUniversalPrimitive(const Tlv& t, int tag) { return t.cls == V_ASN1_UNIVERSAL && t.tag == tag && !t.constructed; }

bool Equals(const Tlv& t, const unsigned char* want, size_t n) {
  return t.total == n && std::memcmp(t.start, want, n) == 0;
}

struct PemData {
  char* name = nullptr;
  char* header = nullptr;
  unsigned char* data = nullptr;
  long len = 0;
  ~PemData() {
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(data);
  }
};

std::optional<FastCsrKey> Parse(std::string_view pem) {
  ossl::Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return std::nullopt;
  PemData d;
  if (PEM_read_bio(bio.get(), &d.name, &d.header, &d.data, &d.len) != 1) return std::nullopt;
  if (std::strcmp(d.name, "CERTIFICATE REQUEST") != 0 && std::strcmp(d.name, "NEW CERTIFICATE REQUEST") != 0) {
    return std::nullopt;
  }
  if (d.header != nullptr && d.header[0] != '\0') return std::nullopt;  // encrypted / odd PEM

  const unsigned char* p = d.data;
  const unsigned char* end = d.data + d.len;
  Tlv outer, tbs, sigalg, sig;
  if (!Next(p, end, &outer) || !IsSeq(outer) || p != end) return std::nullopt;
  p = outer.content;
  end = outer.content + outer.len;
  if (!Next(p, end, &tbs) || !IsSeq(tbs)) return std::nullopt;
  if (!Next(p, end, &sigalg) || !Equals(sigalg, kEcdsaSha256, sizeof kEcdsaSha256)) return std::nullopt;
  if (!Next(p, end, &sig) || !IsUniversalPrimitive(sig, V_ASN1_BIT_STRING) || p != end) return std::nullopt;
  if (sig.len < 2 || sig.content[0] != 0) return std::nullopt;

  // CertificationRequestInfo ::= SEQUENCE { version 0, subject, subjectPKInfo, [0] attributes }
  p = tbs.content;
  end = tbs.content + tbs.len;
  Tlv version, subject, spki, attrs;
  if (!Next(p, end, &version) || !IsUniversalPrimitive(version, V_ASN1_INTEGER) || version.len != 1 || version.content[0] != 0) {
    return std::nullopt;
  }
  if (!Next(p, end, &subject) || !IsSeq(subject)) return std::nullopt;
  if (!Next(p, end, &spki) || !IsSeq(spki)) return std::nullopt;
  if (!Next(p, end, &attrs) || attrs.cls != V_ASN1_CONTEXT_SPECIFIC || attrs.tag != 0 || p != end) {
    return std::nullopt;
  }
  p = spki.content;
  end = spki.content + spki.len;
  Tlv alg, bits;
  if (!Next(p, end, &alg) || !Equals(alg, kP256Spki, sizeof kP256Spki)) return std::nullopt;
  if (!Next(p, end, &bits) || !IsUniversalPrimitive(bits, V_ASN1_BIT_STRING) || p != end) return std::nullopt;
  if (bits.len < 2 || bits.content[0] != 0) return std::nullopt;
  std::string point(reinterpret_cast<const char*>(bits.content + 1), bits.len - 1);
  if (!((point.size() == 65 && point[0] == 0x04) ||
        (point.size() == 33 && (point[0] == 0x02 || point[0] == 0x03)))) {
    return std::nullopt;
  }

  // The key: EVP_PKEY_fromdata checks the point is on the curve.
  ossl::PKeyCtx kctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  if (!kctx || EVP_PKEY_fromdata_init(kctx.get()) != 1) return std::nullopt;
  char group[] = "P-256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
      OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()),
      OSSL_PARAM_construct_end(),
  };
  EVP_PKEY* raw = nullptr;
  if (EVP_PKEY_fromdata(kctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params) != 1) return std::nullopt;
  ossl::PKey key(raw);

  ossl::MdCtx md(EVP_MD_CTX_new());
  if (!md || EVP_DigestVerifyInit(md.get(), nullptr, EVP_sha256(), nullptr, key.get()) != 1) return std::nullopt;
  if (EVP_DigestVerify(md.get(), sig.content + 1, sig.len - 1, tbs.start, tbs.total) != 1) return std::nullopt;
  return FastCsrKey{std::move(point)};
}

}  // namespace

std::optional<FastCsrKey> TryFastCsr(std::string_view pem) {
  std::optional<FastCsrKey> out = Parse(pem);
  // A declined fast path leaves nothing in OpenSSL's error queue for the generic path to trip on.
  ossl::DrainErrors();
  return out;
}

}  // namespace ipfleet::ca::internal
