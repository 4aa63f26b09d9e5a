// End-to-end tests of the offline subcommands, running the built ipfleet-controller binary:
// init, ca issue, ca revoke, ca crl — judged by the openssl and sqlite3 command lines; failures
// must be clear, non-zero, and leave the data directory exactly as it was.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <absl/strings/ascii.h>

#include "test_util.h"

#ifndef IPFLEET_CONTROLLER_BIN
#error "IPFLEET_CONTROLLER_BIN must name the ipfleet-controller binary"
#endif

namespace ipfleet::ca {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using namespace ::ipfleet::ca::testing;
namespace fs = std::filesystem;

const std::string kBin = IPFLEET_CONTROLLER_BIN;

CmdResult Ctl(const std::string& args) { return Sh(Q(kBin) + " " + args); }

std::string Serial(const fs::path& crt) {
  std::string s = Sh("openssl x509 -noout -serial -in " + Q(crt)).output;
  s = s.substr(s.find('=') + 1);
  s.erase(s.find_last_not_of("\n") + 1);
  return s;
}

TEST(OfflineCliTest, HelpTextsDescribeTheCommands) {
  CmdResult r = Ctl("--help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("init"));
  EXPECT_THAT(r.output, HasSubstr("ca"));
  r = Ctl("init --help");
  EXPECT_EQ(r.exit_code, 0);
  for (const char* s : {"--data-dir", "--ca-key", "ecdsa-p256", "rsa-3072", "--name", "--address", "Refuses"}) {
    EXPECT_THAT(r.output, HasSubstr(s));
  }
  r = Ctl("ca issue --help");
  EXPECT_EQ(r.exit_code, 0);
  for (const char* s : {"--csr", "--name", "--ip", "--dns", "--days", "--out", "ignored"}) {
    EXPECT_THAT(r.output, HasSubstr(s));
  }
  r = Ctl("ca revoke --help");
  EXPECT_THAT(r.output, HasSubstr("keyCompromise"));
  r = Ctl("ca crl --help");
  EXPECT_THAT(r.output, HasSubstr("--out"));
  EXPECT_NE(Ctl("").exit_code, 0);
  EXPECT_NE(Ctl("ca").exit_code, 0);
  EXPECT_NE(Ctl("init").exit_code, 0);  // --data-dir is required
}

class OfflineFlowTest : public ::testing::TestWithParam<std::string> {
 protected:
  fs::path Dir() const { return tmp_ / "data"; }
  std::string CaFile() const { return (Dir() / "ca" / "ca.crt").string(); }
  void Init() {
    CmdResult r = Ctl("init --data-dir " + Q(Dir()) + " --ca-key " + GetParam() +
                      " --name 'Flow CA' --address 192.0.2.1 --address ctl.example.net");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_THAT(r.output, HasSubstr("CA fingerprint"));
  }
  TempDir tmp_;
};

TEST_P(OfflineFlowTest, InitIssueRevokeCrl) {
  Init();
  // init: CA, key 0600, controller TLS cert with --address SANs, policy signer, inventory.
  struct stat st {};
  ASSERT_EQ(stat((Dir() / "ca" / "ca.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  CmdResult ca_text = Sh("openssl x509 -noout -text -in " + Q(CaFile()));
  EXPECT_THAT(ca_text.output, HasSubstr("Subject: CN = Flow CA"));
  EXPECT_THAT(ca_text.output, HasSubstr(GetParam() == "rsa-3072" ? "(3072 bit)" : "P-256"));
  CmdResult tls = Sh("openssl verify -purpose sslserver -CAfile " + Q(CaFile()) + " " + Q(Dir() / "tls" / "controller.crt"));
  EXPECT_EQ(tls.exit_code, 0) << tls.output;
  CmdResult tls_text = Sh("openssl x509 -noout -ext subjectAltName -in " + Q(Dir() / "tls" / "controller.crt"));
  EXPECT_THAT(tls_text.output, HasSubstr("IP Address:192.0.2.1"));
  EXPECT_THAT(tls_text.output, HasSubstr("DNS:ctl.example.net"));
  EXPECT_EQ(Sh("openssl verify -CAfile " + Q(CaFile()) + " " + Q(Dir() / "ca" / "policy-signer.crt")).exit_code, 0);
  ASSERT_TRUE(fs::exists(Dir() / "inventory.db"));
  CmdResult db = Sh("sqlite3 " + Q(Dir() / "inventory.db") + " 'PRAGMA user_version; SELECT kind FROM certificates ORDER BY kind;'");
  EXPECT_EQ(db.exit_code, 0) << db.output;
  EXPECT_THAT(db.output, HasSubstr("controller\npolicy-signer"));

  // issue: subject and SANs from the flags, never from the (hostile) CSR.
  OpensslCsr(tmp_.path(), "ec -pkeyopt ec_paramgen_curve:P-256", "web1");
  fs::path crt = tmp_ / "web1.crt";
  CmdResult issue = Ctl("ca issue --data-dir " + Q(Dir()) + " --csr " + Q(tmp_ / "web1.csr") +
                        " --name web1 --ip 192.0.2.10 --ip 2001:db8::a --dns web1.example.net --days 30 --out " + Q(crt));
  ASSERT_EQ(issue.exit_code, 0) << issue.output;
  CmdResult v = Sh("openssl verify -CAfile " + Q(CaFile()) + " " + Q(crt));
  EXPECT_EQ(v.exit_code, 0) << v.output;
  CmdResult text = Sh("openssl x509 -noout -text -in " + Q(crt));
  EXPECT_THAT(text.output, HasSubstr("Subject: CN = web1"));
  EXPECT_THAT(text.output, HasSubstr("IP Address:192.0.2.10, IP Address:2001:DB8:0:0:0:0:0:A, DNS:web1.example.net"));
  EXPECT_THAT(text.output, HasSubstr("ipsec Internet Key Exchange, TLS Web Client Authentication"));
  EXPECT_THAT(text.output, Not(HasSubstr("evil")));
  EXPECT_EQ(Sh("openssl x509 -noout -checkend " + std::to_string(29 * 86400) + " -in " + Q(crt)).exit_code, 0);
  EXPECT_NE(Sh("openssl x509 -noout -checkend " + std::to_string(31 * 86400) + " -in " + Q(crt)).exit_code, 0);
  std::string serial = Serial(crt);
  // The inventory spells serials like ca::SerialHex: lower case, no leading zeros.
  std::string stored_serial = absl::AsciiStrToLower(serial);
  stored_serial.erase(0, std::min(stored_serial.find_first_not_of('0'), stored_serial.size() - 1));
  db = Sh("sqlite3 " + Q(Dir() / "inventory.db") + " \"SELECT name, kind FROM certificates WHERE serial='" +
           stored_serial + "'\"");
  EXPECT_THAT(db.output, HasSubstr("web1|host"));

  // revoke + crl: openssl accepts the CRL and it lists the serial; verify -crl_check refuses.
  CmdResult rev = Ctl("ca revoke --data-dir " + Q(Dir()) + " --serial " + serial + " --reason keyCompromise");
  ASSERT_EQ(rev.exit_code, 0) << rev.output;
  EXPECT_THAT(rev.output, Not(HasSubstr("warning")));
  CmdResult again = Ctl("ca revoke --data-dir " + Q(Dir()) + " --serial " + serial);
  EXPECT_NE(again.exit_code, 0);
  EXPECT_THAT(again.output, HasSubstr("already revoked"));
  fs::path crl = tmp_ / "crl.pem";
  CmdResult c = Ctl("ca crl --data-dir " + Q(Dir()) + " --out " + Q(crl));
  ASSERT_EQ(c.exit_code, 0) << c.output;
  CmdResult cv = Sh("openssl crl -noout -text -CAfile " + Q(CaFile()) + " -verify -in " + Q(crl));
  EXPECT_EQ(cv.exit_code, 0) << cv.output;
  EXPECT_THAT(cv.output, HasSubstr("verify OK"));
  EXPECT_THAT(cv.output, HasSubstr("Serial Number: " + serial));
  EXPECT_THAT(cv.output, HasSubstr("Key Compromise"));
  EXPECT_THAT(cv.output, HasSubstr("Next Update"));
  CmdResult vr = Sh("openssl verify -crl_check -CAfile " + Q(CaFile()) + " -CRLfile " + Q(crl) + " " + Q(crt));
  EXPECT_NE(vr.exit_code, 0);
  EXPECT_THAT(vr.output, HasSubstr("certificate revoked"));
  db = Sh("sqlite3 " + Q(Dir() / "inventory.db") + " 'SELECT * FROM revocations'");
  EXPECT_THAT(absl::AsciiStrToLower(db.output), HasSubstr(stored_serial));

  // A second CRL gets the next number.
  CmdResult c2 = Ctl("ca crl --data-dir " + Q(Dir()) + " --out " + Q(tmp_ / "crl2.pem"));
  ASSERT_EQ(c2.exit_code, 0);
  EXPECT_THAT(Sh("openssl crl -noout -crlnumber -in " + Q(tmp_ / "crl2.pem")).output, HasSubstr("crlNumber=0x02"));
}

TEST_P(OfflineFlowTest, InitRefusesToOverwrite) {
  Init();
  Snapshot before = TakeSnapshot(Dir());
  CmdResult r = Ctl("init --data-dir " + Q(Dir()) + " --ca-key " + GetParam());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("already exists"));
  EXPECT_EQ(TakeSnapshot(Dir()), before);
}

INSTANTIATE_TEST_SUITE_P(KeyTypes, OfflineFlowTest, ::testing::Values("ecdsa-p256", "rsa-3072"),
                         [](const ::testing::TestParamInfo<std::string>& p) {
                           return p.param == "ecdsa-p256" ? std::string("EcdsaP256") : std::string("Rsa3072");
                         });

class OfflineBadInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CmdResult r = Ctl("init --data-dir " + Q(Dir()));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    good_csr_ = tmp_ / "good.csr";
    OpensslCsr(tmp_.path(), "ec -pkeyopt ec_paramgen_curve:P-256", "good");
  }
  fs::path Dir() const { return tmp_ / "data"; }

  // Runs a command that must fail with `message`, changing nothing in the data dir and not
  // creating `out`.
  void ExpectFailsCleanly(const std::string& args, const std::string& message, const fs::path& out = {}) {
    Snapshot before = TakeSnapshot(Dir());
    CmdResult r = Ctl(args);
    EXPECT_NE(r.exit_code, 0) << args;
    EXPECT_THAT(r.output, HasSubstr(message)) << args;
    EXPECT_EQ(TakeSnapshot(Dir()), before) << args;
    if (!out.empty()) {
      EXPECT_FALSE(fs::exists(out)) << args;
    }
  }

  std::string Issue(const fs::path& csr, const fs::path& out, const std::string& extra = "") {
    return "ca issue --data-dir " + Q(Dir()) + " --csr " + Q(csr) + " --name web1 --ip 192.0.2.10 --out " + Q(out) +
           " " + extra;
  }

  TempDir tmp_;
  fs::path good_csr_;
};

TEST_F(OfflineBadInputTest, IssueWithBadCsrWritesNothing) {
  fs::path out = tmp_ / "out.crt";
  fs::path broken = tmp_ / "broken.csr";
  WriteFile(broken, BreakCsrSignature(tmp_.path(), ReadFile(good_csr_)));
  ExpectFailsCleanly(Issue(broken, out), "X509_REQ_verify", out);

  fs::path garbage = tmp_ / "garbage.csr";
  WriteFile(garbage, "-----BEGIN CERTIFICATE REQUEST-----\nnot base64 at all\n-----END CERTIFICATE REQUEST-----\n");
  ExpectFailsCleanly(Issue(garbage, out), "PEM_read_bio_X509_REQ", out);

  OpensslCsr(tmp_.path(), "rsa:1024", "weak");
  ExpectFailsCleanly(Issue(tmp_ / "weak.csr", out), "refused key type: RSA 1024 bits", out);
  OpensslCsr(tmp_.path(), "ed25519", "ed");
  ExpectFailsCleanly(Issue(tmp_ / "ed.csr", out), "refused key type", out);

  ExpectFailsCleanly(Issue(tmp_ / "missing.csr", out), "missing.csr", out);
}

TEST_F(OfflineBadInputTest, IssueWithBadArgumentsWritesNothing) {
  fs::path out = tmp_ / "out.crt";
  ExpectFailsCleanly(Issue(good_csr_, out, "--ip 999.1.1.1"), "not an IPv4 or IPv6 address", out);
  ExpectFailsCleanly(Issue(good_csr_, out, "--dns 'bad name'"), "not a valid DNS name", out);
  ExpectFailsCleanly(Issue(good_csr_, out, "--days 0"), "days", out);
  ExpectFailsCleanly(Issue(good_csr_, tmp_ / "nodir" / "x.crt"), "does not exist", tmp_ / "nodir");
  ExpectFailsCleanly(Issue(good_csr_, tmp_.path()), "is a directory");
}

TEST_F(OfflineBadInputTest, UnusableDataDirsWriteNothing) {
  fs::path out = tmp_ / "out.crt";
  // Not a data directory at all.
  ExpectFailsCleanly("ca issue --data-dir " + Q(tmp_ / "none") + " --csr " + Q(good_csr_) + " --name a --out " + Q(out),
                     "does not exist", out);
  EXPECT_FALSE(fs::exists(tmp_ / "none"));
  // A regular file where the data directory should be.
  WriteFile(tmp_ / "afile", "x");
  ExpectFailsCleanly("ca crl --data-dir " + Q(tmp_ / "afile") + " --out " + Q(out), "afile", out);
  // Damaged CA key.
  std::string key = ReadFile(Dir() / "ca" / "ca.key");
  WriteFile(Dir() / "ca" / "ca.key", "-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n");
  ExpectFailsCleanly(Issue(good_csr_, out), "damaged key file", out);
  ExpectFailsCleanly("ca revoke --data-dir " + Q(Dir()) + " --serial 01", "damaged key file");
  WriteFile(Dir() / "ca" / "ca.key", key);
  // Damaged state file.
  std::string state = ReadFile(Dir() / "ca" / "state.json");
  WriteFile(Dir() / "ca" / "state.json", "{ broken");
  ExpectFailsCleanly("ca crl --data-dir " + Q(Dir()) + " --out " + Q(out), "damaged CA state", out);
  WriteFile(Dir() / "ca" / "state.json", state);

  // init where nothing can be created: below a regular file, and in /proc.
  CmdResult r = Ctl("init --data-dir " + Q(tmp_ / "afile" / "sub"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("mkdir"));
  r = Ctl("init --data-dir /proc/ipfleet-ca-test-dir");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_FALSE(fs::exists("/proc/ipfleet-ca-test-dir"));
  // Bad flags for init create nothing.
  r = Ctl("init --data-dir " + Q(tmp_ / "fresh") + " --ca-key dsa-1024");
  EXPECT_NE(r.exit_code, 0);
  r = Ctl("init --data-dir " + Q(tmp_ / "fresh") + " --address 'bad host!'");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("not a valid DNS name"));
  EXPECT_FALSE(fs::exists(tmp_ / "fresh"));
}

TEST_F(OfflineBadInputTest, RevokeAndCrlRefuseBadArguments) {
  ExpectFailsCleanly("ca revoke --data-dir " + Q(Dir()) + " --serial xyz", "not hexadecimal");
  ExpectFailsCleanly("ca revoke --data-dir " + Q(Dir()) + " --serial 01 --reason bored", "unknown revocation reason");
  ExpectFailsCleanly("ca crl --data-dir " + Q(Dir()) + " --out " + Q(tmp_ / "no" / "crl.pem"), "does not exist");
  // An unknown serial is revoked with a warning (it may come from an older controller).
  CmdResult r = Ctl("ca revoke --data-dir " + Q(Dir()) + " --serial 0A0B0C --reason superseded");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("warning"));
}

}  // namespace
}  // namespace ipfleet::ca
