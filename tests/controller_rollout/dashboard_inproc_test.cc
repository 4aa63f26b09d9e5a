// The dashboard's HTTP side against a real controller with simulated agents: the JSON endpoints
// answer what `ipfleet ... -o json` prints, who gets in and who does not, /metrics as a real
// Prometheus parser reads it, and bad or slow clients that must not stall anything.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <iterator>
#include <regex>
#include <nlohmann/json.hpp>
#include <thread>

#include "dashboard_fixture.h"
#include "harness/process.h"
#include "ipfleet/ca/csr.h"
#include "ipfleet/ca/keys.h"

namespace ipfleet::testing {
namespace {

using nlohmann::json;

class DashboardTest : public DashboardFixture {
 protected:
  // `ipfleet ARGS -o json` against this controller, parsed.
  json Cli(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {IPFLEET_CLI_PATH, "--controller", "unix:" + controller_->admin_socket().string(),
                                     "-o", "json"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = interop::RunOk(argv, std::chrono::seconds(20));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? json::parse(r->out, nullptr, false) : json();
  }

  json Api(const std::string& path) {
    auto res = DashboardClient()->Get(path.c_str());
    EXPECT_TRUE(res) << path << ": " << httplib::to_string(res.error());
    if (!res) return json();
    EXPECT_EQ(res->status, 200) << path << ": " << res->body;
    return json::parse(res->body, nullptr, false);
  }

  int Status(const std::string& path, const httplib::Headers& headers = {}) {
    auto res = DashboardClient()->Get(path.c_str(), headers);
    return res ? res->status : -1;
  }

  // last_seen moves with every message an agent sends; everything else must be identical.
  static json WithoutLastSeen(json j) {
    auto strip = [](json& arr) {
      for (auto& h : arr) h.erase("last_seen_unix");
    };
    if (j.is_array()) strip(j);
    if (j.is_object() && j.contains("hosts")) strip(j["hosts"]);
    if (j.is_object()) j.erase("last_seen_unix");
    return j;
  }

  // Key and certificate files of a freshly issued certificate of `kind` for `name`.
  std::pair<std::string, std::string> IssueClientCert(const std::string& name, const std::string& kind) {
    auto key = ca::GenerateKey(ca::KeyType::kEcdsaP256);
    EXPECT_TRUE(key.ok());
    v1::IssueCertificateRequest req;
    req.set_name(name);
    req.set_kind(kind);
    req.set_csr_pem(*ca::MakeCsrPem(key->get(), name));
    v1::IssueCertificateResponse resp;
    grpc::Status st = admin_->IssueCertificate(Ctx().get(), req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    std::string cert_path = (dir_ / (name + ".crt")).string(), key_path = (dir_ / (name + ".key")).string();
    std::ofstream(cert_path) << resp.certificate_pem();
    std::ofstream(key_path) << *ca::PrivateKeyToPem(key->get());
    return {cert_path, key_path};
  }

  int StatusWithClientCert(const std::pair<std::string, std::string>& files, const std::string& path) {
    httplib::SSLClient c("127.0.0.1", controller_->dashboard_port(), files.first, files.second);
    c.enable_server_certificate_verification(false);
    auto res = c.Get(path.c_str());
    return res ? res->status : -1;
  }
};

TEST_F(DashboardTest, ApiAnswersExactlyWhatTheCliPrints) {
  StartController();
  RollOutMesh();
  for (auto& [name, agent] : agents_) ReportHealth(*agent);
  ASSERT_TRUE(WaitFor([&] {
    json s = Api("/api/status");
    int up = 0;
    for (const auto& h : s["hosts"]) up += h["tunnels_up"].get<int>();
    return up == 6;
  })) << "health reports did not arrive";

  EXPECT_EQ(WithoutLastSeen(Api("/api/status")), WithoutLastSeen(Cli({"status"})));
  EXPECT_EQ(WithoutLastSeen(Api("/api/hosts")), WithoutLastSeen(Cli({"host", "list"})));
  EXPECT_EQ(WithoutLastSeen(Api("/api/hosts/h1")), WithoutLastSeen(Cli({"host", "show", "h1"})));
  EXPECT_EQ(Api("/api/hosts/h1/sas"), Cli({"sas", "h1"}));
  EXPECT_EQ(Api("/api/tunnels"), Cli({"tunnels"}));
  EXPECT_EQ(Api("/api/peers"), Cli({"peers"}));
  EXPECT_EQ(Api("/api/rollout"), Cli({"rollout", "status"}));
  EXPECT_EQ(Api("/api/certificates"), Cli({"cert", "list"}));

  json sas = Api("/api/hosts/h1/sas");
  ASSERT_EQ(sas["tunnels"].size(), 2u);
  EXPECT_EQ(sas["tunnels"][0]["child_sas"][0]["spi_in"], SpiFor("h1", 0, true));
  EXPECT_EQ(Status("/api/hosts/nope/sas"), 404);
  EXPECT_EQ(Status("/api/nothing"), 404);
}

TEST_F(DashboardTest, OnlyAdminsTokensAndLoopbackGetIn) {
  StartController();
  EXPECT_EQ(Status("/api/status"), 200) << "loopback clients are let in by default";
  EXPECT_EQ(Status("/api/status", {{"Authorization", "Bearer ipfd1.AAAA.BBBB"}}), 401) << "a wrong token is refused";
  EXPECT_EQ(Status("/api/status", {{"Cookie", "ipfleet_dashboard=forged"}}), 401);
  std::string token = NewDashboardToken();
  ASSERT_FALSE(token.empty());
  EXPECT_EQ(Status("/api/status", {{"Authorization", "Bearer " + token}}), 200);
  EXPECT_EQ(Status("/", {{"Cookie", "theme=dark; ipfleet_dashboard=" + token}}), 200);
  std::string tampered = token;
  tampered.back() = tampered.back() == 'A' ? 'B' : 'A';
  EXPECT_EQ(Status("/api/status", {{"Authorization", "Bearer " + tampered}}), 401);

  auto login = DashboardClient()->Get(("/login?token=" + token).c_str());
  ASSERT_TRUE(login);
  EXPECT_EQ(login->status, 303);
  std::string cookie = login->get_header_value("Set-Cookie");
  EXPECT_NE(cookie.find("ipfleet_dashboard=" + token), std::string::npos);
  EXPECT_NE(cookie.find("HttpOnly"), std::string::npos);
  EXPECT_NE(cookie.find("Secure"), std::string::npos);
  EXPECT_NE(cookie.find("SameSite=Strict"), std::string::npos);
  EXPECT_EQ(Status("/login?token=" + tampered), 401);
  EXPECT_EQ(Status("/login"), 401);

  EXPECT_EQ(StatusWithClientCert(IssueClientCert("ops", "admin"), "/api/status"), 200);
  EXPECT_EQ(StatusWithClientCert(IssueClientCert("router9", "external"), "/api/status"), 403)
      << "a fleet certificate that is not an admin's is refused";

  auto post = DashboardClient()->Post("/api/status", "x", "text/plain");
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 405) << "the dashboard is read-only";
}

TEST_F(DashboardTest, RequireAuthRefusesAnonymousLoopback) {
  StartController([](controller::ServeOptions& o) { o.dashboard_anonymous_loopback = false; });
  EXPECT_EQ(Status("/api/status"), 401);
  auto page = DashboardClient()->Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 401);
  EXPECT_NE(page->body.find("ipfleet dashboard token"), std::string::npos) << "the refusal says how to get in";
  EXPECT_EQ(Status("/api/status", {{"Authorization", "Bearer " + NewDashboardToken()}}), 200);
}

TEST_F(DashboardTest, TokenRefusedWhenNoDashboardRuns) {
  StartController([](controller::ServeOptions& o) { o.dashboard.clear(); });
  v1::CreateDashboardTokenResponse resp;
  grpc::Status st = admin_->CreateDashboardToken(Ctx().get(), v1::CreateDashboardTokenRequest(), &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(st.error_message().find("--dashboard"), std::string::npos) << st.error_message();
  EXPECT_EQ(controller_->dashboard_port(), 0);
}

TEST_F(DashboardTest, BadListenAddressIsAClearError) {
  controller::ServeOptions o;
  o.data_dir = dir_;
  o.listen = "127.0.0.1:0";
  o.dashboard = "localhost";
  auto c = controller::Controller::Start(o);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("ADDRESS:PORT"), std::string::npos) << c.status();
  o.dashboard.clear();
  o.metrics_listen = "0.0.0.0:0";
  c = controller::Controller::Start(o);
  ASSERT_FALSE(c.ok()) << "plain /metrics has no authentication: never beyond loopback";
  EXPECT_NE(c.status().message().find("non-loopback"), std::string::npos) << c.status();
}

// What a real Prometheus scraper reads: the reference parser (Debian's python3-prometheus-client,
// hence Debian's own python3, not whatever python3 comes first on PATH), run on both endpoints.
json ParseMetrics(const std::string& text, const fs::path& dir) {
  fs::path file = dir / "metrics.txt";
  std::ofstream(file) << text;
  auto r = interop::RunOk({"/usr/bin/python3", IPFLEET_PARSE_METRICS, file.string()}, std::chrono::seconds(20));
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? json::parse(r->out, nullptr, false) : json();
}

TEST_F(DashboardTest, MetricsReadByThePrometheusParser) {
  StartController();
  FakeAgent stranger("h9", ca_pem_);
  EXPECT_FALSE(stranger.Enroll(Target(), "not-a-token").ok());
  RollOutMesh();
  agents_["h3"]->Disconnect();
  ASSERT_TRUE(WaitFor([&] { return ConnectedCount() == 2; }));
  v1::SendCommandRequest cmd;
  cmd.set_host("h3");
  cmd.set_kind(v1::COMMAND_KIND_FLUSH_SA);
  v1::CommandStatus queued;
  ASSERT_TRUE(admin_->SendCommand(Ctx().get(), cmd, &queued).ok());

  httplib::Client plain("127.0.0.1", controller_->metrics_port());
  auto res = plain.Get("/metrics");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  EXPECT_NE(res->get_header_value("Content-Type").find("text/plain; version=0.0.4"), std::string::npos);
  json m = ParseMetrics(res->body, dir_);
  EXPECT_EQ(m["ipfleet_controller_hosts{state=connected}"], 2);
  EXPECT_EQ(m["ipfleet_controller_hosts{state=disconnected}"], 1);
  EXPECT_EQ(m["ipfleet_controller_sessions{}"], 2);
  EXPECT_EQ(m["ipfleet_controller_rollout_hosts{state=done}"], 3);
  EXPECT_EQ(m["ipfleet_controller_rollout_running{}"], 0);
  EXPECT_EQ(m["ipfleet_controller_commands_pending{}"], 1);
  EXPECT_EQ(m["ipfleet_controller_enrollment_failures_total{reason=NOT_FOUND}"], 1);
  EXPECT_EQ(m["#type ipfleet_controller_inventory_write_seconds"], "histogram");
  EXPECT_GT(m["ipfleet_controller_inventory_write_seconds_count{}"].get<double>(), 10);
  EXPECT_GT(m["ipfleet_controller_ca_not_after_timestamp_seconds{}"].get<double>(), std::time(nullptr));
  EXPECT_GT(m["ipfleet_controller_host_certificate_not_after_timestamp_seconds{host=h1}"].get<double>(),
            std::time(nullptr));
  EXPECT_EQ(m["ipfleet_controller_host_certificates_expiring{within=30d}"], 0);

  auto dash = DashboardClient()->Get("/metrics");
  ASSERT_TRUE(dash);
  ASSERT_EQ(dash->status, 200);
  json d = ParseMetrics(dash->body, dir_);
  EXPECT_EQ(d["ipfleet_controller_hosts{state=connected}"], 2) << "the dashboard serves the same registry";
  EXPECT_EQ(plain.Get("/other")->status, 404);

  // Every series the shipped Grafana dashboard queries is one the controller exports.
  std::ifstream grafana(IPFLEET_GRAFANA_DASHBOARD);
  std::string text((std::istreambuf_iterator<char>(grafana)), std::istreambuf_iterator<char>());
  std::regex metric("ipfleet_controller_[a-z_]+");
  int queried = 0;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), metric); it != std::sregex_iterator(); ++it) {
    std::string name = it->str();
    ++queried;
    EXPECT_NE(res->body.find("\n" + name), std::string::npos) << "Grafana queries " << name << ", not exported";
  }
  EXPECT_GT(queried, 10);
}

// A TLS connection driven by hand: the handshake completes, then the client is as slow or as
// malformed as the test wants.
class RawTls {
 public:
  explicit RawTls(int port) {
    ctx_ = SSL_CTX_new(TLS_client_method());
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    timeval tv{10, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return;
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, fd_);
    ok_ = SSL_connect(ssl_) == 1;
  }
  ~RawTls() {
    if (ssl_) SSL_free(ssl_);
    if (fd_ >= 0) ::close(fd_);
    SSL_CTX_free(ctx_);
  }
  bool ok() const { return ok_; }
  bool Write(const std::string& s) { return ok_ && SSL_write(ssl_, s.data(), static_cast<int>(s.size())) > 0; }
  // Everything until the server closes (or 10 s of silence).
  std::string ReadAll() {
    std::string out;
    char buf[4096];
    int n;
    while (ok_ && (n = SSL_read(ssl_, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    return out;
  }

 private:
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  int fd_ = -1;
  bool ok_ = false;
};

TEST_F(DashboardTest, MalformedOversizedAndSlowClientsNeverStallTheController) {
  constexpr int kMaxLife = 2;
  StartController([](controller::ServeOptions& o) { o.dashboard_max_connection_seconds = kMaxLife; });
  int port = controller_->dashboard_port();

  // Malformed request lines and oversized heads get an error answer, never a crash.
  {
    RawTls c(port);
    ASSERT_TRUE(c.ok());
    c.Write(std::string("\x01\x02 garbage\r\n\r\n", 14));
    EXPECT_NE(c.ReadAll().find("400"), std::string::npos);
  }
  {
    RawTls c(port);
    ASSERT_TRUE(c.ok());
    c.Write("GET /api/status HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(64 * 1024, 'a') + "\r\n\r\n");
    EXPECT_EQ(c.ReadAll().find("200 OK"), std::string::npos) << "a 64 KiB header line must not be served";
  }
  for (int i = 0; i < 20; ++i) {  // not TLS at all: the handshake fails, the worker moves on
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    [[maybe_unused]] auto n = ::write(fd, "GET / HTTP/1.1\r\n\r\n", 18);
    ::close(fd);
  }

  // Slowloris: more slow clients than workers, each sending one header byte every 300 ms (well
  // inside the 5 s read timeout). Each must be cut off after the connection's maximum life.
  constexpr int kSlow = 24;
  std::atomic<int> cut{0}, connected{0};
  std::atomic<int64_t> longest_ms{0};
  std::vector<std::thread> slow;
  for (int i = 0; i < kSlow; ++i) {
    slow.emplace_back([&, port] {
      RawTls c(port);
      if (!c.ok()) return;
      ++connected;
      auto start = std::chrono::steady_clock::now();
      c.Write("GET /api/status HTTP/1.1\r\nHost: x\r\nX-Slow: ");
      for (int k = 0; k < 40; ++k) {  // bounded: 12 s at most
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        if (!c.Write("a")) break;
      }
      c.ReadAll();
      int64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start)
                       .count();
      if (ms < 10000) ++cut;
      int64_t prev = longest_ms.load();
      while (ms > prev && !longest_ms.compare_exchange_weak(prev, ms)) {
      }
    });
  }
  ASSERT_TRUE(WaitFor([&] { return connected.load() >= 16; }, std::chrono::seconds(10)));

  // Meanwhile the admin API answers at once, and the dashboard answers a normal request once a
  // slow client's connection has been cut.
  v1::FleetStatusResponse fs;
  EXPECT_TRUE(admin_->FleetStatus(Ctx(2).get(), v1::FleetStatusRequest(), &fs).ok());
  auto t0 = std::chrono::steady_clock::now();
  auto client = DashboardClient();
  client->set_read_timeout(15, 0);
  auto res = client->Get("/api/status");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(kMaxLife + 5));

  for (auto& t : slow) t.join();
  EXPECT_EQ(cut.load(), connected.load()) << "every slow client is cut off";
  EXPECT_LT(longest_ms.load(), (kMaxLife + 4) * 1000) << "a slow connection outlived its maximum life";
  EXPECT_EQ(Status("/api/status"), 200) << "the dashboard still serves";
}

}  // namespace
}  // namespace ipfleet::testing
