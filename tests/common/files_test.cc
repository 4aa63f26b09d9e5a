#include "ipfleet/common/files.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

namespace ipfleet::files {
namespace {

std::filesystem::path TempDir() {
  auto dir = std::filesystem::temp_directory_path() / ("ipfleet-files-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  return dir;
}

TEST(Files, WriteAtomicSetsModeAndContent) {
  auto path = TempDir() / "key.pem";
  ASSERT_TRUE(WriteAtomic(path, "secret", 0600).ok());
  struct stat st{};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(*Read(path), "secret");
  ASSERT_TRUE(WriteAtomic(path, "new", 0600).ok());
  EXPECT_EQ(*Read(path), "new");
  std::filesystem::remove_all(path.parent_path());
}

TEST(Files, WriteIntoMissingDirFailsAndNamesPath) {
  auto st = WriteAtomic("/nonexistent-ipfleet-dir/x", "data", 0600);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("/nonexistent-ipfleet-dir"), std::string::npos);
}

TEST(Files, ReadMissingIsNotFound) {
  auto r = Read("/nonexistent-ipfleet-file");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace ipfleet::files
