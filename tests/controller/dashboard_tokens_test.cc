// Dashboard login tokens: accepted until they expire, refused when forged, tampered with or made
// under another key; the key file is made once, 0600.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "ipfleet/controller/api/dashboard_tokens.h"

namespace ipfleet::controller {
namespace {

namespace fs = std::filesystem;

class DashboardTokensTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("ipf-tokens-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(DashboardTokensTest, ValidUntilExpiryThenRefused) {
  auto t = DashboardTokens::LoadOrCreate(dir_);
  ASSERT_TRUE(t.ok()) << t.status();
  int64_t expires = 0;
  auto token = (*t)->Issue(1000, 60, &expires);
  ASSERT_TRUE(token.ok());
  EXPECT_EQ(expires, 1060);
  EXPECT_TRUE((*t)->Check(*token, 1059).ok());
  absl::Status late = (*t)->Check(*token, 1060);
  EXPECT_TRUE(absl::IsUnauthenticated(late));
  EXPECT_NE(late.message().find("expired"), std::string::npos) << late;
  EXPECT_EQ(late.message().find(*token), std::string::npos) << "a refusal never repeats the token";
  auto deflt = (*t)->Issue(0, 0, &expires);
  ASSERT_TRUE(deflt.ok());
  EXPECT_EQ(expires, DashboardTokens::kDefaultTtlSeconds);
}

TEST_F(DashboardTokensTest, ForgedTamperedAndForeignTokensRefused) {
  auto t = DashboardTokens::LoadOrCreate(dir_);
  ASSERT_TRUE(t.ok());
  std::string token = *(*t)->Issue(1000, 3600, nullptr);
  for (size_t i = 6; i < token.size(); ++i) {  // every character of payload and MAC, the last one too
    std::string bad = token;
    bad[i] = bad[i] == 'A' ? 'B' : 'A';
    EXPECT_FALSE((*t)->Check(bad, 1001).ok()) << "position " << i;
  }
  EXPECT_FALSE((*t)->Check("", 1001).ok());
  EXPECT_FALSE((*t)->Check("ipfd1.", 1001).ok());
  EXPECT_FALSE((*t)->Check("Bearer " + token, 1001).ok());
  DashboardTokens other(std::string(32, 'k'));
  EXPECT_FALSE(other.Check(token, 1001).ok()) << "another key (another controller) refuses it";
  EXPECT_FALSE((*t)->Issue(1000, DashboardTokens::kMaxTtlSeconds + 1, nullptr).ok());
  EXPECT_FALSE((*t)->Issue(1000, -5, nullptr).ok());
}

TEST_F(DashboardTokensTest, KeyFileIsPrivateAndStable) {
  auto a = DashboardTokens::LoadOrCreate(dir_);
  ASSERT_TRUE(a.ok());
  struct stat st {};
  ASSERT_EQ(::stat((dir_ / "dashboard.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::string token = *(*a)->Issue(1000, 3600, nullptr);
  auto b = DashboardTokens::LoadOrCreate(dir_);
  ASSERT_TRUE(b.ok());
  EXPECT_TRUE((*b)->Check(token, 1001).ok()) << "a restarted controller still accepts its tokens";
  fs::resize_file(dir_ / "dashboard.key", 5);
  EXPECT_FALSE(DashboardTokens::LoadOrCreate(dir_).ok()) << "a damaged key is an error, not silently replaced";
}

}  // namespace
}  // namespace ipfleet::controller
