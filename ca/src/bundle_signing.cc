#include "ipfleet/ca/bundle_signing.h"

#include <openssl/rsa.h>

#include <algorithm>

#include "ipfleet/ca/keys.h"
#include "ipfleet/ca/layout.h"
#include "ipfleet/ca/profiles.h"
#include "ipfleet/ca/verify.h"
#include "ipfleet/common/files.h"

namespace ipfleet::ca {

namespace {

constexpr std::string_view kEcdsaSha256 = "ecdsa-sha256";
constexpr std::string_view kRsaPssSha256 = "rsa-pss-sha256";

absl::StatusOr<std::string> AlgorithmFor(EVP_PKEY* key) {
  if (EVP_PKEY_is_a(key, "EC")) return std::string(kEcdsaSha256);
  if (EVP_PKEY_is_a(key, "RSA")) return std::string(kRsaPssSha256);
  return absl::InvalidArgumentError("policy-signing key must be EC or RSA");
}

// RSA uses PSS with a salt as long as the digest; EC needs no parameters.
absl::Status ConfigurePadding(EVP_PKEY_CTX* pctx, std::string_view algorithm) {
  if (algorithm != kRsaPssSha256) return absl::OkStatus();
  if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0) {
    return ossl::Error("EVP_PKEY_CTX_set_rsa_padding");
  }
  if (EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) <= 0) {
    return ossl::Error("EVP_PKEY_CTX_set_rsa_pss_saltlen");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<BundleSigner> BundleSigner::FromPem(std::string_view key_pem, std::string_view cert_pem) {
  BundleSigner s;
  IPFLEET_ASSIGN_OR_RETURN(s.key_, PrivateKeyFromPem(key_pem));
  IPFLEET_ASSIGN_OR_RETURN(ossl::X509Ptr cert, ParseCertificatePem(cert_pem));
  if (X509_check_private_key(cert.get(), s.key_.get()) != 1) {
    return ossl::Error("X509_check_private_key (policy-signing key does not match its certificate)",
                       absl::StatusCode::kInvalidArgument);
  }
  IPFLEET_ASSIGN_OR_RETURN(CertInfo info, InspectCertificate(cert.get()));
  if (std::find(info.ekus.begin(), info.ekus.end(), kOidPolicySigning) == info.ekus.end()) {
    return absl::InvalidArgumentError("certificate " + info.serial_hex + " is not a policy-signing certificate");
  }
  IPFLEET_ASSIGN_OR_RETURN(s.cert_pem_, CertificateToPem(cert.get()));
  IPFLEET_ASSIGN_OR_RETURN(s.algorithm_, AlgorithmFor(s.key_.get()));
  return s;
}

absl::StatusOr<BundleSigner> BundleSigner::Load(const std::filesystem::path& data_dir) {
  IPFLEET_ASSIGN_OR_RETURN(std::string key_pem, files::Read(layout::PolicySignerKey(data_dir)));
  IPFLEET_ASSIGN_OR_RETURN(std::string cert_pem, files::Read(layout::PolicySignerCert(data_dir)));
  auto signer = FromPem(key_pem, cert_pem);
  OPENSSL_cleanse(key_pem.data(), key_pem.size());
  if (!signer.ok()) {
    return absl::Status(signer.status().code(), "policy signer in " + layout::CaDir(data_dir).string() + ": " +
                                                    std::string(signer.status().message()));
  }
  return signer;
}

absl::StatusOr<BundleSignature> BundleSigner::Sign(std::string_view bytes) const {
  ossl::MdCtx ctx(EVP_MD_CTX_new());
  if (!ctx) return ossl::Error("EVP_MD_CTX_new");
  EVP_PKEY_CTX* pctx = nullptr;  // owned by ctx
  if (EVP_DigestSignInit(ctx.get(), &pctx, EVP_sha256(), nullptr, key_.get()) != 1) {
    return ossl::Error("EVP_DigestSignInit");
  }
  IPFLEET_RETURN_IF_ERROR(ConfigurePadding(pctx, algorithm_));
  size_t len = 0;
  const auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
  if (EVP_DigestSign(ctx.get(), nullptr, &len, data, bytes.size()) != 1) return ossl::Error("EVP_DigestSign");
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, data, bytes.size()) != 1) {
    return ossl::Error("EVP_DigestSign");
  }
  sig.resize(len);
  return BundleSignature{std::move(sig), cert_pem_, algorithm_};
}

absl::StatusOr<BundleSignature> SignBundle(const std::filesystem::path& data_dir, std::string_view bytes) {
  IPFLEET_ASSIGN_OR_RETURN(BundleSigner signer, BundleSigner::Load(data_dir));
  return signer.Sign(bytes);
}

absl::StatusOr<CertInfo> VerifyBundle(std::string_view bytes, std::string_view signature,
                                      std::string_view signer_cert_pem, std::string_view ca_chain_pem,
                                      std::string_view crl_pem, std::string_view algorithm) {
  VerifyOptions opts;
  opts.purpose = Purpose::kPolicySigning;
  IPFLEET_ASSIGN_OR_RETURN(CertInfo info, VerifyPeerCertificate(signer_cert_pem, ca_chain_pem, crl_pem, opts));
  IPFLEET_ASSIGN_OR_RETURN(ossl::X509Ptr cert, ParseCertificatePem(signer_cert_pem));
  EVP_PKEY* pub = X509_get0_pubkey(cert.get());
  if (pub == nullptr) return ossl::Error("X509_get0_pubkey", absl::StatusCode::kInvalidArgument);
  IPFLEET_ASSIGN_OR_RETURN(std::string expected, AlgorithmFor(pub));
  if (!algorithm.empty() && algorithm != expected) {
    return absl::UnauthenticatedError("bundle algorithm \"" + std::string(algorithm) +
                                      "\" does not match the signer's key (" + expected + ")");
  }
  ossl::MdCtx ctx(EVP_MD_CTX_new());
  if (!ctx) return ossl::Error("EVP_MD_CTX_new");
  EVP_PKEY_CTX* pctx = nullptr;
  if (EVP_DigestVerifyInit(ctx.get(), &pctx, EVP_sha256(), nullptr, pub) != 1) {
    return ossl::Error("EVP_DigestVerifyInit");
  }
  IPFLEET_RETURN_IF_ERROR(ConfigurePadding(pctx, expected));
  int rc = EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                            signature.size(), reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
  if (rc != 1) {
    return ossl::Error("EVP_DigestVerify (bundle signature does not match)", absl::StatusCode::kUnauthenticated);
  }
  return info;
}

}  // namespace ipfleet::ca
