// Controller + fleet module in process, simulated agents over loopback gRPC with real TLS.
#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <filesystem>
#include <random>

#include "controller_fixture.h"
#include "ipfleet/ca/authority.h"
#include "ipfleet/controller/api/session_registry.h"
#include "ipfleet/controller/daemon/serve.h"
#include "ipfleet/rollout/module.h"
#include "ipfleet/v1/admin_service.grpc.pb.h"

namespace ipfleet::testing {
namespace {


class RolloutTest : public ControllerFixture {
 protected:
  void SetUp() override {
    ControllerFixture::SetUp();
    Start();
  }

  void Start() { StartController({}, wave_chunk_); }

  v1::ApplyResponse Apply(const std::string& yaml, bool dry_run = false) {
    v1::ApplyRequest req;
    req.set_fleet_yaml(yaml);
    req.set_file_name("fleet.yaml");
    req.set_dry_run(dry_run);
    v1::ApplyResponse resp;
    grpc::Status st = admin_->Apply(Ctx().get(), req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp;
  }

  v1::RolloutStatus StartRollout(uint32_t canary, uint32_t wave_size, uint32_t timeout = 30) {
    v1::StartRolloutRequest req;
    req.set_canary_percent(canary);
    req.set_wave_size(wave_size);
    req.set_wave_timeout_seconds(timeout);
    v1::RolloutStatus r;
    grpc::Status st = admin_->StartRollout(Ctx().get(), req, &r);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return r;
  }

  v1::RolloutStatus Rollout(uint64_t id = 0) {
    v1::GetRolloutRequest req;
    req.set_id(id);
    v1::RolloutStatus r;
    grpc::Status st = admin_->GetRollout(Ctx().get(), req, &r);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return r;
  }

  bool WaitRolloutEnds(uint64_t id, v1::RolloutStatus* out) {
    return WaitFor([&] {
      *out = Rollout(id);
      return out->state() != v1::ROLLOUT_STATE_RUNNING;
    });
  }

  const v1::HostRollout* HostIn(const v1::RolloutStatus& r, const std::string& host) {
    for (const auto& h : r.hosts()) {
      if (h.host() == host) return &h;
    }
    return nullptr;
  }

  size_t wave_chunk_ = 500;  // hosts per chunk of a starting wave
};

const char* kMesh =
    "meshes:\n"
    "  - select: {group: g1}\n";

TEST_F(RolloutTest, EachHostGetsOnlyItsOwnBundleAndItVerifiesAgainstTheCa) {
  for (const char* h : {"a1", "a2", "a3"}) AddAgent(h, std::string("192.0.2.") + std::to_string(10 + h[1] - '0'), {{"group", "g1"}});
  v1::ApplyResponse dry = Apply(kMesh, true);
  EXPECT_EQ(dry.generation(), 0u);
  ASSERT_EQ(dry.changes_size(), 3);
  EXPECT_EQ(dry.changes(0).change(), "add");
  EXPECT_EQ(dry.changes(0).tunnel(), "a1--a2");
  EXPECT_EQ(dry.affected_hosts_size(), 3);
  v1::ApplyResponse applied = Apply(kMesh);
  EXPECT_EQ(applied.generation(), 1u);
  EXPECT_EQ(Apply(kMesh).generation(), 1u);  // same file again: nothing changes, no new generation

  v1::RolloutStatus r = StartRollout(0, 0);
  v1::RolloutStatus done;
  ASSERT_TRUE(WaitRolloutEnds(r.id(), &done));
  ASSERT_EQ(done.state(), v1::ROLLOUT_STATE_SUCCEEDED) << done.error();
  std::map<std::string, uint32_t> reqids;
  for (const auto& [name, agent] : agents_) {
    auto bundles = agent->bundles();
    ASSERT_EQ(bundles.size(), 1u) << name;
    const ReceivedBundle& b = bundles[0];
    EXPECT_EQ(b.verify_error, "") << name;
    EXPECT_EQ(b.bundle.host(), name);
    EXPECT_EQ(b.bundle.generation(), 1u);
    EXPECT_EQ(b.bundle.ca_chain(0), ca_pem_);
    EXPECT_FALSE(b.bundle.crl().empty());
    EXPECT_EQ(b.bundle.controller_address(), Target());
    EXPECT_EQ(b.bundle.tunnels_size(), 2);
    for (const auto& t : b.bundle.tunnels()) {
      EXPECT_EQ(t.local().host(), name);
      auto [it, fresh] = reqids.emplace(t.name(), t.reqid());
      if (!fresh) {
        EXPECT_EQ(it->second, t.reqid()) << t.name();
      }
    }
    EXPECT_EQ(HostIn(done, name)->state(), v1::HOST_ROLLOUT_STATE_DONE);
  }
  // A tampered bundle fails the same verification the agent does (the judge can say no).
  ReceivedBundle b = agents_["a1"]->bundles()[0];
  std::string bytes = b.signed_bundle.bundle();
  bytes[bytes.size() / 2] ^= 1;
  EXPECT_FALSE(ca::VerifyBundle(bytes, b.signed_bundle.signature(), b.signed_bundle.signer_certificate(), ca_pem_,
                                b.bundle.crl(), b.signed_bundle.algorithm())
                   .ok());

  // Tunnels listing shows both ends up.
  v1::ListTunnelsRequest lt;
  v1::ListTunnelsResponse tunnels;
  ASSERT_TRUE(admin_->ListTunnels(Ctx().get(), lt, &tunnels).ok());
  ASSERT_EQ(tunnels.tunnels_size(), 3);
  for (const auto& t : tunnels.tunnels()) {
    ASSERT_EQ(t.ends_size(), 2);
    EXPECT_TRUE(t.ends(0).up() && t.ends(1).up()) << t.name();
  }

  // Reconnecting with the current version applied resends nothing.
  FakeAgent& a2 = *agents_["a2"];
  a2.Disconnect();
  a2.Connect(Target());
  EXPECT_TRUE(WaitFor([&] { return Connected("a2"); }));
  EXPECT_EQ(a2.bundles().size(), 1u);
}

TEST_F(RolloutTest, AWaveLargerThanAChunkGoesOutInChunksAndEveryHostGetsOneBundle) {
  controller_->Shutdown(std::chrono::milliseconds(500));
  controller_.reset();
  wave_chunk_ = 2;  // 5 hosts: chunks of 2, 2 and 1
  Start();
  for (int i = 1; i <= 5; ++i) AddAgent("c" + std::to_string(i), "192.0.2." + std::to_string(30 + i), {{"group", "g1"}});
  ASSERT_EQ(Apply(kMesh).generation(), 1u);
  v1::RolloutStatus r = StartRollout(0, 0);
  EXPECT_EQ(r.waves(), 1u);
  v1::RolloutStatus done;
  ASSERT_TRUE(WaitRolloutEnds(r.id(), &done));
  ASSERT_EQ(done.state(), v1::ROLLOUT_STATE_SUCCEEDED) << done.error();
  for (const auto& [name, agent] : agents_) {
    auto bundles = agent->bundles();
    ASSERT_EQ(bundles.size(), 1u) << name;
    EXPECT_EQ(bundles[0].verify_error, "") << name;
    EXPECT_EQ(bundles[0].bundle.host(), name);
    EXPECT_EQ(bundles[0].bundle.tunnels_size(), 4) << name;
    EXPECT_EQ(HostIn(done, name)->state(), v1::HOST_ROLLOUT_STATE_DONE) << name;
  }
  // Everything queued on the sessions was written: the pacing counter is back at zero.
  EXPECT_TRUE(WaitFor([&] { return controller_->context().sessions->OutboundQueued() == 0; }))
      << controller_->context().sessions->OutboundQueued();
}

TEST_F(RolloutTest, HostConnectingLaterGetsTheCurrentBundle) {
  AddAgent("b1", "192.0.2.21", {{"group", "g1"}});
  FakeAgent& b2 = AddAgent("b2", "192.0.2.22", {{"group", "g1"}});
  ASSERT_EQ(Apply(kMesh).generation(), 1u);
  b2.Disconnect();
  ASSERT_TRUE(WaitFor([&] { return !Connected("b2"); }));
  v1::RolloutStatus r = StartRollout(50, 1, 30);  // wave 1: b1, wave 2: b2 (offline for now)
  ASSERT_TRUE(WaitFor([&] {
    v1::RolloutStatus now = Rollout(r.id());
    const v1::HostRollout* h = HostIn(now, "b2");
    return h && h->state() == v1::HOST_ROLLOUT_STATE_SENT;
  }));
  EXPECT_TRUE(b2.bundles().empty());
  b2.Connect(Target());
  v1::RolloutStatus done;
  ASSERT_TRUE(WaitRolloutEnds(r.id(), &done));
  EXPECT_EQ(done.state(), v1::ROLLOUT_STATE_SUCCEEDED) << done.error();
  ASSERT_EQ(b2.bundles().size(), 1u);
  EXPECT_EQ(b2.bundles()[0].verify_error, "");
}

TEST_F(RolloutTest, WavesHaltOnFailureAndRollbackResendsThePreviousGenerationHigher) {
  std::vector<std::string> names = {"h1", "h2", "h3", "h4", "h5"};
  for (size_t i = 0; i < names.size(); ++i) AddAgent(names[i], "192.0.2." + std::to_string(31 + i), {{"group", "g1"}});
  ASSERT_EQ(Apply(kMesh).generation(), 1u);
  v1::RolloutStatus r1 = StartRollout(20, 2);
  EXPECT_EQ(r1.waves(), 3u);  // [h1] [h2 h3] [h4 h5]
  v1::RolloutStatus done;
  ASSERT_TRUE(WaitRolloutEnds(r1.id(), &done));
  ASSERT_EQ(done.state(), v1::ROLLOUT_STATE_SUCCEEDED) << done.error();
  std::map<std::string, uint64_t> v1_versions;
  for (const auto& h : done.hosts()) v1_versions[h.host()] = h.version();
  EXPECT_EQ(HostIn(done, "h1")->wave(), 0u);
  EXPECT_EQ(HostIn(done, "h3")->wave(), 1u);
  EXPECT_EQ(HostIn(done, "h5")->wave(), 2u);

  // Generation 2 changes the proposal; h3 will refuse its bundle.
  const char* gen2 =
      "proposals:\n  strong: {ike: {encryption: [aes256gcm16], prf: [prfsha384], dh_groups: [ecp384]}}\n"
      "meshes:\n  - select: {group: g1}\n    proposal: strong\n";
  v1::ApplyResponse a2 = Apply(gen2);
  ASSERT_EQ(a2.generation(), 2u);
  EXPECT_EQ(a2.changes_size(), 10);
  EXPECT_EQ(a2.changes(0).change(), "change");
  EXPECT_EQ(a2.changes(0).detail(), "proposal");
  agents_["h3"]->set_mode(FakeAgent::Mode::kRefuse);
  v1::RolloutStatus r2 = StartRollout(20, 2);
  ASSERT_TRUE(WaitRolloutEnds(r2.id(), &done));
  EXPECT_EQ(done.state(), v1::ROLLOUT_STATE_HALTED);
  EXPECT_NE(done.error().find("h3"), std::string::npos) << done.error();
  EXPECT_EQ(HostIn(done, "h1")->state(), v1::HOST_ROLLOUT_STATE_DONE);
  EXPECT_EQ(HostIn(done, "h3")->state(), v1::HOST_ROLLOUT_STATE_FAILED);
  EXPECT_NE(HostIn(done, "h3")->error().find("simulated failure"), std::string::npos);
  // The halt stopped the rollout: wave 3 never received generation 2.
  EXPECT_EQ(HostIn(done, "h4")->state(), v1::HOST_ROLLOUT_STATE_PENDING);
  ASSERT_EQ(agents_["h4"]->bundles().size(), 1u);
  EXPECT_EQ(agents_["h4"]->bundles().back().bundle.generation(), 1u);
  EXPECT_EQ(agents_["h1"]->bundles().back().bundle.generation(), 2u);

  // Rollback: generation 1's content as generation 3, every host a higher version.
  agents_["h3"]->set_mode(FakeAgent::Mode::kAck);
  v1::RollbackRequest rb;
  v1::RolloutStatus r3;
  grpc::Status st = admin_->Rollback(Ctx().get(), rb, &r3);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(r3.generation(), 3u);
  ASSERT_TRUE(WaitRolloutEnds(r3.id(), &done));
  ASSERT_EQ(done.state(), v1::ROLLOUT_STATE_SUCCEEDED) << done.error();
  for (const auto& name : names) {
    const FakeAgent& a = *agents_[name];
    auto bundles = a.bundles();
    const v1::PolicyBundle& last = bundles.back().bundle;
    EXPECT_EQ(last.generation(), 3u) << name;
    EXPECT_GT(last.version(), v1_versions[name]) << name;
    EXPECT_EQ(a.applied(), last.version());
    for (const auto& t : last.tunnels()) EXPECT_EQ(t.proposal().name(), "default") << name;
    for (size_t i = 1; i < bundles.size(); ++i) {
      EXPECT_GT(bundles[i].bundle.version(), bundles[i - 1].bundle.version()) << name;
    }
  }
}

TEST_F(RolloutTest, FlushSaIsDeliveredExactlyOnceAcrossReconnects) {
  FakeAgent& a = AddAgent("c1", "192.0.2.41", {{"group", "g1"}});
  AddAgent("c2", "192.0.2.42", {{"group", "g1"}});
  ASSERT_EQ(Apply(kMesh).generation(), 1u);

  // Queued while the host is away, delivered on its hello.
  a.Disconnect();
  ASSERT_TRUE(WaitFor([&] { return !Connected("c1"); }));
  v1::SendCommandRequest req;
  req.set_host("c1");
  req.set_kind(v1::COMMAND_KIND_FLUSH_SA);
  req.set_tunnel("c1--c2");
  v1::CommandStatus sent;
  ASSERT_TRUE(admin_->SendCommand(Ctx().get(), req, &sent).ok());
  EXPECT_EQ(sent.state(), v1::COMMAND_STATE_QUEUED);
  uint64_t id1 = sent.command().id();
  a.Connect(Target());
  v1::GetCommandRequest get;
  get.set_id(id1);
  get.set_wait_seconds(20);
  v1::CommandStatus result;
  ASSERT_TRUE(admin_->GetCommand(Ctx(30).get(), get, &result).ok());
  ASSERT_EQ(result.state(), v1::COMMAND_STATE_SUCCEEDED);
  ASSERT_EQ(result.result().sas_before_size(), 1);
  EXPECT_EQ(result.result().sas_before(0).spi_in(), "c1000001");
  EXPECT_EQ(result.result().sas_after(0).spi_in(), "c1000002");

  // Delivered on a live session but lost before execution: resent on the next hello, executed once.
  a.drop_next_command();
  req.set_kind(v1::COMMAND_KIND_REKEY);
  ASSERT_TRUE(admin_->SendCommand(Ctx().get(), req, &sent).ok());
  uint64_t id2 = sent.command().id();
  EXPECT_GT(id2, id1);
  ASSERT_TRUE(WaitFor([&] { return a.commands_received().size() == 2; }));
  a.Disconnect();
  a.Connect(Target());
  get.set_id(id2);
  ASSERT_TRUE(admin_->GetCommand(Ctx(30).get(), get, &result).ok());
  ASSERT_EQ(result.state(), v1::COMMAND_STATE_SUCCEEDED);

  // Another reconnect resends nothing already executed: a third command is the only new arrival.
  a.Disconnect();
  a.Connect(Target());
  ASSERT_TRUE(WaitFor([&] { return Connected("c1"); }));
  req.set_kind(v1::COMMAND_KIND_FLUSH_SA);
  req.clear_tunnel();
  ASSERT_TRUE(admin_->SendCommand(Ctx().get(), req, &sent).ok());
  uint64_t id3 = sent.command().id();
  get.set_id(id3);
  ASSERT_TRUE(admin_->GetCommand(Ctx(30).get(), get, &result).ok());
  ASSERT_EQ(result.state(), v1::COMMAND_STATE_SUCCEEDED);
  EXPECT_EQ(a.commands_received(), (std::vector<uint64_t>{id1, id2, id2, id3}));
  EXPECT_EQ(a.executions(), (std::map<uint64_t, int>{{id1, 1}, {id2, 1}, {id3, 1}}));

  // Unknown tunnel for the host is refused with a hint.
  req.set_tunnel("nope");
  grpc::Status st = admin_->SendCommand(Ctx().get(), req, &sent);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND);
}

bool CrlListsSerial(const std::string& crl_pem, const std::string& serial_hex) {
  BIO* bio = BIO_new_mem_buf(crl_pem.data(), static_cast<int>(crl_pem.size()));
  X509_CRL* crl = PEM_read_bio_X509_CRL(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (!crl) return false;
  BIGNUM* bn = nullptr;
  BN_hex2bn(&bn, serial_hex.c_str());
  ASN1_INTEGER* serial = BN_to_ASN1_INTEGER(bn, nullptr);
  X509_REVOKED* rev = nullptr;
  bool found = X509_CRL_get0_by_serial(crl, &rev, serial) == 1;
  ASN1_INTEGER_free(serial);
  BN_free(bn);
  X509_CRL_free(crl);
  return found;
}

TEST_F(RolloutTest, RevocationReachesEveryHostsNextBundle) {
  for (const char* h : {"d1", "d2", "d3"}) AddAgent(h, std::string("192.0.2.5") + h[1], {{"group", "g1"}});
  ASSERT_EQ(Apply(kMesh).generation(), 1u);
  v1::RolloutStatus done;
  ASSERT_TRUE(WaitRolloutEnds(StartRollout(0, 0).id(), &done));
  ASSERT_EQ(done.state(), v1::ROLLOUT_STATE_SUCCEEDED) << done.error();
  v1::GetHostRequest gh;
  gh.set_name("d3");
  v1::HostInfo d3;
  ASSERT_TRUE(admin_->GetHost(Ctx().get(), gh, &d3).ok());
  ASSERT_FALSE(d3.cert_serial().empty());
  for (const char* h : {"d1", "d2"}) EXPECT_FALSE(CrlListsSerial(agents_[h]->bundles().back().bundle.crl(), d3.cert_serial()));

  v1::RemoveHostRequest rm;  // removing a host revokes its certificate
  rm.set_name("d3");
  v1::RemoveHostResponse rmr;
  ASSERT_TRUE(admin_->RemoveHost(Ctx().get(), rm, &rmr).ok());
  ASSERT_TRUE(WaitRolloutEnds(StartRollout(0, 0).id(), &done));
  ASSERT_EQ(done.state(), v1::ROLLOUT_STATE_SUCCEEDED) << done.error();
  EXPECT_EQ(done.hosts_size(), 2);
  for (const char* h : {"d1", "d2"}) {
    const ReceivedBundle b = agents_[h]->bundles().back();
    EXPECT_EQ(b.verify_error, "");
    EXPECT_TRUE(CrlListsSerial(b.bundle.crl(), d3.cert_serial())) << h;
  }
}

}  // namespace
}  // namespace ipfleet::testing
