// The engine-vs-charon fixture shared by the interop tests: topology (a veth pair by default; NAT tests
// override MakeTopology), charon in one namespace, ipfleet-ike-peer in the other, both views, and the work
// dir kept with both logs printed on failure.
#pragma once

#include <gtest/gtest.h>

#include <iostream>

#include <nlohmann/json.hpp>

#include "harness/charon.h"
#include "harness/ike_peer.h"
#include "harness/nat_netns.h"
#include "harness/netns.h"
#include "harness/pki.h"
#include "harness/swanctl.h"
#include "harness/test_util.h"
#include "harness/workdir.h"

namespace ipfleet::interop {

using namespace std::chrono_literals;

constexpr const char* kPsk = "interop-engine-psk-9f3a71c2d4";
constexpr const char* kOurId = "host1.example";
constexpr const char* kCharonId = "host2.example";

struct Suite {
  const char* name;
  const char* ike;
  const char* esp;
  const char* encr_alg;   // charon's names
  const char* integ_alg;  // "" for AEAD
  const char* dh_group;
};
const Suite kGcm = {"gcm_x25519", "aes128gcm16-prfsha256-x25519", "aes128gcm16", "AES_GCM_16", "", "CURVE_25519"};
const Suite kCbc = {"cbc_modp2048", "aes128-sha256-modp2048", "aes128-sha256", "AES_CBC", "HMAC_SHA2_256_128",
                    "MODP_2048"};

inline size_t Count(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (size_t p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) ++n;
  return n;
}

class EngineInterop : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!HaveRoot()) GTEST_SKIP() << "interop tests need root (network namespaces)";
    std::string why;
    if (!CharonAvailable(&why)) GTEST_SKIP() << why;
    peer_bin_ = ConfiguredIkePeer();
    if (peer_bin_.empty()) GTEST_SKIP() << "ipfleet-ike-peer not built (agent/ike/tools)";
    ASSERT_TRUE(work_.ok());
    MakeTopology();
    if (HasFatalFailure()) return;
    auto charon = Charon::Start({.netns = theirs_.ns, .dir = work_.path() / "charon", .extra = charon_extra_});
    ASSERT_OK(charon);
    charon_ = *std::move(charon);
  }

  void TearDown() override {
    if (HasFailure()) {
      work_.Keep();
      std::cerr << "interop workdir kept: " << work_.path() << "\n";
      if (ours_) std::cerr << "our log tail:" << ours_->LogTail(40) << "\n";
      if (charon_) std::cerr << "charon log:" << charon_->LogLines({"[IKE]", "[ENC]", "[CFG]", "[NET]"}, 60) << "\n";
    }
    ours_.reset();
    charon_.reset();
    net_.reset();
    nat_.reset();
  }

  // Default topology: two namespaces on one veth (netns.h), ours in a, charon in b.
  virtual void MakeTopology() {
    auto net = NetnsPair::Create();
    ASSERT_OK(net);
    net_ = *std::move(net);
    ours_side_ = net_->a();
    theirs_ = net_->b();
    ours_seen_as_ = ours_side_.addr;
    theirs_seen_as_ = theirs_.addr;
  }

  void MakeCerts() {
    if (pki_) return;
    auto pki = MakePki(work_.path() / "pki",
                       {{"host1", ours_side_.addr, kOurId}, {"host2", theirs_.addr, kCharonId}},
                       ConfiguredController());
    ASSERT_OK(pki);
    pki_ = std::make_unique<Pki>(*std::move(pki));
    if (pki_->issuer != "ipfleet-controller") {
      std::cerr << "WARNING: certificates from the openssl CLI fallback, ipfleet-controller not built\n";
    }
  }

  SwanctlConn CharonConn(const Suite& s, bool psk) {
    SwanctlConn c;
    c.local_addr = theirs_.addr;
    c.remote_addr = ours_seen_as_;
    c.ike_proposals = s.ike;
    c.esp_proposals = s.esp;
    c.psk = psk;
    c.local_id = kCharonId;
    c.remote_id = kOurId;
    c.local_cert = "host2.crt";
    c.local_ts = theirs_.subnet + "/32";
    c.remote_ts = ours_side_.subnet + "/32";
    c.child_rekey_time_s = charon_child_rekey_s_;
    c.rekey_time_s = charon_ike_rekey_s_;
    c.extra = charon_conn_extra_;
    return c;
  }

  IkePeerTunnel OurTunnel(const Suite& s, bool psk) {
    IkePeerTunnel t;
    t.local = ours_side_.addr;
    t.remote = theirs_seen_as_;
    t.local_id = kOurId;
    t.remote_id = kCharonId;
    t.psk = psk;
    t.psk_secret = kPsk;
    if (!psk) {
      t.cert = pki_->hosts[0].chain.empty() ? pki_->hosts[0].cert : pki_->hosts[0].chain;
      t.key = pki_->hosts[0].key;
      t.ca = pki_->ca_cert;
    }
    t.ike_proposal = s.ike;
    t.esp_proposal = s.esp;
    t.local_ts = ours_side_.subnet + "/32";
    t.remote_ts = theirs_.subnet + "/32";
    t.extra = our_tunnel_extra_;
    t.child_extra = our_child_extra_;
    return t;
  }

  void LoadCharon(const SwanctlConn& conn, const std::string& psk = kPsk) {
    SwanctlSecrets secrets;
    CharonCreds creds;
    if (conn.psk) {
      secrets = {{kOurId, kCharonId}, psk};
    } else {
      creds = {{pki_->hosts[1].cert}, {pki_->ca_cert}, {pki_->hosts[1].key}, {}};
      // Intermediates (MakeChainPki) go with the root: charon sends the ones under its end-entity cert.
      creds.cacerts.insert(creds.cacerts.end(), pki_->intermediates.begin(), pki_->intermediates.end());
    }
    ASSERT_OK(charon_->Load(RenderSwanctlConf({conn}, secrets), creds));
  }

  void StartOurs(const IkePeerTunnel& t, bool initiate, int retransmit_ms = 1000, int tries = 3) {
    IkePeerOptions o;
    o.binary = peer_bin_;
    o.netns = ours_side_.ns;
    o.dir = work_.path() / "ours";
    o.listen = ours_side_.addr;
    o.tunnels = {t};
    o.settings = our_settings_;
    o.initiate = initiate;
    o.retransmit_timeout_ms = retransmit_ms;
    o.retransmit_tries = tries;
    auto p = IkePeer::Start(o);
    ASSERT_OK(p);
    ours_ = *std::move(p);
  }

  // Sets up and establishes one tunnel; leaves both views in *ours / *theirs.
  void Establish(const Suite& s, bool psk, bool ours_initiate, std::vector<OurIkeSa>* ours,
                 std::vector<IkeSaView>* theirs, int charon_dpd_s = 0, int our_dpd_s = 0) {
    if (!psk) MakeCerts();
    if (HasFatalFailure()) return;
    SwanctlConn conn = CharonConn(s, psk);
    conn.dpd_delay_s = charon_dpd_s;
    LoadCharon(conn);
    if (HasFatalFailure()) return;
    IkePeerTunnel t = OurTunnel(s, psk);
    t.dpd_interval_s = our_dpd_s;
    StartOurs(t, ours_initiate);
    if (HasFatalFailure()) return;
    if (!ours_initiate) {
      ASSERT_OK(charon_->Initiate("c", 10s)) << ours_->LogTail();
    }
    auto o = ours_->WaitSas(OursOneEstablished, 10s);
    ASSERT_OK(o) << ours_->LogTail();
    auto c = charon_->WaitSas(OneEstablished, 5s);
    ASSERT_OK(c);
    *ours = *std::move(o);
    *theirs = *std::move(c);
  }

  // Both ends describe the same IKE_SA and CHILD_SA pair.
  void ExpectAgree(const OurIkeSa& ours, const IkeSaView& theirs, const Suite& s, bool ours_initiated) {
    EXPECT_EQ(theirs.state, "ESTABLISHED");
    EXPECT_EQ(theirs.initiator, ours_initiated ? "" : "yes");
    EXPECT_EQ(ours.initiator, ours_initiated);
    EXPECT_EQ(theirs.encr_alg, s.encr_alg);
    EXPECT_EQ(theirs.encr_keysize, "128");
    EXPECT_EQ(theirs.integ_alg, s.integ_alg);
    EXPECT_EQ(theirs.prf_alg, "PRF_HMAC_SHA2_256");
    EXPECT_EQ(theirs.dh_group, s.dh_group);
    EXPECT_EQ(theirs.local_host, theirs_.addr);
    EXPECT_EQ(theirs.remote_host, ours_seen_as_);
    EXPECT_EQ(theirs.remote_id, kOurId);
    EXPECT_EQ(ours.remote_id.find(kCharonId) != std::string::npos, true) << ours.remote_id;
    EXPECT_EQ(ours.spi_i, theirs.initiator_spi);
    EXPECT_EQ(ours.spi_r, theirs.responder_spi);
    ASSERT_EQ(theirs.children.size(), 1u);
    ASSERT_EQ(ours.children.size(), 1u);
    const ChildSaView& tc = theirs.children[0];
    const OurChildSa& oc = ours.children[0];
    EXPECT_EQ(tc.state, "INSTALLED");
    EXPECT_EQ(tc.mode, "TUNNEL");
    EXPECT_EQ(tc.protocol, "ESP");
    EXPECT_EQ(tc.encr_alg, s.encr_alg);
    EXPECT_EQ(tc.integ_alg, s.integ_alg);
    EXPECT_EQ(oc.spi_in, tc.spi_out);
    EXPECT_EQ(oc.spi_out, tc.spi_in);
    EXPECT_EQ(tc.local_ts, std::vector<std::string>{theirs_.subnet + "/32"});
    EXPECT_EQ(tc.remote_ts, std::vector<std::string>{ours_side_.subnet + "/32"});
    EXPECT_EQ(oc.local_ts, std::vector<std::string>{ours_side_.subnet + "/32"});
    EXPECT_EQ(oc.remote_ts, std::vector<std::string>{theirs_.subnet + "/32"});
  }

  WorkDir work_{"engine"};
  std::string peer_bin_;
  std::unique_ptr<NetnsPair> net_;
  std::unique_ptr<NatTriple> nat_;
  NetnsSide ours_side_, theirs_;               // where ours and charon run
  std::string ours_seen_as_, theirs_seen_as_;  // each one's address as the other sees it ("%any": unknown)
  std::string charon_extra_;                   // more strongswan.conf charon { } lines
  nlohmann::json our_settings_ = nlohmann::json::object();  // more ipfleet-ike-peer top-level keys
  nlohmann::json our_tunnel_extra_ = nlohmann::json::object();  // more keys of our tunnel
  nlohmann::json our_child_extra_ = nlohmann::json::object();   // more keys of our child
  int charon_child_rekey_s_ = 0, charon_ike_rekey_s_ = 0;       // 0: charon's defaults (1 h, 4 h)
  std::string charon_conn_extra_;                               // more lines of charon's connection
  std::unique_ptr<Charon> charon_;
  std::unique_ptr<IkePeer> ours_;
  std::unique_ptr<Pki> pki_;
};

}  // namespace ipfleet::interop
