// Two controller replicas share one PostgreSQL inventory but each keeps its own copy of the CA
// (key, certificate, state file with the revocations its CRLs are made of). A certificate revoked
// through one replica must be in the CRL the other signs bundles with, or a failover would make
// the fleet trust a revoked host again.
#include <gtest/gtest.h>
#include <openssl/x509.h>

#include <filesystem>

#include "ipfleet/ca/authority.h"
#include "ipfleet/ca/cert.h"
#include "ipfleet/controller/api/pki.h"
#include "ipfleet/controller/inventory/open_store.h"
#include "postgres_server.h"

namespace ipfleet::controller {
namespace {

namespace fs = std::filesystem;

bool CrlLists(const std::string& crl_pem, const std::string& serial_hex) {
  auto crl = ca::ParseCrlPem(crl_pem);
  if (!crl.ok()) return false;
  STACK_OF(X509_REVOKED)* revoked = X509_CRL_get_REVOKED(crl->get());
  for (int i = 0; i < sk_X509_REVOKED_num(revoked); ++i) {
    const ASN1_INTEGER* serial = X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(revoked, i));
    absl::StatusOr<std::string> hex = ca::SerialHex(serial);
    if (hex.ok() && *hex == serial_hex) return true;
  }
  return false;
}

TEST(PkiReplicasTest, ARevocationThroughOneReplicaReachesTheOthersCrl) {
  if (std::string why = testing::PostgresServer::MissingReason(); !why.empty()) GTEST_SKIP() << why;
  auto server = testing::PostgresServer::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  auto uri = (*server)->CreateDatabase("pki_replicas");
  ASSERT_TRUE(uri.ok()) << uri.status();

  fs::path root = fs::temp_directory_path() / ("ipfleet-pki-replicas-" + std::to_string(::getpid()));
  fs::remove_all(root);
  ca::ControllerInitOptions init;
  init.addresses = {"127.0.0.1"};
  ASSERT_TRUE(ca::InitControllerPki(root / "a", init).ok());
  for (const char* replica : {"b", "c"}) {  // as docs/high-availability.md says; c starts later
    fs::create_directories(root / replica);
    fs::copy(root / "a" / "ca", root / replica / "ca", fs::copy_options::recursive);
  }

  auto ca_a = ca::CertificateAuthority::Load(root / "a");
  auto ca_b = ca::CertificateAuthority::Load(root / "b");
  ASSERT_TRUE(ca_a.ok() && ca_b.ok());
  auto store_a = inventory::OpenStore(*uri, root / "a" / "unused.db");
  auto store_b = inventory::OpenStore(*uri, root / "b" / "unused.db");
  ASSERT_TRUE(store_a.ok() && store_b.ok());
  Pki a(**ca_a, **store_a, [] { return int64_t{1'800'000'000}; });
  Pki b(**ca_b, **store_b, [] { return int64_t{1'800'000'000}; });
  ASSERT_TRUE(a.Start().ok());
  ASSERT_TRUE(b.Start().ok());

  const std::string serial = "5eed0001";
  inventory::Certificate host;
  host.serial = serial;
  host.name = "web1";
  host.kind = "host";
  ASSERT_TRUE((*store_a)->Transact([&](inventory::Tx& tx) { return tx.PutCertificate(host); }).ok());
  ASSERT_TRUE(a.Revoke(serial, "keyCompromise", "admin:test").ok());
  EXPECT_TRUE(CrlLists(a.CurrentCrl(), serial));
  EXPECT_FALSE(CrlLists(b.CurrentCrl(), serial));  // b has not looked yet

  const uint64_t before = b.CrlNumber();
  ASSERT_TRUE(b.SyncRevocations().ok());
  EXPECT_TRUE(CrlLists(b.CurrentCrl(), serial));
  EXPECT_TRUE(b.authority().IsRevoked(serial));
  EXPECT_GT(b.CrlNumber(), before);

  // Nothing new: the CRL stays as it is (no new number per wave).
  const uint64_t after = b.CrlNumber();
  ASSERT_TRUE(b.SyncRevocations().ok());
  EXPECT_EQ(b.CrlNumber(), after);

  // A replica that starts later, from a copy made before the revocation, picks it up at start.
  auto ca_c = ca::CertificateAuthority::Load(root / "c");
  ASSERT_TRUE(ca_c.ok()) << ca_c.status();
  auto store_c = inventory::OpenStore(*uri, root / "c" / "unused.db");
  ASSERT_TRUE(store_c.ok());
  Pki c(**ca_c, **store_c, [] { return int64_t{1'800'000'000}; });
  ASSERT_TRUE(c.Start().ok());
  EXPECT_TRUE(CrlLists(c.CurrentCrl(), serial));
  fs::remove_all(root);
}

}  // namespace
}  // namespace ipfleet::controller
