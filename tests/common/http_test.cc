// The metrics registry's text format (histograms, collectors) and the HTTP server's guards.
#include <gtest/gtest.h>

#include "ipfleet/common/http/metrics_endpoint.h"
#include "ipfleet/common/http/server.h"
#include "ipfleet/common/metrics.h"

namespace ipfleet {
namespace {

TEST(MetricsTest, HistogramBucketsAreCumulative) {
  Metrics m;
  m.Declare("lat_seconds", Metrics::Type::kHistogram, "Latency.", {0.1, 1});
  m.Observe("lat_seconds", {}, 0.05);
  m.Observe("lat_seconds", {}, 0.5);
  m.Observe("lat_seconds", {}, 7);
  std::string out = m.Render();
  EXPECT_NE(out.find("# TYPE lat_seconds histogram\n"), std::string::npos);
  EXPECT_NE(out.find("lat_seconds_bucket{le=\"0.1\"} 1\n"), std::string::npos) << out;
  EXPECT_NE(out.find("lat_seconds_bucket{le=\"1\"} 2\n"), std::string::npos) << out;
  EXPECT_NE(out.find("lat_seconds_bucket{le=\"+Inf\"} 3\n"), std::string::npos) << out;
  EXPECT_NE(out.find("lat_seconds_count 3\n"), std::string::npos) << out;
  EXPECT_NE(out.find("lat_seconds_sum 7.55\n"), std::string::npos) << out;
}

TEST(MetricsTest, CollectorsRunAtEveryRenderAndLabelsAreEscaped) {
  Metrics m;
  int runs = 0;
  m.AddCollector([&runs](Metrics& r) { r.Set("scrapes", {{"path", "a\"b\\c\nd"}}, ++runs); });
  m.Render();
  std::string out = m.Render();
  EXPECT_EQ(runs, 2);
  EXPECT_NE(out.find("scrapes{path=\"a\\\"b\\\\c\\nd\"} 2\n"), std::string::npos) << out;
}

TEST(HttpServerTest, LoopbackRecognised) {
  for (const char* ip : {"127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"}) EXPECT_TRUE(http::IsLoopbackAddress(ip)) << ip;
  for (const char* ip : {"192.0.2.1", "0.0.0.0", "::", "::ffff:192.0.2.1", "2001:db8::1", "", "localhost"}) {
    EXPECT_FALSE(http::IsLoopbackAddress(ip)) << ip;
  }
}

TEST(HttpServerTest, RefusesBadAddressesAndBadTls) {
  Metrics m;
  http::MetricsEndpoint wide(m, "0.0.0.0", 0);
  absl::Status st = wide.Start();
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("non-loopback"), std::string::npos) << st;
  http::MetricsEndpoint name(m, "localhost", 0);
  EXPECT_FALSE(name.Start().ok()) << "an IP literal, not a name";

  http::ServerOptions o;
  o.tls_chain_pem = "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n";
  o.tls_key_pem = "garbage";
  http::Server tls(o);
  st = tls.Start();
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("TLS"), std::string::npos) << st;
}

TEST(HttpServerTest, MetricsEndpointServesOnlyMetrics) {
  Metrics m;
  m.Set("up", {}, 1);
  http::MetricsEndpoint e(m, "127.0.0.1", 0);
  ASSERT_TRUE(e.Start().ok());
  httplib::Client c("127.0.0.1", e.port());
  auto ok = c.Get("/metrics");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  EXPECT_NE(ok->body.find("up 1\n"), std::string::npos);
  auto missing = c.Get("/");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  auto post = c.Post("/metrics", std::string(200 * 1024, 'x'), "text/plain");
  ASSERT_TRUE(post);
  EXPECT_NE(post->status, 200) << "no body is accepted beyond the limit";
  e.Stop();
}

}  // namespace
}  // namespace ipfleet
