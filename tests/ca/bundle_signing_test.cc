// Controller PKI made by InitControllerPki, and policy bundle signatures: verified by our
// VerifyBundle and, independently, by `openssl verify` (chain) and `openssl dgst -verify`.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "ipfleet/ca/authority.h"
#include "ipfleet/ca/bundle_signing.h"
#include "ipfleet/ca/keys.h"
#include "ipfleet/ca/layout.h"
#include "ipfleet/ca/verify.h"
#include "ipfleet/common/files.h"
#include "test_util.h"

namespace ipfleet::ca {
namespace {

using ::testing::HasSubstr;
using namespace ::ipfleet::ca::testing;
namespace fs = std::filesystem;

class PkiTest : public ::testing::TestWithParam<KeyType> {
 protected:
  void SetUp() override {
    ControllerInitOptions opts;
    opts.ca.key_type = GetParam();
    opts.addresses = {"10.1.2.3", "controller.example.net"};
    auto ca = InitControllerPki(dir(), opts);
    ASSERT_TRUE(ca.ok()) << ca.status();
    ca_ = std::move(*ca);
    auto signer = BundleSigner::Load(dir());
    ASSERT_TRUE(signer.ok()) << signer.status();
    signer_ = std::make_unique<BundleSigner>(std::move(*signer));
    bundle_ = "\x0a\x05host1\x10\x07 exact serialized PolicyBundle bytes \x00\xff";
    bundle_.push_back('\0');
  }
  fs::path dir() const { return tmp_ / "data"; }
  std::string CaFile() const { return layout::CaCert(dir()).string(); }

  TempDir tmp_;
  std::unique_ptr<CertificateAuthority> ca_;
  std::unique_ptr<BundleSigner> signer_;
  std::string bundle_;
};

TEST_P(PkiTest, ControllerAndSignerCertificatesChainToTheCa) {
  fs::path tls = layout::ControllerCert(dir());
  fs::path sig = layout::PolicySignerCert(dir());
  CmdResult v = Sh("openssl verify -purpose sslserver -CAfile " + Q(CaFile()) + " " + Q(tls));
  EXPECT_EQ(v.exit_code, 0) << v.output;
  // The chain file form: CA + leaf in one bundle passed as -untrusted/-CAfile.
  WriteFile(tmp_ / "chain.pem", ReadFile(CaFile()));
  v = Sh("openssl verify -CAfile " + Q(tmp_ / "chain.pem") + " " + Q(sig));
  EXPECT_EQ(v.exit_code, 0) << v.output;

  CmdResult text = Sh("openssl x509 -noout -text -in " + Q(tls));
  EXPECT_THAT(text.output, HasSubstr("TLS Web Server Authentication"));
  EXPECT_THAT(text.output, HasSubstr("IP Address:10.1.2.3"));
  EXPECT_THAT(text.output, HasSubstr("DNS:controller.example.net"));
  text = Sh("openssl x509 -noout -text -in " + Q(sig));
  EXPECT_THAT(text.output, HasSubstr("Subject: CN = ipfleet-policy-signer"));
  EXPECT_THAT(text.output, HasSubstr(std::string(kOidPolicySigning)));
  EXPECT_THAT(text.output, ::testing::Not(HasSubstr("ipsec Internet Key Exchange")));

  for (const fs::path& key : {layout::ControllerKey(dir()), layout::PolicySignerKey(dir()), layout::CaKey(dir())}) {
    struct stat st {};
    ASSERT_EQ(stat(key.c_str(), &st), 0) << key;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << key;
  }
  // Key and certificate of the controller belong together (openssl's view).
  EXPECT_EQ(Sh("openssl pkey -pubout -in " + Q(layout::ControllerKey(dir()))).output,
            Sh("openssl x509 -noout -pubkey -in " + Q(tls)).output);
}

TEST_P(PkiTest, InitControllerPkiRefusesExistingCaAndBadAddresses) {
  Snapshot before = TakeSnapshot(dir());
  ControllerInitOptions opts;
  opts.ca.key_type = GetParam();
  EXPECT_EQ(InitControllerPki(dir(), opts).status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(TakeSnapshot(dir()), before);

  opts.addresses = {"not a host name!"};
  fs::path fresh = tmp_ / "fresh";
  EXPECT_EQ(InitControllerPki(fresh, opts).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(fs::exists(fresh));
}

TEST_P(PkiTest, SignedBundleVerifies) {
  auto sig = signer_->Sign(bundle_);
  ASSERT_TRUE(sig.ok()) << sig.status();
  EXPECT_EQ(sig->algorithm, GetParam() == KeyType::kEcdsaP256 ? "ecdsa-sha256" : "rsa-pss-sha256");
  auto crl = ca_->Crl();
  ASSERT_TRUE(crl.ok());
  auto info = VerifyBundle(bundle_, sig->signature, sig->signer_cert_pem, ca_->CertificatePem(), crl->pem,
                           sig->algorithm);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->subject_cn, kPolicySignerCommonName);
  // Without a CRL too (no revocation check).
  EXPECT_TRUE(VerifyBundle(bundle_, sig->signature, sig->signer_cert_pem, ca_->CertificatePem(), "").ok());

  // Independent judge: openssl dgst verifies the detached signature over the same bytes.
  WriteFile(tmp_ / "bundle.bin", bundle_);
  WriteFile(tmp_ / "bundle.sig", sig->signature);
  WriteFile(tmp_ / "signer.crt", sig->signer_cert_pem);
  Sh("openssl x509 -in " + Q(tmp_ / "signer.crt") + " -noout -pubkey > " + Q(tmp_ / "signer.pub"));
  std::string opts = GetParam() == KeyType::kRsa3072
                         ? " -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest"
                         : "";
  CmdResult v = Sh("openssl dgst -sha256 -verify " + Q(tmp_ / "signer.pub") + opts + " -signature " +
                    Q(tmp_ / "bundle.sig") + " " + Q(tmp_ / "bundle.bin"));
  EXPECT_EQ(v.exit_code, 0) << v.output;
  EXPECT_THAT(v.output, HasSubstr("Verified OK"));

  // And our verifier accepts a signature openssl made with the policy-signing key.
  CmdResult s = Sh("openssl dgst -sha256 -sign " + Q(layout::PolicySignerKey(dir())) + opts + " -out " +
                    Q(tmp_ / "ossl.sig") + " " + Q(tmp_ / "bundle.bin"));
  ASSERT_EQ(s.exit_code, 0) << s.output;
  EXPECT_TRUE(VerifyBundle(bundle_, ReadFile(tmp_ / "ossl.sig"), sig->signer_cert_pem, ca_->CertificatePem(),
                           crl->pem)
                  .ok());
}

TEST_P(PkiTest, FlippedByteFailsEverywhere) {
  auto sig = signer_->Sign(bundle_);
  ASSERT_TRUE(sig.ok());
  for (size_t i : {size_t{0}, bundle_.size() / 2, bundle_.size() - 1}) {
    std::string tampered = bundle_;
    tampered[i] = static_cast<char>(tampered[i] ^ 0x01);
    auto r = VerifyBundle(tampered, sig->signature, sig->signer_cert_pem, ca_->CertificatePem(), "");
    ASSERT_FALSE(r.ok()) << i;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated);
    EXPECT_THAT(std::string(r.status().message()), HasSubstr("EVP_DigestVerify"));
  }
  std::string bad_sig = sig->signature;
  bad_sig[bad_sig.size() / 2] ^= 0x40;
  EXPECT_FALSE(VerifyBundle(bundle_, bad_sig, sig->signer_cert_pem, ca_->CertificatePem(), "").ok());
  // One extra byte appended is a different message.
  EXPECT_FALSE(VerifyBundle(bundle_ + "x", sig->signature, sig->signer_cert_pem, ca_->CertificatePem(), "").ok());
  // Wrong algorithm label.
  EXPECT_FALSE(VerifyBundle(bundle_, sig->signature, sig->signer_cert_pem, ca_->CertificatePem(), "",
                            GetParam() == KeyType::kEcdsaP256 ? "rsa-pss-sha256" : "ecdsa-sha256")
                   .ok());
}

TEST_P(PkiTest, WrongSignerFails) {
  // 1. A host certificate of the same CA (valid chain, but no policy-signing role).
  auto host_key = GenerateKey(KeyType::kEcdsaP256);
  ASSERT_TRUE(host_key.ok());
  IssueRequest req;
  req.common_name = "web1";
  req.ips = {"192.0.2.1"};
  auto host_cert = ca_->IssueForKey(host_key->get(), req);
  ASSERT_TRUE(host_cert.ok());
  auto host_key_pem = PrivateKeyToPem(host_key->get());
  ASSERT_TRUE(host_key_pem.ok());
  EXPECT_EQ(BundleSigner::FromPem(*host_key_pem, host_cert->pem).status().code(),
            absl::StatusCode::kInvalidArgument);
  // Sign by hand with the host key (as an attacker with a host key would).
  ossl::MdCtx ctx(EVP_MD_CTX_new());
  ASSERT_EQ(EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, host_key->get()), 1);
  size_t len = 0;
  ASSERT_EQ(EVP_DigestSign(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(bundle_.data()),
                           bundle_.size()), 1);
  std::string host_sig(len, '\0');
  ASSERT_EQ(EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(host_sig.data()), &len,
                           reinterpret_cast<const unsigned char*>(bundle_.data()), bundle_.size()), 1);
  host_sig.resize(len);
  auto r = VerifyBundle(bundle_, host_sig, host_cert->pem, ca_->CertificatePem(), "");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("not a policy-signing certificate"));

  // 2. A policy signer of another CA.
  TempDir other_tmp;
  ControllerInitOptions opts;
  auto other = InitControllerPki(other_tmp / "d", opts);
  ASSERT_TRUE(other.ok());
  auto other_signer = BundleSigner::Load(other_tmp / "d");
  ASSERT_TRUE(other_signer.ok());
  auto sig = other_signer->Sign(bundle_);
  ASSERT_TRUE(sig.ok());
  r = VerifyBundle(bundle_, sig->signature, sig->signer_cert_pem, ca_->CertificatePem(), "");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("X509_verify_cert"));

  // 3. Our signer's signature presented with another signer certificate.
  auto good = signer_->Sign(bundle_);
  ASSERT_TRUE(good.ok());
  EXPECT_FALSE(VerifyBundle(bundle_, good->signature, sig->signer_cert_pem, ca_->CertificatePem(), "").ok());
}

TEST_P(PkiTest, RevokedSignerFails) {
  auto sig = signer_->Sign(bundle_);
  ASSERT_TRUE(sig.ok());
  auto info = InspectCertificatePem(sig->signer_cert_pem);
  ASSERT_TRUE(info.ok());
  ASSERT_TRUE(ca_->Revoke(info->serial_hex, RevocationReason::kKeyCompromise).ok());
  auto crl = ca_->Crl();
  ASSERT_TRUE(crl.ok());
  auto r = VerifyBundle(bundle_, sig->signature, sig->signer_cert_pem, ca_->CertificatePem(), crl->pem);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("certificate revoked"));
  // openssl agrees.
  WriteFile(tmp_ / "crl.pem", crl->pem);
  EXPECT_NE(Sh("openssl verify -crl_check -CAfile " + Q(CaFile()) + " -CRLfile " + Q(tmp_ / "crl.pem") + " " +
                Q(layout::PolicySignerCert(dir())))
                .exit_code,
            0);
  // A CRL signed by someone else is not accepted as proof of anything.
  TempDir other_tmp;
  auto other = CertificateAuthority::Init(other_tmp / "d", {});
  ASSERT_TRUE(other.ok());
  auto foreign_crl = (*other)->Crl();
  ASSERT_TRUE(foreign_crl.ok());
  EXPECT_FALSE(
      VerifyBundle(bundle_, sig->signature, sig->signer_cert_pem, ca_->CertificatePem(), foreign_crl->pem).ok());
}

TEST_P(PkiTest, VerifyPeerCertificateChecksTimeAndCrlRequirement) {
  std::string tls = ReadFile(layout::ControllerCert(dir()));
  VerifyOptions o;
  o.purpose = Purpose::kTlsServer;
  EXPECT_TRUE(VerifyPeerCertificate(tls, ca_->CertificatePem(), "", o).ok());
  o.at = std::chrono::system_clock::now() + std::chrono::hours(24 * 900);
  auto expired = VerifyPeerCertificate(tls, ca_->CertificatePem(), "", o);
  EXPECT_THAT(std::string(expired.status().message()), HasSubstr("expired"));
  o.at.reset();
  o.require_crl = true;
  EXPECT_FALSE(VerifyPeerCertificate(tls, ca_->CertificatePem(), "", o).ok());
  EXPECT_EQ(VerifyPeerCertificate("garbage", ca_->CertificatePem(), "").status().code(),
            absl::StatusCode::kInvalidArgument);
  // DER path, as IKE uses it.
  auto cert = ParseCertificatePem(tls);
  ASSERT_TRUE(cert.ok());
  auto der = CertificateToDer(cert->get());
  ASSERT_TRUE(der.ok());
  auto again = ParseCertificateDer(*der);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(VerifyPeerCertificate(again->get(), ca_->Certificate(), nullptr, {}).ok());
  EXPECT_FALSE(ParseCertificateDer(der->substr(0, der->size() - 3)).ok());
}

INSTANTIATE_TEST_SUITE_P(KeyTypes, PkiTest, ::testing::Values(KeyType::kEcdsaP256, KeyType::kRsa3072),
                         [](const ::testing::TestParamInfo<KeyType>& p) {
                           return p.param == KeyType::kEcdsaP256 ? std::string("EcdsaP256") : std::string("Rsa3072");
                         });

}  // namespace
}  // namespace ipfleet::ca
