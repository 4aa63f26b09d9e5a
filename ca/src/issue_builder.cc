#include "issue_builder.h"

#include <arpa/inet.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include <algorithm>

#include "ipfleet/ca/keys.h"
#include "x509_util.h"

namespace ipfleet::ca::internal {

namespace {

using BasicConstraintsPtr = std::unique_ptr<BASIC_CONSTRAINTS, ossl::Deleter<BASIC_CONSTRAINTS_free>>;
using BitStringPtr = std::unique_ptr<ASN1_BIT_STRING, ossl::Deleter<ASN1_BIT_STRING_free>>;
using OctetStringPtr = std::unique_ptr<ASN1_OCTET_STRING, ossl::Deleter<ASN1_OCTET_STRING_free>>;
using EkuPtr = std::unique_ptr<EXTENDED_KEY_USAGE, ossl::Deleter<EXTENDED_KEY_USAGE_free>>;
using AkidPtr = std::unique_ptr<AUTHORITY_KEYID, ossl::Deleter<AUTHORITY_KEYID_free>>;
using GeneralNamePtr = std::unique_ptr<GENERAL_NAME, ossl::Deleter<GENERAL_NAME_free>>;
using RevokedPtr = std::unique_ptr<X509_REVOKED, ossl::Deleter<X509_REVOKED_free>>;
using EnumeratedPtr = std::unique_ptr<ASN1_ENUMERATED, ossl::Deleter<ASN1_ENUMERATED_free>>;

// KeyUsage bit numbers (RFC 5280 4.2.1.3).
constexpr int kDigitalSignature = 0;
constexpr int kKeyEncipherment = 2;
constexpr int kKeyCertSign = 5;
constexpr int kCrlSign = 6;

absl::StatusOr<ossl::X509Ext> MakeExt(int nid, bool critical, void* value, std::string_view what) {
  X509_EXTENSION* ext = X509V3_EXT_i2d(nid, critical ? 1 : 0, value);
  if (ext == nullptr) return ossl::Error("X509V3_EXT_i2d(" + std::string(what) + ")");
  return ossl::X509Ext(ext);
}

absl::StatusOr<ossl::X509Ext> BasicConstraintsExt(bool is_ca) {
  BasicConstraintsPtr bc(BASIC_CONSTRAINTS_new());
  if (!bc) return ossl::Error("BASIC_CONSTRAINTS_new");
  bc->ca = is_ca ? 0xFF : 0;
  return MakeExt(NID_basic_constraints, true, bc.get(), "basicConstraints");
}

absl::StatusOr<ossl::X509Ext> KeyUsageExt(std::initializer_list<int> bits) {
  BitStringPtr ku(ASN1_BIT_STRING_new());
  if (!ku) return ossl::Error("ASN1_BIT_STRING_new");
  for (int bit : bits) {
    if (ASN1_BIT_STRING_set_bit(ku.get(), bit, 1) != 1) return ossl::Error("ASN1_BIT_STRING_set_bit");
  }
  return MakeExt(NID_key_usage, true, ku.get(), "keyUsage");
}

absl::StatusOr<ossl::X509Ext> EkuExt(std::initializer_list<std::string_view> oids) {
  EkuPtr eku(sk_ASN1_OBJECT_new_null());
  if (!eku) return ossl::Error("sk_ASN1_OBJECT_new_null");
  for (std::string_view oid : oids) {
    IPFLEET_ASSIGN_OR_RETURN(ASN1_OBJECT * obj, OidObject(oid));
    if (sk_ASN1_OBJECT_push(eku.get(), obj) == 0) {
      ASN1_OBJECT_free(obj);
      return ossl::Error("sk_ASN1_OBJECT_push");
    }
  }
  return MakeExt(NID_ext_key_usage, false, eku.get(), "extendedKeyUsage");
}

absl::StatusOr<ossl::X509Ext> SkiExt(X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  // RFC 5280 4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING.
  if (X509_pubkey_digest(cert, EVP_sha1(), md, &len) != 1) return ossl::Error("X509_pubkey_digest");
  OctetStringPtr ski(ASN1_OCTET_STRING_new());
  if (!ski || ASN1_OCTET_STRING_set(ski.get(), md, static_cast<int>(len)) != 1) {
    return ossl::Error("ASN1_OCTET_STRING_set");
  }
  return MakeExt(NID_subject_key_identifier, false, ski.get(), "subjectKeyIdentifier");
}

absl::StatusOr<ossl::X509Ext> AkiFromKeyId(const ASN1_OCTET_STRING* ski) {
  AkidPtr akid(AUTHORITY_KEYID_new());
  if (!akid) return ossl::Error("AUTHORITY_KEYID_new");
  akid->keyid = ASN1_OCTET_STRING_dup(ski);
  if (akid->keyid == nullptr) return ossl::Error("ASN1_OCTET_STRING_dup");
  return MakeExt(NID_authority_key_identifier, false, akid.get(), "authorityKeyIdentifier");
}

absl::StatusOr<ossl::X509Ext> AkiExt(X509* issuer) {
  const ASN1_OCTET_STRING* ski = X509_get0_subject_key_id(issuer);
  if (ski == nullptr) return absl::FailedPreconditionError("CA certificate has no subjectKeyIdentifier");
  return AkiFromKeyId(ski);
}

absl::StatusOr<ossl::X509Ext> SanExt(const IssueRequest& request) {
  ossl::GeneralNames names(sk_GENERAL_NAME_new_null());
  if (!names) return ossl::Error("sk_GENERAL_NAME_new_null");
  for (const std::string& ip : request.ips) {
    ASN1_OCTET_STRING* addr = a2i_IPADDRESS(ip.c_str());
    if (addr == nullptr) return ossl::Error("a2i_IPADDRESS(" + ip + ")", absl::StatusCode::kInvalidArgument);
    GeneralNamePtr gn(GENERAL_NAME_new());
    if (!gn) {
      ASN1_OCTET_STRING_free(addr);
      return ossl::Error("GENERAL_NAME_new");
    }
    GENERAL_NAME_set0_value(gn.get(), GEN_IPADD, addr);
    if (sk_GENERAL_NAME_push(names.get(), gn.get()) == 0) return ossl::Error("sk_GENERAL_NAME_push");
    gn.release();
  }
  for (const std::string& dns : request.dns) {
    ASN1_IA5STRING* s = ASN1_IA5STRING_new();
    if (s == nullptr || ASN1_STRING_set(s, dns.data(), static_cast<int>(dns.size())) != 1) {
      ASN1_IA5STRING_free(s);
      return ossl::Error("ASN1_STRING_set(dNSName)");
    }
    GeneralNamePtr gn(GENERAL_NAME_new());
    if (!gn) {
      ASN1_IA5STRING_free(s);
      return ossl::Error("GENERAL_NAME_new");
    }
    GENERAL_NAME_set0_value(gn.get(), GEN_DNS, s);
    if (sk_GENERAL_NAME_push(names.get(), gn.get()) == 0) return ossl::Error("sk_GENERAL_NAME_push");
    gn.release();
  }
  return MakeExt(NID_subject_alt_name, false, names.get(), "subjectAltName");
}

absl::Status AddExt(X509* cert, X509_EXTENSION* ext) {
  // X509_add_ext copies the extension, so cached template extensions stay owned by the template.
  if (X509_add_ext(cert, ext, -1) != 1) return ossl::Error("X509_add_ext");
  return absl::OkStatus();
}

absl::StatusOr<ossl::X509Name> NameWithCn(const std::string& cn) {
  ossl::X509Name name(X509_NAME_new());
  if (!name) return ossl::Error("X509_NAME_new");
  if (X509_NAME_add_entry_by_NID(name.get(), NID_commonName, MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0) != 1) {
    return ossl::Error("X509_NAME_add_entry_by_NID(CN)", absl::StatusCode::kInvalidArgument);
  }
  return name;
}

absl::Status SetValidity(X509* cert, TimePoint not_before, TimePoint not_after) {
  if (ASN1_TIME_set(X509_getm_notBefore(cert), static_cast<time_t>(ToUnix(not_before))) == nullptr) {
    return ossl::Error("ASN1_TIME_set(notBefore)");
  }
  if (ASN1_TIME_set(X509_getm_notAfter(cert), static_cast<time_t>(ToUnix(not_after))) == nullptr) {
    return ossl::Error("ASN1_TIME_set(notAfter)");
  }
  return absl::OkStatus();
}

constexpr auto kBackdate = std::chrono::minutes(5);

TimePoint NowSeconds() {
  return std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now());
}

}  // namespace

absl::StatusOr<ossl::Asn1Integer> RandomSerial() {
  unsigned char buf[16];
  do {
    if (RAND_bytes(buf, sizeof buf) != 1) return ossl::Error("RAND_bytes");
  } while (std::all_of(std::begin(buf), std::end(buf), [](unsigned char c) { return c == 0; }));
  ossl::BigNum bn(BN_bin2bn(buf, sizeof buf, nullptr));  // unsigned: always positive
  if (!bn) return ossl::Error("BN_bin2bn");
  ossl::Asn1Integer serial(BN_to_ASN1_INTEGER(bn.get(), nullptr));
  if (!serial) return ossl::Error("BN_to_ASN1_INTEGER");
  return serial;
}

absl::Status SignCert(X509* cert, EVP_PKEY* key) {
  ossl::MdCtx ctx(EVP_MD_CTX_new());
  if (!ctx) return ossl::Error("EVP_MD_CTX_new");
  if (EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) != 1) {
    return ossl::Error("EVP_DigestSignInit");
  }
  if (X509_sign_ctx(cert, ctx.get()) <= 0) return ossl::Error("X509_sign_ctx");
  return absl::OkStatus();
}

absl::Status BuildIssuerTemplate(X509* ca_cert, EVP_PKEY* ca_key, IssuerTemplate* out) {
  out->ca_cert = ca_cert;
  out->ca_key = ca_key;
  IPFLEET_ASSIGN_OR_RETURN(out->aki, AkiExt(ca_cert));
  for (Profile p : {Profile::kHost, Profile::kExternal, Profile::kController, Profile::kPolicySigner}) {
    ProfileExtensions& pe = out->profiles[static_cast<size_t>(p)];
    IPFLEET_ASSIGN_OR_RETURN(pe.basic_constraints, BasicConstraintsExt(false));
    IPFLEET_ASSIGN_OR_RETURN(pe.key_usage_ec, KeyUsageExt({kDigitalSignature}));
    // keyEncipherment only matters for RSA key transport in old TLS; the policy signer never needs it.
    if (p == Profile::kPolicySigner) {
      IPFLEET_ASSIGN_OR_RETURN(pe.key_usage_rsa, KeyUsageExt({kDigitalSignature}));
    } else {
      IPFLEET_ASSIGN_OR_RETURN(pe.key_usage_rsa, KeyUsageExt({kDigitalSignature, kKeyEncipherment}));
    }
    absl::StatusOr<ossl::X509Ext> eku;
    switch (p) {
      case Profile::kHost: eku = EkuExt({kOidIpsecIke, kOidClientAuth}); break;
      case Profile::kExternal:
        eku = EkuExt({kOidIpsecIke, kOidServerAuth, kOidClientAuth, kOidIkeIntermediate});
        break;
      case Profile::kController: eku = EkuExt({kOidServerAuth, kOidClientAuth}); break;
      case Profile::kPolicySigner: eku = EkuExt({kOidPolicySigning}); break;
    }
    if (!eku.ok()) return eku.status();
    pe.eku = std::move(eku).value();
  }
  return absl::OkStatus();
}

absl::Status ValidateRequest(const IssueRequest& request) {
  if (request.common_name.empty()) return absl::InvalidArgumentError("common name is empty");
  if (request.common_name.size() > 64) {
    return absl::InvalidArgumentError("common name longer than 64 characters (RFC 5280 ub-common-name)");
  }
  if (request.days < 1 || request.days > 3650) {
    return absl::InvalidArgumentError("validity of " + std::to_string(request.days) +
                                      " days is outside 1..3650");
  }
  for (const std::string& ip : request.ips) {
    unsigned char buf[16];
    if (inet_pton(AF_INET, ip.c_str(), buf) != 1 && inet_pton(AF_INET6, ip.c_str(), buf) != 1) {
      return absl::InvalidArgumentError("\"" + ip + "\" is not an IPv4 or IPv6 address");
    }
  }
  for (const std::string& dns : request.dns) {
    if (!IsValidDnsName(dns)) return absl::InvalidArgumentError("\"" + dns + "\" is not a valid DNS name");
  }
  return absl::OkStatus();
}

absl::Status SetLeafKey(X509* cert, const LeafKey& key) {
  if (key.pkey != nullptr) {
    IPFLEET_RETURN_IF_ERROR(CheckAcceptableKey(key.pkey));
    if (X509_set_pubkey(cert, key.pkey) != 1) return ossl::Error("X509_set_pubkey");
    return absl::OkStatus();
  }
  if (key.p256_point.empty()) return absl::InternalError("no subject key");
  auto* enc = static_cast<unsigned char*>(OPENSSL_memdup(key.p256_point.data(), key.p256_point.size()));
  if (enc == nullptr) return ossl::Error("OPENSSL_memdup");
  // OBJ_nid2obj returns static objects; X509_ALGOR_set0's eventual free of them is a no-op.
  if (X509_PUBKEY_set0_param(X509_get_X509_PUBKEY(cert), OBJ_nid2obj(NID_X9_62_id_ecPublicKey), V_ASN1_OBJECT,
                             OBJ_nid2obj(NID_X9_62_prime256v1), enc, static_cast<int>(key.p256_point.size())) != 1) {
    OPENSSL_free(enc);
    return ossl::Error("X509_PUBKEY_set0_param");
  }
  return absl::OkStatus();
}

absl::StatusOr<IssuedCert> SignLeaf(const IssuerTemplate& tmpl, const LeafKey& key,
                                    const IssueRequest& request) {
  IPFLEET_RETURN_IF_ERROR(ValidateRequest(request));
  ossl::X509Ptr cert(X509_new());
  if (!cert) return ossl::Error("X509_new");
  if (X509_set_version(cert.get(), X509_VERSION_3) != 1) return ossl::Error("X509_set_version");
  IPFLEET_ASSIGN_OR_RETURN(ossl::Asn1Integer serial, RandomSerial());
  if (X509_set_serialNumber(cert.get(), serial.get()) != 1) return ossl::Error("X509_set_serialNumber");
  IPFLEET_ASSIGN_OR_RETURN(ossl::X509Name subject, NameWithCn(request.common_name));
  if (X509_set_subject_name(cert.get(), subject.get()) != 1) return ossl::Error("X509_set_subject_name");
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(tmpl.ca_cert)) != 1) {
    return ossl::Error("X509_set_issuer_name");
  }
  TimePoint now = NowSeconds();
  IssuedCert out;
  out.not_before = now - kBackdate;
  out.not_after = now + std::chrono::hours(24) * request.days;
  // Never outlive the CA: a leaf valid past its issuer fails verification at the end anyway.
  IPFLEET_ASSIGN_OR_RETURN(TimePoint ca_not_after, FromAsn1Time(X509_get0_notAfter(tmpl.ca_cert)));
  out.not_after = std::min(out.not_after, ca_not_after);
  IPFLEET_RETURN_IF_ERROR(SetValidity(cert.get(), out.not_before, out.not_after));
  IPFLEET_RETURN_IF_ERROR(SetLeafKey(cert.get(), key));

  const ProfileExtensions& pe = tmpl.profiles[static_cast<size_t>(request.profile)];
  IPFLEET_RETURN_IF_ERROR(AddExt(cert.get(), pe.basic_constraints.get()));
  IPFLEET_RETURN_IF_ERROR(AddExt(cert.get(), (key.pkey != nullptr && EVP_PKEY_is_a(key.pkey, "RSA")) ? pe.key_usage_rsa.get()
                                                                              : pe.key_usage_ec.get()));
  IPFLEET_RETURN_IF_ERROR(AddExt(cert.get(), pe.eku.get()));
  IPFLEET_ASSIGN_OR_RETURN(ossl::X509Ext ski, SkiExt(cert.get()));
  IPFLEET_RETURN_IF_ERROR(AddExt(cert.get(), ski.get()));
  IPFLEET_RETURN_IF_ERROR(AddExt(cert.get(), tmpl.aki.get()));
  if (!request.ips.empty() || !request.dns.empty()) {
    IPFLEET_ASSIGN_OR_RETURN(ossl::X509Ext san, SanExt(request));
    IPFLEET_RETURN_IF_ERROR(AddExt(cert.get(), san.get()));
  }
  IPFLEET_RETURN_IF_ERROR(SignCert(cert.get(), tmpl.ca_key));

  ossl::Bio bio(BIO_new(BIO_s_mem()));
  if (!bio) return ossl::Error("BIO_new");
  if (PEM_write_bio_X509(bio.get(), cert.get()) != 1) return ossl::Error("PEM_write_bio_X509");
  out.pem = ossl::BioToString(bio.get());
  IPFLEET_ASSIGN_OR_RETURN(out.serial_hex, SerialHex(serial.get()));
  out.common_name = request.common_name;
  out.profile = request.profile;
  return out;
}

absl::StatusOr<ossl::X509Ptr> MakeRoot(EVP_PKEY* key, const std::string& name, int days) {
  if (name.empty() || name.size() > 64) return absl::InvalidArgumentError("CA name must be 1..64 characters");
  if (days < 1 || days > 36500) return absl::InvalidArgumentError("CA validity must be 1..36500 days");
  ossl::X509Ptr cert(X509_new());
  if (!cert) return ossl::Error("X509_new");
  if (X509_set_version(cert.get(), X509_VERSION_3) != 1) return ossl::Error("X509_set_version");
  IPFLEET_ASSIGN_OR_RETURN(ossl::Asn1Integer serial, RandomSerial());
  if (X509_set_serialNumber(cert.get(), serial.get()) != 1) return ossl::Error("X509_set_serialNumber");
  IPFLEET_ASSIGN_OR_RETURN(ossl::X509Name subject, NameWithCn(name));
  if (X509_set_subject_name(cert.get(), subject.get()) != 1 ||
      X509_set_issuer_name(cert.get(), subject.get()) != 1) {
    return ossl::Error("X509_set_subject_name");
  }
  TimePoint now = NowSeconds();
  IPFLEET_RETURN_IF_ERROR(SetValidity(cert.get(), now - kBackdate, now + std::chrono::hours(24) * days));
  if (X509_set_pubkey(cert.get(), key) != 1) return ossl::Error("X509_set_pubkey");
  IPFLEET_ASSIGN_OR_RETURN(ossl::X509Ext bc, BasicConstraintsExt(true));
  IPFLEET_RETURN_IF_ERROR(AddExt(cert.get(), bc.get()));
  IPFLEET_ASSIGN_OR_RETURN(ossl::X509Ext ku, KeyUsageExt({kKeyCertSign, kCrlSign}));
  IPFLEET_RETURN_IF_ERROR(AddExt(cert.get(), ku.get()));
  IPFLEET_ASSIGN_OR_RETURN(ossl::X509Ext ski, SkiExt(cert.get()));
  IPFLEET_RETURN_IF_ERROR(AddExt(cert.get(), ski.get()));
  // Self-signed: the AKI names our own SKI (decoded from the extension just built, not from the
  // certificate's lazily cached extension data).
  OctetStringPtr keyid(static_cast<ASN1_OCTET_STRING*>(X509V3_EXT_d2i(ski.get())));
  if (!keyid) return ossl::Error("X509V3_EXT_d2i(subjectKeyIdentifier)");
  IPFLEET_ASSIGN_OR_RETURN(ossl::X509Ext aki, AkiFromKeyId(keyid.get()));
  IPFLEET_RETURN_IF_ERROR(AddExt(cert.get(), aki.get()));
  IPFLEET_RETURN_IF_ERROR(SignCert(cert.get(), key));
  return cert;
}

absl::StatusOr<std::string> MakeCrl(X509* ca_cert, EVP_PKEY* ca_key, const CaState& state,
                                    uint64_t crl_number, TimePoint this_update,
                                    TimePoint next_update) {
  ossl::X509Crl crl(X509_CRL_new());
  if (!crl) return ossl::Error("X509_CRL_new");
  if (X509_CRL_set_version(crl.get(), X509_CRL_VERSION_2) != 1) return ossl::Error("X509_CRL_set_version");
  if (X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(ca_cert)) != 1) {
    return ossl::Error("X509_CRL_set_issuer_name");
  }
  ossl::Asn1Time last(ASN1_TIME_set(nullptr, static_cast<time_t>(ToUnix(this_update))));
  ossl::Asn1Time next(ASN1_TIME_set(nullptr, static_cast<time_t>(ToUnix(next_update))));
  if (!last || !next) return ossl::Error("ASN1_TIME_set");
  if (X509_CRL_set1_lastUpdate(crl.get(), last.get()) != 1) return ossl::Error("X509_CRL_set1_lastUpdate");
  if (X509_CRL_set1_nextUpdate(crl.get(), next.get()) != 1) return ossl::Error("X509_CRL_set1_nextUpdate");

  for (const RevokedEntry& e : state.revoked) {
    RevokedPtr rev(X509_REVOKED_new());
    if (!rev) return ossl::Error("X509_REVOKED_new");
    BIGNUM* raw_bn = nullptr;
    if (BN_hex2bn(&raw_bn, e.serial_hex.c_str()) == 0) return ossl::Error("BN_hex2bn");
    ossl::BigNum bn(raw_bn);
    ossl::Asn1Integer serial(BN_to_ASN1_INTEGER(bn.get(), nullptr));
    if (!serial) return ossl::Error("BN_to_ASN1_INTEGER");
    if (X509_REVOKED_set_serialNumber(rev.get(), serial.get()) != 1) {
      return ossl::Error("X509_REVOKED_set_serialNumber");
    }
    ossl::Asn1Time when(ASN1_TIME_set(nullptr, static_cast<time_t>(ToUnix(e.revoked_at))));
    if (!when || X509_REVOKED_set_revocationDate(rev.get(), when.get()) != 1) {
      return ossl::Error("X509_REVOKED_set_revocationDate");
    }
    // RFC 5280 5.3.1: reasonCode "unspecified" SHOULD be absent.
    if (e.reason != RevocationReason::kUnspecified) {
      EnumeratedPtr reason(ASN1_ENUMERATED_new());
      if (!reason || ASN1_ENUMERATED_set(reason.get(), static_cast<long>(e.reason)) != 1) {
        return ossl::Error("ASN1_ENUMERATED_set");
      }
      if (X509_REVOKED_add1_ext_i2d(rev.get(), NID_crl_reason, reason.get(), 0, 0) != 1) {
        return ossl::Error("X509_REVOKED_add1_ext_i2d(reasonCode)");
      }
    }
    if (X509_CRL_add0_revoked(crl.get(), rev.get()) != 1) return ossl::Error("X509_CRL_add0_revoked");
    rev.release();
  }
  if (X509_CRL_sort(crl.get()) != 1) return ossl::Error("X509_CRL_sort");

  IPFLEET_ASSIGN_OR_RETURN(ossl::X509Ext aki, AkiExt(ca_cert));
  if (X509_CRL_add_ext(crl.get(), aki.get(), -1) != 1) return ossl::Error("X509_CRL_add_ext(AKI)");
  ossl::BigNum num_bn(BN_new());
  if (!num_bn || BN_set_word(num_bn.get(), crl_number) != 1) return ossl::Error("BN_set_word");
  ossl::Asn1Integer number(BN_to_ASN1_INTEGER(num_bn.get(), nullptr));
  if (!number) return ossl::Error("BN_to_ASN1_INTEGER");
  if (X509_CRL_add1_ext_i2d(crl.get(), NID_crl_number, number.get(), 0, 0) != 1) {
    return ossl::Error("X509_CRL_add1_ext_i2d(cRLNumber)");
  }

  ossl::MdCtx ctx(EVP_MD_CTX_new());
  if (!ctx) return ossl::Error("EVP_MD_CTX_new");
  if (EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, ca_key) != 1) {
    return ossl::Error("EVP_DigestSignInit");
  }
  if (X509_CRL_sign_ctx(crl.get(), ctx.get()) <= 0) return ossl::Error("X509_CRL_sign_ctx");
  ossl::Bio bio(BIO_new(BIO_s_mem()));
  if (!bio) return ossl::Error("BIO_new");
  if (PEM_write_bio_X509_CRL(bio.get(), crl.get()) != 1) return ossl::Error("PEM_write_bio_X509_CRL");
  return ossl::BioToString(bio.get());
}

Profile ProfileFromEkus(const std::vector<std::string>& ekus) {
  auto has = [&](std::string_view oid) { return std::find(ekus.begin(), ekus.end(), oid) != ekus.end(); };
  if (has(kOidPolicySigning)) return Profile::kPolicySigner;
  if (has(kOidIkeIntermediate)) return Profile::kExternal;
  if (has(kOidIpsecIke)) return Profile::kHost;
  return Profile::kController;
}

}  // namespace ipfleet::ca::internal
