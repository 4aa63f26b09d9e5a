// The dashboard in a real browser: Debian's headless Chromium driven over the W3C WebDriver
// protocol (Debian's chromedriver), against a controller with simulated agents. Screenshots go
// to build/test-artifacts/dashboard/. Skips, saying so, when chromium or chromedriver is missing.
#include <absl/strings/escaping.h>
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "dashboard_fixture.h"
#include "free_port.h"
#include "harness/process.h"

namespace ipfleet::testing {
namespace {

using nlohmann::json;

constexpr char kChromium[] = "/usr/bin/chromium";
constexpr char kChromedriver[] = "/usr/bin/chromedriver";

// The few WebDriver commands the test needs (https://www.w3.org/TR/webdriver2/).
class WebDriver {
 public:
  absl::Status Start(const fs::path& work) {
    port_ = FreeLoopbackPort();
    auto p = interop::Process::Spawn({kChromedriver, "--port=" + std::to_string(port_)}, {},
                                     (work / "chromedriver.log").string());
    if (!p.ok()) return p.status();
    driver_ = std::move(*p);
    http_ = std::make_unique<httplib::Client>("127.0.0.1", port_);
    http_->set_read_timeout(60, 0);
    if (!interop::WaitFor([&] { auto r = http_->Get("/status"); return r && r->status == 200; },
                          std::chrono::seconds(20))) {
      return absl::UnavailableError("chromedriver did not answer on /status");
    }
    // The flags this machine needs: no sandbox as root, and no background connections (the
    // network is closed; Chromium would otherwise retry them all the time).
    json args = {"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,1100", "--user-data-dir=" + (work / "chromium").string()};
    json caps = {{"capabilities",
                  {{"alwaysMatch",
                    {{"browserName", "chrome"},
                     {"acceptInsecureCerts", true},  // the controller's certificate is from the fleet CA
                     {"goog:chromeOptions", {{"binary", kChromium}, {"args", args}}}}}}}};
    json r = Call("POST", "/session", caps);
    if (!r.contains("sessionId")) return absl::UnavailableError("no WebDriver session: " + r.dump());
    session_ = r["sessionId"];
    return absl::OkStatus();
  }

  ~WebDriver() {
    if (!session_.empty()) Call("DELETE", "/session/" + session_, nullptr);
  }

  void Open(const std::string& url) { Call("POST", Path("/url"), {{"url", url}}); }
  json Run(const std::string& script) { return Call("POST", Path("/execute/sync"), {{"script", script}, {"args", json::array()}}); }
  // Polls `script` every 100 ms until it returns `want`; the last value otherwise.
  json WaitFor(const std::string& script, const json& want, std::chrono::milliseconds timeout) {
    json last;
    interop::WaitFor([&] { return (last = Run(script)) == want; }, timeout, std::chrono::milliseconds(100));
    return last;
  }
  void Screenshot(const fs::path& file) {
    json b64 = Call("GET", Path("/screenshot"), nullptr);
    std::string png;
    ASSERT_TRUE(b64.is_string() && absl::Base64Unescape(b64.get<std::string>(), &png)) << "no screenshot";
    std::ofstream(file, std::ios::binary) << png;
  }

 private:
  std::string Path(const std::string& suffix) const { return "/session/" + session_ + suffix; }
  json Call(const std::string& method, const std::string& path, const json& body) {
    httplib::Result r = method == "GET"      ? http_->Get(path.c_str())
                        : method == "DELETE" ? http_->Delete(path.c_str())
                                             : http_->Post(path.c_str(), body.dump(), "application/json");
    if (!r) return json{{"error", httplib::to_string(r.error())}};
    json j = json::parse(r->body, nullptr, false);
    return j.is_object() && j.contains("value") ? j["value"] : j;
  }

  int port_ = 0;
  interop::Process driver_;
  std::unique_ptr<httplib::Client> http_;
  std::string session_;
};

class DashboardBrowserTest : public DashboardFixture {};

TEST_F(DashboardBrowserTest, OverviewCountsLiveTunnelStateAndHostPage) {
  if (!fs::exists(kChromium) || !fs::exists(kChromedriver)) {
    GTEST_SKIP() << "chromium or chromedriver missing (Debian packages chromium, chromium-driver; "
                    "deploy/install-deps.sh installs them)";
  }
  fs::path artifacts = IPFLEET_ARTIFACT_DIR;
  fs::create_directories(artifacts);
  StartController();
  RollOutMesh();
  for (auto& [name, agent] : agents_) ReportHealth(*agent);

  WebDriver browser;
  ASSERT_TRUE(browser.Start(dir_).ok()) << "see " << (dir_ / "chromedriver.log");
  browser.Open(DashboardUrl() + "/");
  auto text = [](const std::string& id) { return "return document.getElementById('" + id + "').textContent;"; };
  EXPECT_EQ(browser.WaitFor(text("tunnels-up"), "3", std::chrono::seconds(20)), "3")
      << "page says: " << browser.Run(text("error")) << " / " << browser.Run(text("updated")) << " / scripts: "
      << browser.Run("return typeof schedule + ' ' + document.readyState + ' ' + (document.body.dataset.loaded || 0);")
      << " / fetch: " << browser.Run("return fetch('/api/status').then(r => r.status + ' ' + r.statusText).catch(e => 'error ' + e);");
  EXPECT_EQ(browser.Run(text("hosts-connected")), "3");
  EXPECT_EQ(browser.Run(text("hosts-total")), "3");
  EXPECT_EQ(browser.Run(text("tunnels-total")), "3");
  EXPECT_EQ(browser.Run("return document.querySelectorAll('#topology line.edge').length;"), 3);
  EXPECT_EQ(browser.Run("return document.querySelectorAll('#rollout .wave').length > 0;"), true);
  EXPECT_EQ(browser.Run("return document.getElementById('rollout-summary').dataset.state;"), "succeeded");
  browser.Screenshot(artifacts / "overview.png");

  // A tunnel goes down on h1: its edge turns red within 5 s, without a reload (the marker set
  // on this window survives).
  browser.Run("window.ipfleetTestMarker = 42; return true;");
  std::string tunnel = agents_["h1"]->applied_tunnels().at(0);
  auto t0 = std::chrono::steady_clock::now();
  ReportHealth(*agents_["h1"], tunnel);
  std::string edge = "const e = document.querySelector('#topology line[data-tunnel=\"" + tunnel +
                     "\"]'); return e ? e.getAttribute('data-state') + ' ' + e.getAttribute('stroke') : 'missing';";
  EXPECT_EQ(browser.WaitFor(edge, "down #d32f2f", std::chrono::seconds(5)), "down #d32f2f");
  auto red_after = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  EXPECT_LT(red_after, std::chrono::milliseconds(5500));
  RecordProperty("tunnel_red_after_ms", static_cast<int>(red_after.count()));
  std::printf("tunnel reported down -> red edge in the page after %lld ms\n", static_cast<long long>(red_after.count()));
  EXPECT_EQ(browser.Run(text("tunnels-up")), "2");
  EXPECT_EQ(browser.Run("return window.ipfleetTestMarker;"), 42) << "the page was reloaded";
  EXPECT_EQ(browser.Run("return document.querySelector('#tunnels tr[data-tunnel=\"" + tunnel +
                        "\"] td:last-child').className;"),
            "state-down");
  browser.Screenshot(artifacts / "tunnel-down.png");

  // The host page lists h2's SAs with their SPIs and counters.
  browser.Run("location.hash = '#/host/h2'; return true;");
  std::string spis = "return Array.from(document.querySelectorAll('#host-tunnels .sa[data-spi-in]'))"
                     ".map(e => e.dataset.spiIn).sort().join(',');";
  std::string want = SpiFor("h2", 0, true) + "," + SpiFor("h2", 1, true);
  EXPECT_EQ(browser.WaitFor(spis, want, std::chrono::seconds(5)), want);
  EXPECT_EQ(browser.Run(text("host-name")), "h2");
  EXPECT_EQ(browser.Run("return document.getElementById('page-overview').classList.contains('hidden');"), true);
  browser.Screenshot(artifacts / "host-h2.png");
  EXPECT_GT(fs::file_size(artifacts / "host-h2.png"), 1000u);
}

}  // namespace
}  // namespace ipfleet::testing
