// In-process controller tests over real gRPC on loopback (port 0) with simulated agents:
// enrollment, token refusals, session authentication, renewal, health in status, restart.
#include <openssl/x509.h>

#include <nlohmann/json.hpp>

#include "harness.h"
#include "ipfleet/ca/cert.h"
#include "ipfleet/ca/verify.h"
#include "ipfleet/controller/api/pki.h"
#include "ipfleet/controller/api/session_registry.h"
#include "ipfleet/controller/inventory/sqlite_store.h"

namespace ipfleet::testing {
namespace {

// openssl(1) as an independent judge of an issued certificate.
std::string Openssl(const fs::path& dir, const std::string& cert_pem, const std::string& args, int* status) {
  fs::path f = dir / "judge.pem";
  std::ofstream(f) << cert_pem;
  return RunCommand("openssl " + args + " " + f.string() + " 2>&1", status);
}

TEST_F(ControllerFixture, EnrollmentEndToEndIssuesCertFromInventory) {
  v1::AddHostResponse added = AddHost("web1", {"192.0.2.10", "2001:db8::10"}, {"web1.example.net"});
  EXPECT_GE(added.token().size(), 22u);  // >= 128 bits in base64url
  EXPECT_EQ(added.ca_fingerprint(), fingerprint_);
  EXPECT_NE(added.enroll_command().find("ipfleet-agent enroll --controller " + AgentTarget()), std::string::npos)
      << added.enroll_command();
  EXPECT_NE(added.enroll_command().find("--token " + added.token()), std::string::npos);
  EXPECT_NE(added.enroll_command().find("--ca-fingerprint " + fingerprint_), std::string::npos);
  EXPECT_NE(added.enroll_command().find("--data-dir /var/lib/ipfleet-agent"), std::string::npos);

  auto agent = NewAgent("web1");
  v1::EnrollResponse er;
  grpc::Status st = agent->Enroll("web1", added.token(), &er);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_EQ(er.ca_chain_size(), 1);
  EXPECT_EQ(er.ca_chain(0), ca_pem_);
  EXPECT_NE(er.crl().find("BEGIN X509 CRL"), std::string::npos);

  // Judge 1: openssl verify against the CA, with the CRL.
  std::ofstream(dir_ / "judge-ca.pem") << ca_pem_;
  std::ofstream(dir_ / "judge-crl.pem") << er.crl();
  int status = -1;
  std::string out = Openssl(dir_, er.certificate_pem(),
                            "verify -crl_check -CRLfile " + (dir_ / "judge-crl.pem").string() + " -CAfile " +
                                (dir_ / "judge-ca.pem").string(),
                            &status);
  EXPECT_EQ(status, 0) << out;
  // Judge 2: SANs and EKU as openssl prints them; subject CN is the inventory name.
  out = Openssl(dir_, er.certificate_pem(), "x509 -noout -subject -ext subjectAltName,extendedKeyUsage -in", &status);
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("CN = web1"), std::string::npos) << out;
  EXPECT_NE(out.find("IP Address:192.0.2.10"), std::string::npos) << out;
  EXPECT_NE(out.find("IP Address:2001:DB8:0:0:0:0:0:10"), std::string::npos) << out;
  EXPECT_NE(out.find("DNS:web1.example.net"), std::string::npos) << out;
  EXPECT_NE(out.find("TLS Web Client Authentication"), std::string::npos) << out;
  EXPECT_NE(out.find("ipsec Internet Key Exchange"), std::string::npos) << out;

  // The certificate carries the agent's key (the private key never left the agent).
  auto cert = ca::ParseCertificatePem(er.certificate_pem());
  ASSERT_TRUE(cert.ok());
  EXPECT_EQ(EVP_PKEY_eq(X509_get0_pubkey(cert->get()), agent->key()), 1);

  // The inventory knows the host as enrolled with this serial.
  v1::GetHostRequest g;
  g.set_name("web1");
  v1::HostInfo info;
  ASSERT_TRUE(admin_->GetHost(Ctx().get(), g, &info).ok());
  auto ci = ca::InspectCertificatePem(er.certificate_pem());
  ASSERT_TRUE(ci.ok());
  EXPECT_TRUE(info.enrolled());
  EXPECT_EQ(info.cert_serial(), ci->serial_hex);

  // Only the token's hash is stored: the token text is nowhere in the database files.
  controller_.reset();
  for (const char* f : {"inventory.db", "inventory.db-wal"}) {
    if (!fs::exists(dir_ / f)) continue;
    EXPECT_EQ(ReadFileOrDie(dir_ / f).find(added.token()), std::string::npos) << f;
  }
}

TEST_F(ControllerFixture, TokenReuseIsRefused) {
  v1::AddHostResponse added = AddHost("web1", {"192.0.2.10"});
  auto agent = NewAgent("web1");
  v1::EnrollResponse er;
  ASSERT_TRUE(agent->Enroll("web1", added.token(), &er).ok());
  auto thief = NewAgent("web1");
  grpc::Status st = thief->Enroll("web1", added.token(), &er);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(st.error_message().find("already used"), std::string::npos) << st.error_message();
  EXPECT_NE(st.error_message().find("ipfleet host token web1"), std::string::npos) << st.error_message();
}

TEST_F(ControllerFixture, ExpiredTokenIsRefused) {
  v1::AddHostResponse added = AddHost("web1", {"192.0.2.10"}, {}, /*ttl=*/60);
  now_ += 61;
  auto agent = NewAgent("web1");
  v1::EnrollResponse er;
  grpc::Status st = agent->Enroll("web1", added.token(), &er);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(st.error_message().find("expired"), std::string::npos) << st.error_message();
  // A fresh token works.
  v1::NewEnrollmentTokenRequest nt;
  nt.set_name("web1");
  v1::AddHostResponse fresh;
  ASSERT_TRUE(admin_->NewEnrollmentToken(Ctx().get(), nt, &fresh).ok());
  EXPECT_TRUE(agent->Enroll("web1", fresh.token(), &er).ok());
}

TEST_F(ControllerFixture, TokenForAnotherHostIsRefused) {
  v1::AddHostResponse a = AddHost("web1", {"192.0.2.10"});
  AddHost("web2", {"192.0.2.11"});
  auto agent = NewAgent("web2");
  v1::EnrollResponse er;
  grpc::Status st = agent->Enroll("web2", a.token(), &er);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(st.error_message().find("another host"), std::string::npos) << st.error_message();
  st = agent->Enroll("web2", "not-a-token", &er);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND);
  // The refused attempt did not consume web1's token.
  auto web1 = NewAgent("web1");
  EXPECT_TRUE(web1->Enroll("web1", a.token(), &er).ok());
}

TEST_F(ControllerFixture, SessionWithoutClientCertIsRefused) {
  auto agent = Enrolled("web1", "192.0.2.10");
  SimSession s(*agent, /*with_cert=*/false);
  s.Hello("web1");
  grpc::Status st = s.Finish();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_NE(st.error_message().find("no client certificate"), std::string::npos) << st.error_message();
  EXPECT_FALSE(StatusOf("web1").connected());
}

TEST_F(ControllerFixture, SessionWithForeignCertIsRefused) {
  Enrolled("web1", "192.0.2.10");
  // A certificate for "web1" from another CA.
  fs::path other = MakeTempDir("other-ca");
  auto other_ca = ca::CertificateAuthority::Init(other);
  ASSERT_TRUE(other_ca.ok()) << other_ca.status();
  auto agent = NewAgent("web1");
  ca::IssueRequest req;
  req.common_name = "web1";
  req.ips = {"192.0.2.10"};
  auto issued = (*other_ca)->Issue(agent->Csr(), req);
  ASSERT_TRUE(issued.ok()) << issued.status();
  agent->set_cert_pem(issued->pem);
  SimSession s(*agent);
  s.Hello("web1");
  grpc::Status st = s.Finish();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED) << st.error_message();
  fs::remove_all(other);
}

TEST_F(ControllerFixture, SessionWithRevokedCertIsRefused) {
  auto agent = Enrolled("web1", "192.0.2.10");
  {
    SimSession s(*agent);
    ASSERT_TRUE(s.Hello("web1"));
    ASSERT_TRUE(WaitFor([&] { return StatusOf("web1").connected(); }));
    v1::RevokeCertificateRequest rr;
    rr.set_host("web1");
    rr.set_reason("keyCompromise");
    v1::RevokeCertificateResponse resp;
    grpc::Status st = admin_->RevokeCertificate(Ctx().get(), rr, &resp);
    ASSERT_TRUE(st.ok()) << st.error_message();
    ASSERT_EQ(resp.revoked_serials_size(), 1);
    EXPECT_GT(resp.crl_number(), 0u);
    // The live session is closed by the revocation.
    EXPECT_EQ(s.Finish().error_code(), grpc::StatusCode::PERMISSION_DENIED);
  }
  SimSession s2(*agent);
  s2.Hello("web1");
  grpc::Status st = s2.Finish();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_NE(st.error_message().find("revoked"), std::string::npos) << st.error_message();

  // `cert list --all` shows the revocation.
  v1::ListCertificatesRequest lr;
  lr.set_include_revoked(true);
  v1::ListCertificatesResponse certs;
  ASSERT_TRUE(admin_->ListCertificates(Ctx().get(), lr, &certs).ok());
  ASSERT_EQ(certs.certificates_size(), 1);
  EXPECT_TRUE(certs.certificates(0).revoked());
  EXPECT_EQ(certs.certificates(0).revocation_reason(), "keyCompromise");
}

TEST_F(ControllerFixture, HelloForAnotherHostIsRefused) {
  auto agent = Enrolled("web1", "192.0.2.10");
  Enrolled("web2", "192.0.2.11");
  SimSession s(*agent);
  s.Hello("web2");
  EXPECT_EQ(s.Finish().error_code(), grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(ControllerFixture, SecondSessionReplacesTheFirstAndPushReachesIt) {
  auto agent = Enrolled("web1", "192.0.2.10");
  SimSession first(*agent);
  ASSERT_TRUE(first.Hello("web1"));
  ASSERT_TRUE(WaitFor([&] { return StatusOf("web1").connected(); }));
  SimSession second(*agent);
  ASSERT_TRUE(second.Hello("web1"));
  grpc::Status st = first.Finish();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::ABORTED) << st.error_message();
  EXPECT_TRUE(WaitFor([&] { return StatusOf("web1").connected(); }));
  // A push to the host arrives on the second session.
  v1::ControllerMessage m;
  m.mutable_command()->set_id(42);
  ASSERT_TRUE(WaitFor([&] { return controller_->context().sessions->Push("web1", m); }));
  v1::ControllerMessage got;
  ASSERT_TRUE(second.Read(&got));
  EXPECT_EQ(got.command().id(), 42u);
}

TEST_F(ControllerFixture, RenewalIssuesANewCertOnTheSession) {
  auto agent = Enrolled("web1", "192.0.2.10");
  auto old_info = ca::InspectCertificatePem(agent->cert_pem());
  ASSERT_TRUE(old_info.ok());
  SimSession s(*agent);
  ASSERT_TRUE(s.Hello("web1"));
  auto fresh_key = ca::GenerateKey(ca::KeyType::kEcdsaP256);
  ASSERT_TRUE(fresh_key.ok());
  v1::AgentMessage m;
  m.mutable_renewal()->set_csr_pem(*ca::MakeCsrPem(fresh_key->get(), "web1"));
  ASSERT_TRUE(s.Send(m));
  v1::ControllerMessage got;
  ASSERT_TRUE(s.Read(&got));
  ASSERT_TRUE(got.has_renewal());
  ASSERT_TRUE(got.renewal().error().empty()) << got.renewal().error();
  auto info = ca::InspectCertificatePem(got.renewal().certificate_pem());
  ASSERT_TRUE(info.ok());
  EXPECT_NE(info->serial_hex, old_info->serial_hex);
  EXPECT_EQ(info->subject_cn, "web1");
  EXPECT_EQ(info->ips, old_info->ips);
  auto cert = ca::ParseCertificatePem(got.renewal().certificate_pem());
  EXPECT_EQ(EVP_PKEY_eq(X509_get0_pubkey(cert->get()), fresh_key->get()), 1);
  EXPECT_TRUE(ca::VerifyPeerCertificate(got.renewal().certificate_pem(), ca_pem_, "").ok());
  v1::GetHostRequest g;
  g.set_name("web1");
  v1::HostInfo h;
  ASSERT_TRUE(admin_->GetHost(Ctx().get(), g, &h).ok());
  EXPECT_EQ(h.cert_serial(), info->serial_hex);
  // A garbage CSR gets an error in the renewal, not a dropped session.
  m.mutable_renewal()->set_csr_pem("garbage");
  ASSERT_TRUE(s.Send(m));
  ASSERT_TRUE(s.Read(&got));
  EXPECT_FALSE(got.renewal().error().empty());
}

v1::HealthReport SampleHealth() {
  v1::HealthReport r;
  r.set_host("web1");
  r.set_bundle_version(3);
  r.set_stale_sas(1);
  r.set_forced_renegotiations_total(4);
  auto* t1 = r.add_tunnels();
  t1->set_tunnel("web1--db1");
  t1->set_up(true);
  auto* c = t1->add_child_sas();
  c->set_spi_in("c1a2b3c4");
  c->set_spi_out("d1e2f3a4");
  c->set_state(v1::SA_STATE_ESTABLISHED);
  c->mutable_counters()->set_bytes_in(1234);
  c->set_stale(true);
  c->set_stale_reason("no-inbound-traffic");
  auto* t2 = r.add_tunnels();
  t2->set_tunnel("web1--db2");
  t2->set_up(false);
  auto* f = r.add_forced();
  f->set_tunnel("web1--db1");
  f->set_reason("stale-child-sa");
  return r;
}

TEST_F(ControllerFixture, HealthReportIsVisibleInStatusAndSas) {
  auto agent = Enrolled("web1", "192.0.2.10");
  Enrolled("db1", "192.0.2.20");
  SimSession s(*agent);
  ASSERT_TRUE(s.Hello("web1", 3));
  v1::AgentMessage m;
  *m.mutable_health() = SampleHealth();
  ASSERT_TRUE(s.Send(m));
  ASSERT_TRUE(WaitFor([&] { return StatusOf("web1").tunnels_total() == 2; }));
  v1::HostStatus hs = StatusOf("web1");
  EXPECT_TRUE(hs.connected());
  EXPECT_EQ(hs.tunnels_up(), 1u);
  EXPECT_EQ(hs.stale_sas(), 1u);
  EXPECT_EQ(hs.forced_renegotiations(), 4u);
  EXPECT_EQ(hs.bundle_version(), 3u);
  EXPECT_GE(hs.last_seen_unix(), now_.load());
  EXPECT_FALSE(StatusOf("db1").connected());

  v1::HostSasRequest sr;
  sr.set_host("web1");
  v1::HostSasResponse sas;
  ASSERT_TRUE(admin_->HostSas(Ctx().get(), sr, &sas).ok());
  ASSERT_EQ(sas.report().tunnels_size(), 2);
  EXPECT_EQ(sas.report().tunnels(0).child_sas(0).spi_in(), "c1a2b3c4");

  // The same through the CLI binary, as JSON.
  std::string cli = std::string(IPFLEET_CLI_PATH) + " --controller unix:" + controller_->admin_socket().string();
  int status = -1;
  std::string out = RunCommand(cli + " -o json status", &status);
  ASSERT_EQ(status, 0) << out;
  auto j = nlohmann::json::parse(out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << out;
  bool found = false;
  for (const auto& h : j["hosts"]) {
    if (h["host"] != "web1") continue;
    found = true;
    EXPECT_EQ(h["connected"], true);
    EXPECT_EQ(h["tunnels_up"], 1);
    EXPECT_EQ(h["tunnels_total"], 2);
    EXPECT_EQ(h["stale_sas"], 1);
    EXPECT_EQ(h["forced_renegotiations"], 4);
    EXPECT_EQ(h["bundle_version"], 3);
  }
  EXPECT_TRUE(found) << out;
  out = RunCommand(cli + " -o json sas web1", &status);
  ASSERT_EQ(status, 0) << out;
  j = nlohmann::json::parse(out, nullptr, false);
  EXPECT_EQ(j["tunnels"][0]["child_sas"][0]["stale_reason"], "no-inbound-traffic") << out;
  out = RunCommand(cli + " sas web1", &status);
  EXPECT_EQ(status, 0);
  EXPECT_NE(out.find("spi_in=0xc1a2b3c4"), std::string::npos) << out;
  EXPECT_NE(out.find("STALE: no-inbound-traffic"), std::string::npos) << out;
  // Exit codes: unknown host -> 4, unreachable controller -> 3.
  RunCommand(cli + " sas nosuchhost 2>/dev/null", &status);
  EXPECT_EQ(status, 4);
  RunCommand(std::string(IPFLEET_CLI_PATH) + " --controller unix:" + (dir_ / "nope.sock").string() +
                 " --timeout 2 status 2>/dev/null",
             &status);
  EXPECT_EQ(status, 3);
}

TEST_F(ControllerFixture, CliHostAddListRemove) {
  std::string cli = std::string(IPFLEET_CLI_PATH) + " --controller unix:" + controller_->admin_socket().string();
  int status = -1;
  std::string out = RunCommand(cli + " host add web1 --address 192.0.2.10 --dns web1.example.net --label role=web", &status);
  ASSERT_EQ(status, 0) << out;
  EXPECT_NE(out.find("ipfleet-agent enroll --controller " + AgentTarget()), std::string::npos) << out;
  EXPECT_NE(out.find(fingerprint_), std::string::npos) << out;
  RunCommand(cli + " host add web1 --address 192.0.2.10 2>/dev/null", &status);
  EXPECT_EQ(status, 5);  // already exists
  RunCommand(cli + " host add web2 --address not-an-ip 2>/dev/null", &status);
  EXPECT_EQ(status, 2);
  out = RunCommand(cli + " -o json host list", &status);
  ASSERT_EQ(status, 0) << out;
  auto j = nlohmann::json::parse(out, nullptr, false);
  ASSERT_EQ(j.size(), 1u) << out;
  EXPECT_EQ(j[0]["labels"]["role"], "web");
  out = RunCommand(cli + " host remove web1", &status);
  EXPECT_EQ(status, 0) << out;
  out = RunCommand(cli + " -o json host list", &status);
  EXPECT_EQ(nlohmann::json::parse(out, nullptr, false).size(), 0u) << out;
}

TEST_F(ControllerFixture, RemoveHostRevokesItsCertificate) {
  auto agent = Enrolled("web1", "192.0.2.10");
  auto info = ca::InspectCertificatePem(agent->cert_pem());
  v1::RemoveHostRequest rr;
  rr.set_name("web1");
  v1::RemoveHostResponse resp;
  ASSERT_TRUE(admin_->RemoveHost(Ctx().get(), rr, &resp).ok());
  EXPECT_EQ(resp.revoked_serial(), info->serial_hex);
  // The CRL the controller hands out now lists it.
  EXPECT_TRUE(controller_->context().ca->IsRevoked(info->serial_hex));
  auto v = ca::VerifyPeerCertificate(agent->cert_pem(), ca_pem_, controller_->context().pki->CurrentCrl());
  EXPECT_FALSE(v.ok());
  SimSession s(*agent);
  s.Hello("web1");
  EXPECT_EQ(s.Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(ControllerFixture, ExternalPeerCertificateCannotOpenASession) {
  auto peer = NewAgent("router1");
  v1::IssueCertificateRequest ir;
  ir.set_csr_pem(peer->Csr());
  ir.set_name("router1");
  ir.add_ip_addresses("203.0.113.5");
  v1::IssueCertificateResponse resp;
  grpc::Status st = admin_->IssueCertificate(Ctx().get(), ir, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_FALSE(resp.serial().empty());
  peer->set_cert_pem(resp.certificate_pem());
  SimSession s(*peer);
  s.Hello("router1");
  EXPECT_EQ(s.Finish().error_code(), grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(ControllerFixture, RestartKeepsHostsCertsAndSessionsWork) {
  auto agent = Enrolled("web1", "192.0.2.10");
  AddHost("db1", {"192.0.2.20"});
  {
    SimSession s(*agent);
    ASSERT_TRUE(s.Hello("web1", 2));
    v1::AgentMessage m;
    *m.mutable_health() = SampleHealth();
    ASSERT_TRUE(s.Send(m));
    ASSERT_TRUE(WaitFor([&] { return StatusOf("web1").tunnels_total() == 2; }));
  }
  RestartController();
  v1::HostStatus hs = StatusOf("web1");
  EXPECT_FALSE(hs.connected());
  EXPECT_EQ(hs.tunnels_total(), 2u);
  EXPECT_EQ(hs.bundle_version(), 2u);
  EXPECT_GT(hs.last_seen_unix(), 0);
  v1::ListHostsResponse hosts;
  ASSERT_TRUE(admin_->ListHosts(Ctx().get(), v1::ListHostsRequest(), &hosts).ok());
  ASSERT_EQ(hosts.hosts_size(), 2);
  EXPECT_TRUE(hosts.hosts(1).enrolled());  // web1 (sorted after db1)
  // The agent reconnects to the new port with the same certificate.
  agent->set_target(AgentTarget());
  SimSession s(*agent);
  ASSERT_TRUE(s.Hello("web1", 2));
  EXPECT_TRUE(WaitFor([&] { return StatusOf("web1").connected(); }));
}

TEST_F(ControllerFixture, AdminOverTcpNeedsAnAdminCertificate) {
  // Restart with the AdminService also on TCP.
  controller_.reset();
  controller::ServeOptions o;
  o.data_dir = dir_;
  o.listen = "127.0.0.1:0";
  o.admin_listen = "127.0.0.1:0";
  o.fsync_every_commit = false;
  auto c = controller::Controller::Start(o);
  ASSERT_TRUE(c.ok()) << c.status();
  controller_ = std::move(*c);
  admin_ = v1::AdminService::NewStub(
      grpc::CreateChannel("unix:" + controller_->admin_socket().string(), grpc::InsecureChannelCredentials()));
  // An admin certificate issued through the socket, and an enrolled host's certificate.
  auto admin = NewAgent("alice");
  v1::IssueCertificateRequest ir;
  ir.set_csr_pem(admin->Csr());
  ir.set_name("alice");
  ir.set_kind("admin");
  v1::IssueCertificateResponse resp;
  ASSERT_TRUE(admin_->IssueCertificate(Ctx().get(), ir, &resp).ok());
  admin->set_cert_pem(resp.certificate_pem());
  auto host = Enrolled("web1", "192.0.2.10");
  auto tcp_stub = [&](SimAgent& who) {
    grpc::SslCredentialsOptions tls;
    tls.pem_root_certs = ca_pem_;
    tls.pem_private_key = *ca::PrivateKeyToPem(who.key());
    tls.pem_cert_chain = who.cert_pem();
    return v1::AdminService::NewStub(grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(controller_->admin_tcp_port()), grpc::SslCredentials(tls)));
  };
  v1::ListHostsResponse hosts;
  grpc::Status st = tcp_stub(*admin)->ListHosts(Ctx().get(), v1::ListHostsRequest(), &hosts);
  EXPECT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(hosts.hosts_size(), 1);
  st = tcp_stub(*host)->ListHosts(Ctx().get(), v1::ListHostsRequest(), &hosts);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED) << st.error_message();
  // The audit log names the certificate holder for TCP admin calls.
  v1::AddHostRequest ar;
  ar.set_name("web9");
  ar.add_addresses("192.0.2.99");
  v1::AddHostResponse added;
  ASSERT_TRUE(tcp_stub(*admin)->AddHost(Ctx().get(), ar, &added).ok());
  auto audit = controller_->context().store->ListAudit(1);
  ASSERT_TRUE(audit.ok());
  ASSERT_EQ(audit->size(), 1u);
  EXPECT_EQ(audit->front().actor, "cert:alice");
  EXPECT_EQ(audit->front().action, "host.add");
}

}  // namespace
}  // namespace ipfleet::testing
