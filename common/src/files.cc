#include "ipfleet/common/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace ipfleet::files {
namespace {

absl::Status ErrnoStatus(std::string_view what, const std::filesystem::path& path, int err) {
  std::string msg(what);
  msg += " ";
  msg += path.string();
  msg += ": ";
  msg += std::strerror(err);
  if (err == ENOENT) return absl::NotFoundError(msg);
  if (err == EACCES || err == EPERM) return absl::PermissionDeniedError(msg);
  return absl::InternalError(msg);
}

}  // namespace

absl::Status WriteAtomic(const std::filesystem::path& path, std::string_view data, mode_t mode) {
  std::filesystem::path dir = path.parent_path();
  if (dir.empty()) dir = ".";
  // Built by appending: GCC 12 -O3 reports a false -Wrestrict on `"." + std::string`.
  std::string name = ".";
  name += path.filename().string();
  name += ".tmpXXXXXX";
  std::string tmpl = (dir / name).string();
  int fd = mkstemp(tmpl.data());
  if (fd < 0) return ErrnoStatus("create temporary file in", dir, errno);
  auto fail = [&](std::string_view what) {
    int err = errno;
    close(fd);
    unlink(tmpl.c_str());
    return ErrnoStatus(what, path, err);
  };
  if (fchmod(fd, mode) != 0) return fail("chmod");
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("write");
    }
    off += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0) return fail("fsync");
  if (close(fd) != 0) {
    int err = errno;
    unlink(tmpl.c_str());
    return ErrnoStatus("close", path, err);
  }
  if (rename(tmpl.c_str(), path.c_str()) != 0) {
    int err = errno;
    unlink(tmpl.c_str());
    return ErrnoStatus("rename onto", path, err);
  }
  int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> Read(const std::filesystem::path& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("open", path, errno);
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      close(fd);
      return ErrnoStatus("read", path, err);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

absl::Status EnsureDir(const std::filesystem::path& path, mode_t mode) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) return absl::InternalError("create directory " + path.string() + ": " + ec.message());
  if (chmod(path.c_str(), mode) != 0) return ErrnoStatus("chmod", path, errno);
  return absl::OkStatus();
}

}  // namespace ipfleet::files
