// AUTH payload computation and certificate checks on OpenSSL 3.
#include "ipfleet/ike/auth.h"

#include <absl/strings/match.h>
#include <absl/strings/str_cat.h>
#include <openssl/core_names.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <algorithm>

namespace ipfleet::ike {
namespace {

using Algor = std::unique_ptr<X509_ALGOR, ossl::Deleter<X509_ALGOR_free>>;
using PssParams = std::unique_ptr<RSA_PSS_PARAMS, ossl::Deleter<RSA_PSS_PARAMS_free>>;

absl::StatusOr<std::vector<ossl::X509Ptr>> ReadCerts(const std::string& pem) {
  ossl::Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  std::vector<ossl::X509Ptr> out;
  while (X509* c = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) out.emplace_back(c);
  ossl::DrainErrors();  // the loop ends with a "no start line" error
  if (out.empty()) return absl::InvalidArgumentError("PEM_read_bio_X509: no certificate in PEM input");
  return out;
}

Bytes Der(X509* c) {
  unsigned char* p = nullptr;
  int n = i2d_X509(c, &p);
  Bytes b;
  if (n > 0) b.assign(p, p + n);
  OPENSSL_free(p);
  return b;
}

const EVP_MD* MdFor(uint16_t h) {
  switch (h) {
    case sighash::kSha256: return EVP_sha256();
    case sighash::kSha384: return EVP_sha384();
    case sighash::kSha512: return EVP_sha512();
  }
  return nullptr;
}

}  // namespace

absl::StatusOr<std::shared_ptr<Credentials>> Credentials::Load(const PeerConfig& peer) {
  auto c = std::make_shared<Credentials>();
  c->psk = peer.psk;
  if (peer.auth == AuthKind::kPsk) {
    if (peer.psk.empty()) return absl::InvalidArgumentError(absl::StrCat("tunnel ", peer.name, ": psk auth without a psk"));
    return c;
  }
  IPFLEET_ASSIGN_OR_RETURN(auto certs, ReadCerts(peer.cert_pem));
  for (auto& x : certs) c->cert_chain.push_back(Der(x.get()));
  c->cert = std::move(certs.front());
  ossl::Bio kb(BIO_new_mem_buf(peer.key_pem.data(), static_cast<int>(peer.key_pem.size())));
  c->key.reset(PEM_read_bio_PrivateKey(kb.get(), nullptr, nullptr, nullptr));
  if (!c->key) return ossl::Error(absl::StrCat("PEM_read_bio_PrivateKey(tunnel ", peer.name, ")"), absl::StatusCode::kInvalidArgument);
  if (X509_check_private_key(c->cert.get(), c->key.get()) != 1)
    return ossl::Error(absl::StrCat("X509_check_private_key(tunnel ", peer.name, "): key does not match certificate"),
                       absl::StatusCode::kInvalidArgument);
  c->store.reset(X509_STORE_new());
  if (!c->store) return ossl::Error("X509_STORE_new");
  if (peer.ca_pems.empty()) return absl::InvalidArgumentError(absl::StrCat("tunnel ", peer.name, ": pubkey auth without a CA"));
  for (const auto& pem : peer.ca_pems) {
    IPFLEET_ASSIGN_OR_RETURN(auto cas, ReadCerts(pem));
    for (auto& ca : cas) {
      if (X509_STORE_add_cert(c->store.get(), ca.get()) != 1) return ossl::Error("X509_STORE_add_cert");
      unsigned char md[20];
      unsigned int len = 0;
      if (X509_pubkey_digest(ca.get(), EVP_sha1(), md, &len) != 1) return ossl::Error("X509_pubkey_digest");
      c->certreq.insert(c->certreq.end(), md, md + len);
    }
  }
  for (const auto& pem : peer.crl_pems) {
    ossl::Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    int n = 0;
    while (X509_CRL* crl = PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr)) {
      ossl::X509Crl owned(crl);
      if (X509_STORE_add_crl(c->store.get(), crl) != 1) return ossl::Error("X509_STORE_add_crl");
      ++n;
    }
    ossl::DrainErrors();
    if (n == 0) return absl::InvalidArgumentError(absl::StrCat("tunnel ", peer.name, ": CRL PEM holds no CRL"));
    c->crl_check = true;
  }
  if (c->crl_check) X509_STORE_set_flags(c->store.get(), X509_V_FLAG_CRL_CHECK);
  return c;
}

absl::StatusOr<std::shared_ptr<Credentials>> CredentialsCache::Get(const PeerConfig& peer) {
  // Every input Load reads, length-prefixed so that no two different sets hash the same stream.
  ossl::MdCtx md(EVP_MD_CTX_new());
  bool ok = md && EVP_DigestInit_ex(md.get(), EVP_sha256(), nullptr) == 1;
  auto feed = [&](std::string_view v) {
    uint64_t n = v.size();
    ok = ok && EVP_DigestUpdate(md.get(), &n, sizeof n) == 1 && EVP_DigestUpdate(md.get(), v.data(), v.size()) == 1;
  };
  feed(peer.auth == AuthKind::kPsk ? "psk" : "pubkey");
  feed(peer.psk);
  feed(peer.cert_pem);
  feed(peer.key_pem);
  for (const auto& v : {peer.ca_pems, peer.crl_pems}) {
    feed(std::to_string(v.size()));
    for (const auto& pem : v) feed(pem);
  }
  std::string key(EVP_MAX_MD_SIZE, '\0');
  unsigned int len = 0;
  if (!ok || EVP_DigestFinal_ex(md.get(), reinterpret_cast<unsigned char*>(key.data()), &len) != 1)
    return ossl::Error("EVP_Digest(sha256)");
  key.resize(len);
  if (auto it = by_inputs_.find(key); it != by_inputs_.end()) return it->second;
  IPFLEET_ASSIGN_OR_RETURN(auto creds, Credentials::Load(peer));
  by_inputs_.emplace(std::move(key), creds);
  return creds;
}

void CredentialsCache::Prune() {
  std::erase_if(by_inputs_, [](const auto& kv) { return kv.second.use_count() == 1; });
}

absl::StatusOr<Bytes> AuthOctets(const Prf& prf, ByteView sk_p, ByteView msg, ByteView nonce, ByteView id_body) {
  IPFLEET_ASSIGN_OR_RETURN(Bytes maced, prf.Compute(sk_p, id_body));
  Bytes out(msg.begin(), msg.end());
  out.insert(out.end(), nonce.begin(), nonce.end());
  out.insert(out.end(), maced.begin(), maced.end());
  return out;
}

absl::StatusOr<Bytes> PskAuth(const Prf& prf, std::string_view secret, ByteView octets) {
  static const std::string kPad = "Key Pad for IKEv2";
  IPFLEET_ASSIGN_OR_RETURN(Bytes k, prf.Compute(ByteView(reinterpret_cast<const uint8_t*>(secret.data()), secret.size()),
                                                 ByteView(reinterpret_cast<const uint8_t*>(kPad.data()), kPad.size())));
  auto r = prf.Compute(k, octets);
  Wipe(k);
  return r;
}

absl::StatusOr<Bytes> SignAuth(EVP_PKEY* key, ByteView octets, const std::vector<uint16_t>& peer_hashes) {
  bool rsa = EVP_PKEY_is_a(key, "RSA");
  bool ec = EVP_PKEY_is_a(key, "EC");
  if (!rsa && !ec) return absl::InvalidArgumentError("private key is neither RSA nor EC");
  uint16_t want = sighash::kSha256;
  if (ec && EVP_PKEY_get_bits(key) > 256) want = EVP_PKEY_get_bits(key) > 384 ? sighash::kSha512 : sighash::kSha384;
  if (std::find(peer_hashes.begin(), peer_hashes.end(), want) == peer_hashes.end()) {
    // Fall back to any SHA-2 hash the peer supports.
    want = 0;
    for (uint16_t h : {sighash::kSha256, sighash::kSha384, sighash::kSha512})
      if (std::find(peer_hashes.begin(), peer_hashes.end(), h) != peer_hashes.end()) { want = h; break; }
    if (!want) return absl::FailedPreconditionError("peer announced no SHA-2 hash in SIGNATURE_HASH_ALGORITHMS");
  }
  ossl::MdCtx md(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  if (!md || EVP_DigestSignInit(md.get(), &pctx, MdFor(want), nullptr, key) != 1) return ossl::Error("EVP_DigestSignInit");
  if (rsa) {
    if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, MdFor(want)) != 1)
      return ossl::Error("EVP_PKEY_CTX_set_rsa_padding(PSS)");
  }
  // The AlgorithmIdentifier exactly as the provider describes this signature (RFC 7427 section 3).
  uint8_t aid[128];
  OSSL_PARAM p[] = {OSSL_PARAM_construct_octet_string(OSSL_SIGNATURE_PARAM_ALGORITHM_ID, aid, sizeof aid),
                    OSSL_PARAM_construct_end()};
  if (EVP_PKEY_CTX_get_params(pctx, p) != 1 || !OSSL_PARAM_modified(&p[0]) || p[0].return_size == 0 ||
      p[0].return_size > 255)
    return ossl::Error("EVP_PKEY_CTX_get_params(algorithm-id)");
  size_t aid_len = p[0].return_size;
  size_t sig_len = 0;
  if (EVP_DigestSign(md.get(), nullptr, &sig_len, octets.data(), octets.size()) != 1) return ossl::Error("EVP_DigestSign(size)");
  Bytes out;
  out.push_back(static_cast<uint8_t>(aid_len));
  out.insert(out.end(), aid, aid + aid_len);
  size_t off = out.size();
  out.resize(off + sig_len);
  if (EVP_DigestSign(md.get(), out.data() + off, &sig_len, octets.data(), octets.size()) != 1)
    return ossl::Error("EVP_DigestSign");
  out.resize(off + sig_len);
  return out;
}

absl::Status VerifyAuth(EVP_PKEY* peer_key, ByteView data, ByteView octets) {
  if (data.empty() || data[0] == 0 || data[0] + 1u >= data.size())
    return absl::UnauthenticatedError("AUTH: malformed RFC 7427 signature data");
  size_t aid_len = data[0];
  const unsigned char* p = data.data() + 1;
  Algor alg(d2i_X509_ALGOR(nullptr, &p, aid_len));
  if (!alg || p != data.data() + 1 + aid_len) return absl::UnauthenticatedError("AUTH: bad AlgorithmIdentifier");
  ByteView sig = data.subspan(1 + aid_len);
  const ASN1_OBJECT* oid = nullptr;
  int ptype = 0;
  const void* pval = nullptr;
  X509_ALGOR_get0(&oid, &ptype, &pval, alg.get());
  int nid = OBJ_obj2nid(oid);
  const EVP_MD* md = nullptr;
  bool pss = false, ecdsa = false;
  int salt = -1;
  switch (nid) {
    case NID_ecdsa_with_SHA256: md = EVP_sha256(); ecdsa = true; break;
    case NID_ecdsa_with_SHA384: md = EVP_sha384(); ecdsa = true; break;
    case NID_ecdsa_with_SHA512: md = EVP_sha512(); ecdsa = true; break;
    case NID_sha256WithRSAEncryption: md = EVP_sha256(); break;
    case NID_sha384WithRSAEncryption: md = EVP_sha384(); break;
    case NID_sha512WithRSAEncryption: md = EVP_sha512(); break;
    case NID_rsassaPss: {
      if (ptype != V_ASN1_SEQUENCE) return absl::UnauthenticatedError("AUTH: RSASSA-PSS without parameters");
      PssParams params(static_cast<RSA_PSS_PARAMS*>(
          ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(RSA_PSS_PARAMS), static_cast<const ASN1_TYPE*>(
                                        static_cast<const void*>(alg->parameter)))));
      if (!params || !params->hashAlgorithm) return absl::UnauthenticatedError("AUTH: RSASSA-PSS parameters unusable");
      int hnid = OBJ_obj2nid(params->hashAlgorithm->algorithm);
      md = hnid == NID_sha256 ? EVP_sha256() : hnid == NID_sha384 ? EVP_sha384() : hnid == NID_sha512 ? EVP_sha512() : nullptr;
      if (!md) return absl::UnauthenticatedError("AUTH: RSASSA-PSS hash not SHA-2");
      salt = params->saltLength ? static_cast<int>(ASN1_INTEGER_get(params->saltLength)) : 20;
      pss = true;
      break;
    }
    default:
      return absl::UnauthenticatedError(absl::StrCat("AUTH: unsupported signature algorithm ", OBJ_nid2sn(nid)));
  }
  if (ecdsa && !EVP_PKEY_is_a(peer_key, "EC")) return absl::UnauthenticatedError("AUTH: ECDSA signature but peer key is not EC");
  if (!ecdsa && !EVP_PKEY_is_a(peer_key, "RSA")) return absl::UnauthenticatedError("AUTH: RSA signature but peer key is not RSA");
  ossl::MdCtx ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), &pctx, md, nullptr, peer_key) != 1) return ossl::Error("EVP_DigestVerifyInit");
  if (pss && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
              EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, salt) != 1 || EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) != 1))
    return ossl::Error("EVP_PKEY_CTX_set_rsa_padding(PSS)");
  if (EVP_DigestVerify(ctx.get(), sig.data(), sig.size(), octets.data(), octets.size()) != 1) {
    ossl::DrainErrors();
    return absl::UnauthenticatedError("AUTH: signature does not verify");
  }
  return absl::OkStatus();
}

absl::StatusOr<ossl::X509Ptr> VerifyPeerCert(const Credentials& creds, const std::vector<Bytes>& der_certs) {
  if (der_certs.empty()) return absl::UnauthenticatedError("peer sent no certificate");
  if (!creds.store) return absl::FailedPreconditionError("no trust anchors configured");
  std::string key(32, '\0');
  {
    ossl::MdCtx md(EVP_MD_CTX_new());
    unsigned int len = 0;
    bool ok = md && EVP_DigestInit_ex(md.get(), EVP_sha256(), nullptr) == 1;
    for (const Bytes& d : der_certs) ok = ok && EVP_DigestUpdate(md.get(), d.data(), d.size()) == 1;
    if (!ok || EVP_DigestFinal_ex(md.get(), reinterpret_cast<unsigned char*>(key.data()), &len) != 1) return ossl::Error("EVP_Digest(sha256)");
  }
  auto now = std::chrono::steady_clock::now();
  auto hit = creds.verified_cache.find(key);
  if (hit != creds.verified_cache.end() && hit->second.expiry > now) {
    X509_up_ref(hit->second.cert.get());
    return ossl::X509Ptr(hit->second.cert.get());
  }
  std::vector<ossl::X509Ptr> certs;
  for (const Bytes& d : der_certs) {
    const unsigned char* p = d.data();
    ossl::X509Ptr x(d2i_X509(nullptr, &p, d.size()));
    if (!x || p != d.data() + d.size()) return absl::UnauthenticatedError("d2i_X509: peer certificate unparseable");
    certs.push_back(std::move(x));
  }
  struct StackFree {
    void operator()(STACK_OF(X509) * s) const { sk_X509_free(s); }
  };
  std::unique_ptr<STACK_OF(X509), StackFree> untrusted(sk_X509_new_null());
  for (size_t i = 1; i < certs.size(); ++i) sk_X509_push(untrusted.get(), certs[i].get());
  ossl::X509StoreCtx ctx(X509_STORE_CTX_new());
  if (!ctx || X509_STORE_CTX_init(ctx.get(), creds.store.get(), certs[0].get(), untrusted.get()) != 1)
    return ossl::Error("X509_STORE_CTX_init");
  if (X509_verify_cert(ctx.get()) != 1) {
    int err = X509_STORE_CTX_get_error(ctx.get());
    ossl::DrainErrors();
    return absl::UnauthenticatedError(absl::StrCat("X509_verify_cert: ", X509_verify_cert_error_string(err)));
  }
  if (creds.verified_cache.size() > 1024) creds.verified_cache.clear();  // bounded
  X509_up_ref(certs[0].get());
  creds.verified_cache[key] = Credentials::Verified{now + std::chrono::seconds(60), std::shared_ptr<X509>(certs[0].get(), X509_free)};
  return std::move(certs[0]);
}

absl::Status CheckIdInCert(X509* cert, const Identity& id) {
  if (id.type == IdType::kDerAsn1Dn) {
    const unsigned char* p = id.data.data();
    ossl::X509Name name(d2i_X509_NAME(nullptr, &p, id.data.size()));
    if (name && X509_NAME_cmp(name.get(), X509_get_subject_name(cert)) == 0) return absl::OkStatus();
  }
  ossl::GeneralNames sans(static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans.get()); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans.get(), i);
    auto str = [](const ASN1_STRING* s) {
      return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)), ASN1_STRING_length(s));
    };
    std::string want(id.data.begin(), id.data.end());
    switch (id.type) {
      case IdType::kFqdn:
        if (gn->type == GEN_DNS && absl::EqualsIgnoreCase(str(gn->d.dNSName), want)) return absl::OkStatus();
        break;
      case IdType::kRfc822:
        if (gn->type == GEN_EMAIL && absl::EqualsIgnoreCase(str(gn->d.rfc822Name), want)) return absl::OkStatus();
        break;
      case IdType::kIpv4:
      case IdType::kIpv6:
        if (gn->type == GEN_IPADD && str(gn->d.iPAddress) == want) return absl::OkStatus();
        break;
      case IdType::kDerAsn1Dn:
        if (gn->type == GEN_DIRNAME && X509_NAME_cmp(gn->d.directoryName, X509_get_subject_name(cert)) == 0) {
          const unsigned char* p = id.data.data();
          ossl::X509Name name(d2i_X509_NAME(nullptr, &p, id.data.size()));
          if (name && X509_NAME_cmp(name.get(), gn->d.directoryName) == 0) return absl::OkStatus();
        }
        break;
      default:
        break;
    }
  }
  return absl::UnauthenticatedError(absl::StrCat("peer ID '", id.ToString(), "' is neither the certificate subject nor in its subjectAltName"));
}

}  // namespace ipfleet::ike
