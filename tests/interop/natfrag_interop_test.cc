// IKE fragmentation (RFC 7383) and NAT traversal (RFC 7296 2.23, RFC 3948) of our engine with charon
// (issue 7). Fragmentation: a veth with MTU 576 whose namespaces drop every IP fragment, 3-certificate
// chains on both sides, so IKE_AUTH only gets through as IKE fragments (SKF), which tshark must see.
// NAT-T: a third namespace masquerades (nftables) between the two; each side in turn is behind it.
#include <gtest/gtest.h>

#include <absl/strings/match.h>
#include <absl/strings/str_cat.h>

#include "engine_fixture.h"
#include "harness/nft.h"
#include "harness/wire_check.h"

namespace ipfleet::interop {
namespace {

constexpr int kMtu = 576;

class FragInterop : public EngineInterop, public ::testing::WithParamInterface<bool> {
 protected:
  void MakeTopology() override {
    EngineInterop::MakeTopology();
    if (HasFatalFailure()) return;
    // IP fragments are dropped before reassembly (priority below conntrack's defrag at -400) and counted, so
    // a message the IKE layer did not fragment cannot arrive.
    for (const NetnsSide* s : {&ours_side_, &theirs_}) {
      ASSERT_OK(RunOk({"ip", "-n", s->ns, "link", "set", "dev", s->veth, "mtu", std::to_string(kMtu)}));
      ASSERT_OK(NftLoad(s->ns,
                        "table inet ipfleet_frag {\n  counter ipfrag {}\n"
                        "  chain pre { type filter hook prerouting priority -450;\n"
                        "    ip frag-off & 0x3fff != 0 counter name ipfrag drop\n  }\n}\n",
                        (work_.path() / (s->ns + ".nft")).string()));
    }
    charon_extra_ = absl::StrCat("fragment_size = ", kMtu);
    our_settings_ = {{"fragment_size", kMtu}};
  }
  void ChainCerts() {
    auto pki = MakeChainPki(work_.path() / "pki",
                            {{"host1", ours_side_.addr, kOurId}, {"host2", theirs_.addr, kCharonId}}, 2);
    ASSERT_OK(pki);
    pki_ = std::make_unique<Pki>(*std::move(pki));
  }
  uint64_t IpFragments() {
    uint64_t n = 0;
    for (const NetnsSide* s : {&ours_side_, &theirs_}) {
      auto c = NftCounter(s->ns, "inet", "ipfleet_frag", "ipfrag");
      EXPECT_OK(c);
      if (c.ok()) n += *c;
    }
    return n;
  }
};

// Both roles: the IKE_AUTH messages of both ends (3 certificates each) arrive only as SKF fragments.
TEST_P(FragInterop, IkeAuthFragmentedAtSmallMtu) {
  const bool ours_initiate = GetParam();
  ChainCerts();
  if (HasFatalFailure()) return;
  auto cap = Capture::Start(ours_side_.ns, ours_side_.veth, theirs_.addr, work_.path() / "frag.pcap");
  ASSERT_OK(cap);
  std::vector<OurIkeSa> ours;
  std::vector<IkeSaView> theirs;
  Establish(kGcm, /*psk=*/false, ours_initiate, &ours, &theirs);
  ASSERT_OK((*cap)->Stop());
  if (HasFatalFailure()) return;
  EXPECT_EQ(theirs[0].remote_id, kOurId);
  auto skf = FrameFields((*cap)->pcap(), "isakmp.nextpayload == 53", "ip.src");
  ASSERT_OK(skf);
  size_t from_ours = std::count(skf->begin(), skf->end(), ours_side_.addr);
  size_t from_charon = std::count(skf->begin(), skf->end(), theirs_.addr);
  EXPECT_GE(from_ours, 2u) << "our IKE_AUTH must leave as several SKF fragments";
  EXPECT_GE(from_charon, 2u) << "charon's IKE_AUTH must arrive as several SKF fragments";
  // No datagram on the wire was larger than the MTU allows (the IKE layer sized them, not the IP layer).
  auto big = FrameFields((*cap)->pcap(), absl::StrCat("ip.len > ", kMtu), "frame.number");
  ASSERT_OK(big);
  EXPECT_TRUE(big->empty()) << big->size() << " frames above the MTU";
  EXPECT_EQ(IpFragments(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Roles, FragInterop, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "ours_init" : "charon_init"; });

// The judge can fail: with our fragmentation switched off, our IKE_AUTH needs IP fragments, which are dropped.
TEST_F(FragInterop, WithoutIkeFragmentationIkeAuthIsLost) {
  our_settings_["fragmentation"] = false;
  ChainCerts();
  if (HasFatalFailure()) return;
  LoadCharon(CharonConn(kGcm, false));
  if (HasFatalFailure()) return;
  StartOurs(OurTunnel(kGcm, false), /*initiate=*/true);
  if (HasFatalFailure()) return;
  EXPECT_TRUE(WaitFor([&] { return IpFragments() > 0; }, 5s)) << ours_->LogTail();
  EXPECT_FALSE(charon_->WaitSas(OneEstablished, 2s).ok());
}

// NAT between the two: the inside host's address and port are rewritten by the router.
class NatInterop : public EngineInterop {
 protected:
  void MakeTopology() override {
    auto t = NatTriple::Create();
    ASSERT_OK(t);
    nat_ = *std::move(t);
    our_settings_ = {{"nat_keepalive", 1}};
  }
  // Counts 1-octet UDP datagrams to 4500 (NAT-keepalives, RFC 3948 2.3) arriving in `ns`.
  void CountKeepalives(const std::string& ns) {
    ASSERT_OK(NftLoad(ns,
                      "table inet ipfleet_ka {\n  counter ka {}\n"
                      "  chain in { type filter hook input priority 0;\n"
                      "    udp dport 4500 udp length 9 counter name ka\n  }\n}\n",
                      (work_.path() / "ka.nft").string()));
  }
  bool KeepaliveSeen(const std::string& ns) {
    return WaitFor([&] {
      auto n = NftCounter(ns, "inet", "ipfleet_ka", "ka");
      return n.ok() && *n >= 1;
    }, 5s);
  }
};

// Ours behind the NAT initiates: both detect the NAT, IKE continues on 4500, the ESP SAs are UDP-encapsulated
// and our keepalives cross the NAT.
class NatOursInside : public NatInterop {
  void MakeTopology() override {
    NatInterop::MakeTopology();
    if (HasFatalFailure()) return;
    ours_side_ = nat_->inside();
    theirs_ = nat_->outside();
    ours_seen_as_ = "%any";  // charon's remote_addrs; it sees us at the router's address
    theirs_seen_as_ = theirs_.addr;
  }
};

TEST_F(NatOursInside, BothDetectNatIkeOn4500) {
  CountKeepalives(theirs_.ns);
  if (HasFatalFailure()) return;
  std::vector<OurIkeSa> ours;
  std::vector<IkeSaView> theirs;
  Establish(kGcm, true, /*ours_initiate=*/true, &ours, &theirs);
  if (HasFatalFailure()) return;
  EXPECT_EQ(theirs[0].remote_host, nat_->public_addr()) << "charon must see the translated address";
  EXPECT_EQ(theirs[0].local_port, "4500");
  EXPECT_EQ(theirs[0].remote_port, "4500");
  EXPECT_EQ(ours[0].local, ours_side_.addr + ":4500");
  EXPECT_EQ(ours[0].remote, theirs_.addr + ":4500");
  ASSERT_EQ(theirs[0].children.size(), 1u);
  EXPECT_EQ(theirs[0].children[0].encap, "yes");
  EXPECT_TRUE(absl::StrContains(charon_->Log(), "remote host is behind NAT")) << charon_->LogLines({"NAT"});
  EXPECT_TRUE(absl::StrContains(ours_->Log(), "local_behind_nat=true")) << ours_->LogTail();
  auto masq = nat_->MasqueradedPackets();
  ASSERT_OK(masq);
  EXPECT_GE(*masq, 1u);
  EXPECT_TRUE(KeepaliveSeen(theirs_.ns)) << "no NAT-keepalive from us reached charon";
}

// charon behind the NAT initiates to us: we see it at the router's address and answer there on 4500.
class NatCharonInside : public NatInterop {
  void MakeTopology() override {
    NatInterop::MakeTopology();
    if (HasFatalFailure()) return;
    theirs_ = nat_->inside();
    ours_side_ = nat_->outside();
    ours_seen_as_ = ours_side_.addr;
    theirs_seen_as_ = "%any";  // our tunnel's remote: whoever comes (the router's address)
  }
};

TEST_F(NatCharonInside, BothDetectNatIkeOn4500) {
  std::vector<OurIkeSa> ours;
  std::vector<IkeSaView> theirs;
  Establish(kGcm, true, /*ours_initiate=*/false, &ours, &theirs);
  if (HasFatalFailure()) return;
  EXPECT_TRUE(absl::StartsWith(ours[0].remote, nat_->public_addr() + ":")) << ours[0].remote;
  EXPECT_EQ(ours[0].local, ours_side_.addr + ":4500");
  EXPECT_EQ(theirs[0].local_port, "4500");
  EXPECT_EQ(theirs[0].remote_port, "4500");
  EXPECT_EQ(theirs[0].children[0].encap, "yes");
  EXPECT_TRUE(absl::StrContains(charon_->Log(), "local host is behind NAT")) << charon_->LogLines({"NAT"});
  EXPECT_TRUE(absl::StrContains(ours_->Log(), "remote_behind_nat=true")) << ours_->LogTail();
  auto masq = nat_->MasqueradedPackets();
  ASSERT_OK(masq);
  EXPECT_GE(*masq, 1u);
}

}  // namespace
}  // namespace ipfleet::interop
