// Helpers for the CA tests: temporary directories, running the openssl CLI (the independent
// judge), snapshots of a directory tree to prove that failed commands wrote nothing.
#pragma once

#include <filesystem>
#include <map>
#include <string>

namespace ipfleet::ca::testing {

// A fresh directory under $TMPDIR, removed recursively on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

struct CmdResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Runs `cmd` through /bin/sh; output captured (stderr merged).
CmdResult Sh(const std::string& cmd);

// Single-quotes a path or argument for the shell.
std::string Q(const std::string& s);
std::string Q(const std::filesystem::path& p);

void WriteFile(const std::filesystem::path& p, const std::string& data);
std::string ReadFile(const std::filesystem::path& p);

// path -> "type size mode mtime_ns" for everything under `root` (inclusive of root itself).
using Snapshot = std::map<std::string, std::string>;
Snapshot TakeSnapshot(const std::filesystem::path& root);

// A CSR made by the openssl CLI for a new key: `keyspec` is an openssl req -newkey argument
// list, e.g. "ec -pkeyopt ec_paramgen_curve:P-256", "rsa:2048", "ed25519". The subject and a
// requested SAN are deliberately hostile so tests can check the CA ignores them.
std::string OpensslCsr(const std::filesystem::path& dir, const std::string& keyspec,
                       const std::string& basename);

// The same CSR with one byte of its signature flipped (DER edited, re-encoded as PEM).
std::string BreakCsrSignature(const std::filesystem::path& dir, const std::string& csr_pem);

}  // namespace ipfleet::ca::testing
