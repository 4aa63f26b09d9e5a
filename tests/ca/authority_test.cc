// The CA library judged by OpenSSL's own command line: `openssl verify`, `openssl x509 -text`,
// `openssl crl -verify`. Every test runs for an ECDSA P-256 and an RSA-3072 CA.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <set>
#include <thread>

#include <absl/strings/ascii.h>

#include "ipfleet/ca/authority.h"
#include "ipfleet/ca/csr.h"
#include "ipfleet/ca/fingerprint.h"
#include "ipfleet/ca/keys.h"
#include "ipfleet/ca/layout.h"
#include "ipfleet/ca/verify.h"
#include "test_util.h"

namespace ipfleet::ca {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using namespace ::ipfleet::ca::testing;
namespace fs = std::filesystem;

// How openssl prints a serial: upper-case hex, padded to whole bytes.
std::string OpensslSerial(const std::string& serial_hex) {
  std::string s = absl::AsciiStrToUpper(serial_hex);
  return s.size() % 2 == 1 ? "0" + s : s;
}

class CaTest : public ::testing::TestWithParam<KeyType> {
 protected:
  void SetUp() override {
    InitOptions opts;
    opts.key_type = GetParam();
    opts.name = "Test Fleet CA";
    auto ca = CertificateAuthority::Init(data_dir(), opts);
    ASSERT_TRUE(ca.ok()) << ca.status();
    ca_ = std::move(*ca);
    host_csr_ = OpensslCsr(tmp_.path(), "ec -pkeyopt ec_paramgen_curve:P-256", "host");
  }

  fs::path data_dir() const { return tmp_ / "data"; }
  std::string ca_file() const { return layout::CaCert(data_dir()).string(); }

  IssueRequest HostRequest() const {
    IssueRequest r;
    r.common_name = "web1";
    r.ips = {"192.0.2.10", "2001:db8::10"};
    r.dns = {"web1.example.net"};
    r.days = 30;
    return r;
  }

  fs::path Save(const std::string& name, const std::string& data) {
    fs::path p = tmp_ / name;
    WriteFile(p, data);
    return p;
  }

  TempDir tmp_;
  std::unique_ptr<CertificateAuthority> ca_;
  std::string host_csr_;
};

TEST_P(CaTest, RootHasCaExtensionsAndPrivateKeyFile) {
  CmdResult text = Sh("openssl x509 -noout -text -in " + Q(ca_file()));
  ASSERT_EQ(text.exit_code, 0) << text.output;
  EXPECT_THAT(text.output, HasSubstr("X509v3 Basic Constraints: critical"));
  EXPECT_THAT(text.output, HasSubstr("CA:TRUE"));
  EXPECT_THAT(text.output, HasSubstr("X509v3 Key Usage: critical"));
  EXPECT_THAT(text.output, HasSubstr("Certificate Sign, CRL Sign"));
  EXPECT_THAT(text.output, HasSubstr("X509v3 Subject Key Identifier"));
  EXPECT_THAT(text.output, HasSubstr("X509v3 Authority Key Identifier"));
  EXPECT_THAT(text.output, HasSubstr("Subject: CN = Test Fleet CA"));
  EXPECT_THAT(text.output, HasSubstr(GetParam() == KeyType::kEcdsaP256 ? "NIST CURVE: P-256" : "(3072 bit)"));
  // A self-signed root verifies against itself.
  EXPECT_EQ(Sh("openssl verify -CAfile " + Q(ca_file()) + " " + Q(ca_file())).exit_code, 0);

  struct stat st {};
  ASSERT_EQ(stat(layout::CaKey(data_dir()).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat(layout::CaState(data_dir()).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // openssl can read the key and it matches the certificate.
  CmdResult k = Sh("openssl pkey -in " + Q(layout::CaKey(data_dir())) + " -pubout");
  CmdResult c = Sh("openssl x509 -in " + Q(ca_file()) + " -noout -pubkey");
  EXPECT_EQ(k.output, c.output);
}

TEST_P(CaTest, InitRefusesExistingCaAndLeavesItAlone) {
  Snapshot before = TakeSnapshot(data_dir());
  auto again = CertificateAuthority::Init(data_dir(), {});
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(std::string(again.status().message()), HasSubstr("already exists"));
  EXPECT_EQ(TakeSnapshot(data_dir()), before);
}

TEST_P(CaTest, FingerprintMatchesOpenssl) {
  CmdResult r = Sh("openssl x509 -noout -fingerprint -sha256 -in " + Q(ca_file()));
  ASSERT_EQ(r.exit_code, 0);
  // "sha256 Fingerprint=AB:CD:..."
  std::string want = r.output.substr(r.output.find('=') + 1);
  want.erase(want.find_last_not_of("\n") + 1);
  EXPECT_EQ(ca_->Fingerprint(), want);
  EXPECT_TRUE(FingerprintEquals(ca_->Fingerprint(), absl::AsciiStrToLower(want)));
}

TEST_P(CaTest, IssuedHostCertVerifiesAndCarriesCallerNamesNotCsrNames) {
  auto issued = ca_->Issue(host_csr_, HostRequest());
  ASSERT_TRUE(issued.ok()) << issued.status();
  fs::path crt = Save("web1.crt", issued->pem);

  CmdResult v = Sh("openssl verify -CAfile " + Q(ca_file()) + " " + Q(crt));
  EXPECT_EQ(v.exit_code, 0) << v.output;
  EXPECT_THAT(v.output, HasSubstr(": OK"));

  CmdResult text = Sh("openssl x509 -noout -text -in " + Q(crt));
  ASSERT_EQ(text.exit_code, 0);
  EXPECT_THAT(text.output, HasSubstr("Subject: CN = web1\n"));
  EXPECT_THAT(text.output, HasSubstr("IP Address:192.0.2.10"));
  EXPECT_THAT(text.output, HasSubstr("IP Address:2001:DB8:0:0:0:0:0:10"));
  EXPECT_THAT(text.output, HasSubstr("DNS:web1.example.net"));
  EXPECT_THAT(text.output, HasSubstr("ipsec Internet Key Exchange, TLS Web Client Authentication"));
  EXPECT_THAT(text.output, Not(HasSubstr("TLS Web Server Authentication")));
  EXPECT_THAT(text.output, HasSubstr("CA:FALSE"));
  EXPECT_THAT(text.output, HasSubstr("X509v3 Subject Key Identifier"));
  EXPECT_THAT(text.output, HasSubstr("X509v3 Authority Key Identifier"));
  // Nothing from the CSR's hostile subject / requested extensions made it in.
  EXPECT_THAT(text.output, Not(HasSubstr("evil")));
  EXPECT_THAT(text.output, Not(HasSubstr("6.6.6.6")));
  EXPECT_THAT(text.output, Not(HasSubstr("Attacker")));
  EXPECT_THAT(text.output, Not(HasSubstr("CA:TRUE")));
  // The EKU OIDs themselves, numerically.
  auto parsed = InspectCertificatePem(issued->pem);
  ASSERT_TRUE(parsed.ok());
  EXPECT_THAT(parsed->ekus, ::testing::ElementsAre("1.3.6.1.5.5.7.3.17", "1.3.6.1.5.5.7.3.2"));

  // The certificate holds the CSR's public key.
  CmdResult k = Sh("openssl pkey -in " + Q(tmp_ / "host.key") + " -pubout");
  CmdResult c = Sh("openssl x509 -in " + Q(crt) + " -noout -pubkey");
  EXPECT_EQ(k.output, c.output);

  // Our own verifier agrees for IKE and TLS client use.
  VerifyOptions ike;
  ike.purpose = Purpose::kIke;
  auto info = VerifyPeerCertificate(issued->pem, ca_->CertificatePem(), "", ike);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->subject_cn, "web1");
  EXPECT_THAT(info->ips, ::testing::ElementsAre("192.0.2.10", "2001:db8::10"));
  EXPECT_THAT(info->dns, ::testing::ElementsAre("web1.example.net"));
  VerifyOptions server;
  server.purpose = Purpose::kTlsServer;
  EXPECT_EQ(VerifyPeerCertificate(issued->pem, ca_->CertificatePem(), "", server).status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST_P(CaTest, ValidityAndSerialAreAsSpecified) {
  IssueRequest req = HostRequest();
  req.days = 90;
  std::set<std::string> serials;
  for (int i = 0; i < 20; ++i) {
    auto issued = ca_->Issue(host_csr_, req);
    ASSERT_TRUE(issued.ok()) << issued.status();
    serials.insert(issued->serial_hex);
    EXPECT_LE(issued->serial_hex.size(), 32u);  // 128 bits
    EXPECT_GE(issued->serial_hex.size(), 20u);  // random, so practically never this short
    auto span = std::chrono::duration_cast<std::chrono::hours>(issued->not_after - issued->not_before);
    EXPECT_NEAR(span.count(), 90 * 24, 1);
    if (i == 0) {
      fs::path crt = Save("v.crt", issued->pem);
      CmdResult s = Sh("openssl x509 -noout -serial -in " + Q(crt));
      EXPECT_EQ(s.output, "serial=" + OpensslSerial(issued->serial_hex) + "\n");
      // "will it expire within 89 days" -> no; within 91 -> yes.
      EXPECT_EQ(Sh("openssl x509 -noout -checkend " + std::to_string(89 * 86400) + " -in " + Q(crt)).exit_code, 0);
      EXPECT_NE(Sh("openssl x509 -noout -checkend " + std::to_string(91 * 86400) + " -in " + Q(crt)).exit_code, 0);
    }
  }
  EXPECT_EQ(serials.size(), 20u);
}

TEST_P(CaTest, AcceptsAllowedCsrKeyTypes) {
  for (const char* spec : {"rsa:2048", "rsa:3072", "ec -pkeyopt ec_paramgen_curve:P-384"}) {
    std::string csr = OpensslCsr(tmp_.path(), spec, "ok");
    auto issued = ca_->Issue(csr, HostRequest());
    ASSERT_TRUE(issued.ok()) << spec << ": " << issued.status();
    fs::path crt = Save("ok.crt", issued->pem);
    EXPECT_EQ(Sh("openssl verify -CAfile " + Q(ca_file()) + " " + Q(crt)).exit_code, 0) << spec;
  }
}

TEST_P(CaTest, RefusesOtherKeyTypesWithClearError) {
  struct Case {
    const char* spec;
    const char* message;
  };
  for (const Case& c : {Case{"rsa:1024", "RSA 1024 bits"}, Case{"ec -pkeyopt ec_paramgen_curve:P-521", "EC curve"},
                        Case{"ec -pkeyopt ec_paramgen_curve:secp256k1", "EC curve"},
                        Case{"ed25519", "refused key type: ED25519"}}) {
    std::string csr = OpensslCsr(tmp_.path(), c.spec, "bad");
    auto issued = ca_->Issue(csr, HostRequest());
    ASSERT_FALSE(issued.ok()) << c.spec;
    EXPECT_EQ(issued.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(issued.status().message()), HasSubstr(c.message)) << c.spec;
  }
}

TEST_P(CaTest, RefusesBrokenCsrSignatureAndGarbage) {
  std::string broken = BreakCsrSignature(tmp_.path(), host_csr_);
  // openssl agrees the CSR is broken.
  fs::path b = Save("broken2.csr", broken);
  EXPECT_THAT(Sh("openssl req -verify -noout -in " + Q(b)).output, HasSubstr("verify failure"));
  auto issued = ca_->Issue(broken, HostRequest());
  ASSERT_FALSE(issued.ok());
  EXPECT_THAT(std::string(issued.status().message()), HasSubstr("X509_REQ_verify"));

  for (std::string garbage : {std::string("hello"), std::string(""),
                              std::string("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n")}) {
    auto r = ca_->Issue(garbage, HostRequest());
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(r.status().message()), HasSubstr("PEM_read_bio_X509_REQ"));
  }
}

TEST_P(CaTest, RefusesBadRequests) {
  IssueRequest r = HostRequest();
  r.ips = {"300.1.1.1"};
  EXPECT_THAT(std::string(ca_->Issue(host_csr_, r).status().message()), HasSubstr("not an IPv4 or IPv6"));
  r = HostRequest();
  r.dns = {"bad name!"};
  EXPECT_THAT(std::string(ca_->Issue(host_csr_, r).status().message()), HasSubstr("not a valid DNS name"));
  r = HostRequest();
  r.common_name = "";
  EXPECT_FALSE(ca_->Issue(host_csr_, r).ok());
  r = HostRequest();
  r.days = 0;
  EXPECT_THAT(std::string(ca_->Issue(host_csr_, r).status().message()), HasSubstr("outside 1..3650"));
}

TEST_P(CaTest, ProfilesCarryTheirEkus) {
  struct Case {
    Profile profile;
    const char* purpose;  // openssl verify -purpose
    const char* eku_text;
  };
  for (const Case& c : {Case{Profile::kController, "sslserver", "TLS Web Server Authentication"},
                        Case{Profile::kExternal, "sslserver", "ipsec Internet Key Exchange"},
                        Case{Profile::kHost, "sslclient", "TLS Web Client Authentication"}}) {
    IssueRequest req = HostRequest();
    req.profile = c.profile;
    auto issued = ca_->Issue(host_csr_, req);
    ASSERT_TRUE(issued.ok()) << issued.status();
    fs::path crt = Save("p.crt", issued->pem);
    CmdResult v = Sh(std::string("openssl verify -purpose ") + c.purpose + " -CAfile " + Q(ca_file()) + " " + Q(crt));
    EXPECT_EQ(v.exit_code, 0) << ProfileName(c.profile) << ": " << v.output;
    EXPECT_THAT(Sh("openssl x509 -noout -text -in " + Q(crt)).output, HasSubstr(c.eku_text));
  }
  // A host certificate is not a TLS server certificate.
  auto host = ca_->Issue(host_csr_, HostRequest());
  ASSERT_TRUE(host.ok());
  fs::path crt = Save("h.crt", host->pem);
  EXPECT_NE(Sh("openssl verify -purpose sslserver -CAfile " + Q(ca_file()) + " " + Q(crt)).exit_code, 0);
}

TEST_P(CaTest, RevokeAndCrlAreAcceptedByOpenssl) {
  auto a = ca_->Issue(host_csr_, HostRequest());
  auto b = ca_->Issue(host_csr_, HostRequest());
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE(ca_->Revoke(a->serial_hex, RevocationReason::kKeyCompromise).ok());
  EXPECT_TRUE(ca_->IsRevoked(a->serial_hex));
  EXPECT_FALSE(ca_->IsRevoked(b->serial_hex));
  auto crl1 = ca_->Crl(std::chrono::hours(48));
  ASSERT_TRUE(crl1.ok()) << crl1.status();
  EXPECT_EQ(crl1->crl_number, 1u);
  fs::path crl = Save("crl.pem", crl1->pem);

  CmdResult v = Sh("openssl crl -noout -text -CAfile " + Q(ca_file()) + " -verify -in " + Q(crl));
  ASSERT_EQ(v.exit_code, 0) << v.output;
  EXPECT_THAT(v.output, HasSubstr("verify OK"));
  EXPECT_THAT(v.output, HasSubstr("Version 2"));
  EXPECT_THAT(v.output, HasSubstr("Next Update:"));
  EXPECT_THAT(v.output, HasSubstr("X509v3 CRL Number: \n                1"));
  EXPECT_THAT(v.output, HasSubstr("Serial Number: " + OpensslSerial(a->serial_hex)));
  EXPECT_THAT(v.output, Not(HasSubstr(OpensslSerial(b->serial_hex))));
  EXPECT_THAT(v.output, HasSubstr("Key Compromise"));
  EXPECT_THAT(v.output, HasSubstr("X509v3 Authority Key Identifier"));

  fs::path ca_crt = Save("a.crt", a->pem);
  fs::path cb_crt = Save("b.crt", b->pem);
  CmdResult revoked = Sh("openssl verify -crl_check -CAfile " + Q(ca_file()) + " -CRLfile " + Q(crl) + " " + Q(ca_crt));
  EXPECT_NE(revoked.exit_code, 0);
  EXPECT_THAT(revoked.output, HasSubstr("certificate revoked"));
  EXPECT_EQ(Sh("openssl verify -crl_check -CAfile " + Q(ca_file()) + " -CRLfile " + Q(crl) + " " + Q(cb_crt)).exit_code, 0);

  // Our verifier agrees.
  auto mine = VerifyPeerCertificate(a->pem, ca_->CertificatePem(), crl1->pem);
  EXPECT_EQ(mine.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(mine.status().message()), HasSubstr("revoked"));
  EXPECT_TRUE(VerifyPeerCertificate(b->pem, ca_->CertificatePem(), crl1->pem).ok());

  // Numbers keep increasing, also across a reload from disk; the CRL file is updated.
  auto crl2 = ca_->Crl();
  ASSERT_TRUE(crl2.ok());
  EXPECT_EQ(crl2->crl_number, 2u);
  auto loaded = CertificateAuthority::Load(data_dir());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_TRUE((*loaded)->IsRevoked(a->serial_hex));
  auto crl3 = (*loaded)->Crl();
  ASSERT_TRUE(crl3.ok());
  EXPECT_EQ(crl3->crl_number, 3u);
  EXPECT_EQ(ReadFile(layout::CaCrl(data_dir())), crl3->pem);
}

TEST_P(CaTest, RevokeValidatesAndRefusesDuplicates) {
  EXPECT_EQ(ca_->Revoke("xyz").code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(ca_->Revoke("0A:BC", RevocationReason::kSuperseded).ok());
  EXPECT_TRUE(ca_->IsRevoked("abc"));
  EXPECT_EQ(ca_->Revoke("0xabc").code(), absl::StatusCode::kAlreadyExists);
  // Revocations made by another process (another CertificateAuthority on the same dir) are seen.
  auto other = CertificateAuthority::Load(data_dir());
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE((*other)->Revoke("def").ok());
  auto crl = ca_->Crl();
  ASSERT_TRUE(crl.ok());
  fs::path p = Save("c.pem", crl->pem);
  CmdResult v = Sh("openssl crl -noout -text -in " + Q(p));
  EXPECT_THAT(v.output, HasSubstr("Serial Number: 0ABC"));
  EXPECT_THAT(v.output, HasSubstr("Serial Number: 0DEF"));
  EXPECT_THAT(v.output, HasSubstr("Superseded"));
}

TEST_P(CaTest, RenewKeepsNamesWithNewKey) {
  IssueRequest req = HostRequest();
  req.profile = Profile::kExternal;
  auto old = ca_->Issue(host_csr_, req);
  ASSERT_TRUE(old.ok());
  std::string new_csr = OpensslCsr(tmp_.path(), "ec -pkeyopt ec_paramgen_curve:P-256", "renew");
  auto renewed = ca_->Renew(new_csr, old->pem);
  ASSERT_TRUE(renewed.ok()) << renewed.status();
  EXPECT_NE(renewed->serial_hex, old->serial_hex);
  EXPECT_EQ(renewed->profile, Profile::kExternal);
  fs::path crt = Save("renewed.crt", renewed->pem);
  EXPECT_EQ(Sh("openssl verify -CAfile " + Q(ca_file()) + " " + Q(crt)).exit_code, 0);
  auto o = InspectCertificatePem(old->pem);
  auto n = InspectCertificatePem(renewed->pem);
  ASSERT_TRUE(o.ok() && n.ok());
  EXPECT_EQ(n->subject_cn, o->subject_cn);
  EXPECT_EQ(n->ips, o->ips);
  EXPECT_EQ(n->dns, o->dns);
  EXPECT_EQ(n->ekus, o->ekus);
  CmdResult k = Sh("openssl pkey -in " + Q(tmp_ / "renew.key") + " -pubout");
  EXPECT_EQ(Sh("openssl x509 -in " + Q(crt) + " -noout -pubkey").output, k.output);

  // A revoked certificate cannot be renewed; nor can one from another CA.
  ASSERT_TRUE(ca_->Revoke(old->serial_hex).ok());
  EXPECT_EQ(ca_->Renew(new_csr, old->pem).status().code(), absl::StatusCode::kPermissionDenied);
  TempDir other_dir;
  auto other = CertificateAuthority::Init(other_dir / "d", {});
  ASSERT_TRUE(other.ok());
  auto foreign = (*other)->Issue(host_csr_, HostRequest());
  ASSERT_TRUE(foreign.ok());
  EXPECT_EQ(ca_->Renew(new_csr, foreign->pem).status().code(), absl::StatusCode::kPermissionDenied);
}

TEST_P(CaTest, DamagedFilesGiveClearErrors) {
  std::string key = ReadFile(layout::CaKey(data_dir()));
  std::string state = ReadFile(layout::CaState(data_dir()));

  WriteFile(layout::CaKey(data_dir()), key.substr(0, key.size() / 2));
  auto r = CertificateAuthority::Load(data_dir());
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("damaged key file"));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("ca.key"));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("PEM_read_bio_PrivateKey"));
  WriteFile(layout::CaKey(data_dir()), key);

  WriteFile(layout::CaState(data_dir()), "{\"version\":1,");
  r = CertificateAuthority::Load(data_dir());
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("damaged CA state"));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("state.json"));
  WriteFile(layout::CaState(data_dir()), state);

  WriteFile(layout::CaCert(data_dir()), "garbage");
  r = CertificateAuthority::Load(data_dir());
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("damaged certificate file"));

  // A key that does not belong to the certificate.
  auto other = GenerateKey(GetParam());
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE(SavePrivateKey(layout::CaKey(data_dir()), other->get()).ok());
  WriteFile(layout::CaCert(data_dir()), ca_->CertificatePem());
  r = CertificateAuthority::Load(data_dir());
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("X509_check_private_key"));

  r = CertificateAuthority::Load(tmp_ / "nowhere");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
}

TEST_P(CaTest, StoreCallbackSeesEveryCertificateAndCanFailIssue) {
  std::atomic<int> stored{0};
  ca_->SetStore([&](const IssuedCert& c) {
    if (c.common_name == "refuse") return absl::InternalError("store full");
    ++stored;
    return absl::OkStatus();
  });
  ASSERT_TRUE(ca_->Issue(host_csr_, HostRequest()).ok());
  IssueRequest r = HostRequest();
  r.common_name = "refuse";
  auto failed = ca_->Issue(host_csr_, r);
  EXPECT_EQ(failed.status().message(), "store full");
  EXPECT_EQ(stored.load(), 1);
}

TEST_P(CaTest, IssueIsThreadSafe) {
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  std::vector<std::string> pems(40);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        auto c = ca_->Issue(host_csr_, HostRequest());
        if (c.ok()) {
          ++ok;
          pems[t * 10 + i] = c->pem;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), 40);
  std::string all;
  for (const auto& p : pems) all += p;
  fs::path f = Save("all.pem", pems[17]);
  EXPECT_EQ(Sh("openssl verify -CAfile " + Q(ca_file()) + " " + Q(f)).exit_code, 0);
}

TEST_P(CaTest, MakeCsrProducesCsrOpensslAccepts) {
  auto key = GenerateKey(GetParam());
  ASSERT_TRUE(key.ok());
  auto csr = MakeCsrPem(key->get(), "agent-7");
  ASSERT_TRUE(csr.ok()) << csr.status();
  fs::path p = Save("agent.csr", *csr);
  CmdResult v = Sh("openssl req -verify -noout -subject -in " + Q(p));
  EXPECT_EQ(v.exit_code, 0) << v.output;
  EXPECT_THAT(v.output, HasSubstr("agent-7"));
  EXPECT_TRUE(ParseAndVerifyCsr(*csr).ok());
  // Keys round-trip through PEM.
  auto pem = PrivateKeyToPem(key->get());
  ASSERT_TRUE(pem.ok());
  auto back = PrivateKeyFromPem(*pem);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(KeyTypeOf(back->get()).value(), GetParam());
}

INSTANTIATE_TEST_SUITE_P(KeyTypes, CaTest, ::testing::Values(KeyType::kEcdsaP256, KeyType::kRsa3072),
                         [](const ::testing::TestParamInfo<KeyType>& p) {
                           return p.param == KeyType::kEcdsaP256 ? std::string("EcdsaP256") : std::string("Rsa3072");
                         });

}  // namespace
}  // namespace ipfleet::ca
