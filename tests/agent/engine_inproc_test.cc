// The adapter over the real IKE engine (label inproc): two EngineAdapters in one process, each with
// its own fake kernel, negotiate over UDP on loopback (127.0.0.1 <-> 127.0.0.2, port 500, so root
// is needed; skipped otherwise) with certificates from the fleet CA: the tunnel comes up with
// matching SPIs on both ends, a CHILD_SA flush and a rekey each give new SPIs on the same IKE_SA,
// and removing the connection deletes the SAs on the peer too.
#include <unistd.h>

#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "ipfleet/agent/sync/ike_adapter.h"
#include "ipfleet/agent/sync/translate.h"
#include "ipfleet/ca/csr.h"
#include "ipfleet/ca/keys.h"
#include "fake_ike.h"
#include "test_support.h"

namespace ipfleet::agent {
namespace {

using testing::TestPki;

HostCredentials Issue(TestPki& pki, const std::string& name, const std::string& ip) {
  auto key = ca::GenerateKey(ca::KeyType::kEcdsaP256);
  auto csr = ca::MakeCsrPem(key->get(), name);
  ca::IssueRequest req;
  req.common_name = name;
  req.ips = {ip};
  req.profile = ca::Profile::kHost;
  auto cert = pki.authority->Issue(*csr, req);
  EXPECT_TRUE(cert.ok()) << cert.status();
  return HostCredentials{cert->pem, *ca::PrivateKeyToPem(key->get())};
}

TunnelConfig Tunnel(const std::string& host, const std::string& peer, const std::string& local, const std::string& remote,
                    const std::string& lnet, const std::string& rnet, bool initiator) {
  v1::PolicyBundle b;
  b.set_host(host);
  auto* t = testing::AddTunnel(b, "a--b", peer, local, remote, lnet, rnet);
  t->mutable_local()->set_identity("ip:" + local);
  t->mutable_remote()->set_identity("ip:" + remote);
  t->set_initiator(initiator);
  t->set_start_action(initiator ? v1::START_ACTION_START : v1::START_ACTION_NONE);
  auto st = TranslateBundle(b);
  EXPECT_TRUE(st.ok()) << st.status();
  return st->tunnels.at(0);
}

template <typename F>
bool WaitFor(F f, int ms = 10000) {
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < end) {
    if (f()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

std::optional<ChildSaView> Installed(EngineAdapter& e) {
  auto v = e.Query("a--b");
  if (!v || v->phase != SaPhase::kEstablished) return std::nullopt;
  for (const auto& c : v->children) {
    if (c.phase == SaPhase::kEstablished) return c;
  }
  return std::nullopt;
}

TEST(EngineInprocTest, TwoAdaptersNegotiateFlushAndDelete) {
  if (geteuid() != 0) GTEST_SKIP() << "binds UDP port 500";
  auto pki = TestPki::Make();
  const HostCredentials ca_creds_a = Issue(*pki, "host-a", "127.0.0.1");
  const HostCredentials ca_creds_b = Issue(*pki, "host-b", "127.0.0.2");
  kernel::FakeXfrm xa, xb;
  EngineAdapter a(xa, [&] { return ca_creds_a; });
  EngineAdapter b(xb, [&] { return ca_creds_b; });
  ASSERT_TRUE(a.Start().ok());
  ASSERT_TRUE(b.Start().ok());
  ConnectionOptions o;
  o.policy_priority = 10000;
  o.ca_chain_pem = {pki->authority->CertificatePem()};
  auto crl = pki->authority->Crl();
  ASSERT_TRUE(crl.ok());
  o.crl_pem = crl->pem;
  auto tb = Tunnel("host-b", "host-a", "127.0.0.2", "127.0.0.1", "198.51.100.2/32", "198.51.100.1/32", false);
  auto ta = Tunnel("host-a", "host-b", "127.0.0.1", "127.0.0.2", "198.51.100.1/32", "198.51.100.2/32", true);
  absl::Status sb = b.AddConnection(tb, o);
  if (absl::IsUnavailable(sb)) GTEST_SKIP() << "cannot bind: " << sb;
  ASSERT_TRUE(sb.ok()) << sb;
  // Inside a batch (a bundle's apply) the connection is only recorded; EndBatch loads and starts it.
  a.BeginBatch();
  ASSERT_TRUE(a.AddConnection(ta, o).ok());
  EXPECT_FALSE(a.Query("a--b").has_value()) << "initiated before the batch ended";
  ASSERT_TRUE(a.EndBatch().ok());

  ASSERT_TRUE(WaitFor([&] { return Installed(a) && Installed(b); })) << "tunnel did not come up";
  auto ca1 = *Installed(a);
  auto cb1 = *Installed(b);
  EXPECT_EQ(ca1.spi_out, cb1.spi_in);
  EXPECT_EQ(ca1.spi_in, cb1.spi_out);
  EXPECT_EQ(a.Query("a--b")->remote_identity.empty(), false);

  const uint64_t ike_spi_i = a.Query("a--b")->spi_i, ike_spi_r = a.Query("a--b")->spi_r;
  // The IKE_SA the tunnel runs on (initiator's and responder's SPI seen from both ends).
  auto same_ike_sa = [&] {
    auto x = a.Query("a--b");
    auto y = b.Query("a--b");
    return x && y && x->spi_i == ike_spi_i && x->spi_r == ike_spi_r && y->spi_i == ike_spi_i && y->spi_r == ike_spi_r;
  };
  // A new CHILD_SA pair on both ends, none of whose SPIs existed before.
  auto new_pair = [&](const ChildSaView& old_a, const ChildSaView& old_b) {
    return WaitFor([&] {
      auto x = Installed(a);
      auto y = Installed(b);
      return x && y && x->spi_in != old_a.spi_in && y->spi_in != old_b.spi_in && x->spi_out == y->spi_in &&
             x->spi_in == y->spi_out;
    });
  };

  // flush-sa: delete the CHILD_SA (the peer is told) and renegotiate it on the same IKE_SA
  // (CREATE_CHILD_SA, no new IKE_SA_INIT/IKE_AUTH).
  ASSERT_TRUE(a.DeleteChildSas("a--b", 0).ok());
  ASSERT_TRUE(a.Initiate("a--b").ok());
  ASSERT_TRUE(new_pair(ca1, cb1)) << "no new CHILD_SA pair after the flush";
  EXPECT_TRUE(same_ike_sa()) << "flush-sa replaced the IKE_SA instead of renegotiating the CHILD_SA on it";
  EXPECT_TRUE(WaitFor([&] { return a.Query("a--b")->children.size() == 1 && b.Query("a--b")->children.size() == 1; }))
      << "the flushed CHILD_SA is still listed";

  // rekey: CREATE_CHILD_SA with REKEY_SA on the same IKE_SA; the old pair retires.
  auto ca2 = *Installed(a);
  auto cb2 = *Installed(b);
  ASSERT_TRUE(a.Rekey("a--b").ok());
  ASSERT_TRUE(new_pair(ca2, cb2)) << "no new CHILD_SA pair after the rekey";
  EXPECT_TRUE(same_ike_sa()) << "rekey replaced the IKE_SA";
  EXPECT_TRUE(WaitFor([&] {
    auto x = a.Query("a--b");
    return x && x->children.size() == 1 && x->children[0].spi_in != ca2.spi_in;
  })) << "the rekeyed CHILD_SA was not retired";

  // Removing the connection deletes the IKE_SA on both ends.
  ASSERT_TRUE(a.RemoveConnection("a--b").ok());
  EXPECT_TRUE(WaitFor([&] { return !b.Query("a--b").has_value(); })) << "peer kept its IKE_SA";
  a.Stop();
  b.Stop();
  size_t owned_a = 0;
  for (const auto& s : testing::Sas(xa)) owned_a += kernel::IsOwned(s.params);
  EXPECT_EQ(owned_a, 0u);
}

}  // namespace
}  // namespace ipfleet::agent
