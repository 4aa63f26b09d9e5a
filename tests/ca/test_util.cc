#include "test_util.h"

#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace ipfleet::ca::testing {

namespace fs = std::filesystem;

TempDir::TempDir() {
  std::string tmpl = (fs::temp_directory_path() / "ipfleet-ca-test.XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

CmdResult Sh(const std::string& cmd) {
  CmdResult r;
  std::string full = "(" + cmd + ") 2>&1";
  FILE* p = popen(full.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string Q(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

std::string Q(const fs::path& p) { return Q(p.string()); }

void WriteFile(const fs::path& p, const std::string& data) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f << data;
  if (!f) throw std::runtime_error("cannot write " + p.string());
}

std::string ReadFile(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

Snapshot TakeSnapshot(const fs::path& root) {
  Snapshot snap;
  auto add = [&](const fs::path& p) {
    struct stat st {};
    if (lstat(p.c_str(), &st) != 0) return;
    std::ostringstream v;
    v << (S_ISDIR(st.st_mode) ? "dir" : "file") << " " << (S_ISDIR(st.st_mode) ? 0 : st.st_size) << " "
      << std::oct << (st.st_mode & 07777) << std::dec << " " << st.st_mtim.tv_sec << "." << st.st_mtim.tv_nsec;
    snap[p.string()] = v.str();
  };
  std::error_code ec;
  if (!fs::exists(root, ec)) return snap;
  add(root);
  for (auto it = fs::recursive_directory_iterator(root, ec); it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    add(it->path());
  }
  return snap;
}

std::string OpensslCsr(const fs::path& dir, const std::string& keyspec, const std::string& basename) {
  fs::path key = dir / (basename + ".key");
  fs::path csr = dir / (basename + ".csr");
  CmdResult r = Sh("openssl req -new -newkey " + keyspec + " -nodes -keyout " + Q(key) +
                    " -subj /CN=evil.example/O=Attacker -addext subjectAltName=DNS:evil.example,IP:6.6.6.6" +
                    " -addext basicConstraints=critical,CA:TRUE -out " + Q(csr));
  if (r.exit_code != 0) throw std::runtime_error("openssl req failed: " + r.output);
  return ReadFile(csr);
}

std::string BreakCsrSignature(const fs::path& dir, const std::string& csr_pem) {
  fs::path in = dir / "tobreak.csr";
  fs::path der = dir / "tobreak.der";
  WriteFile(in, csr_pem);
  if (Sh("openssl req -in " + Q(in) + " -outform DER -out " + Q(der)).exit_code != 0) {
    throw std::runtime_error("openssl req -outform DER failed");
  }
  std::string bytes = ReadFile(der);
  // The signature BIT STRING is the last element: flipping its final byte breaks the signature
  // while the structure still parses.
  bytes.back() = static_cast<char>(bytes.back() ^ 0x01);
  WriteFile(der, bytes);
  fs::path out = dir / "broken.csr";
  CmdResult r = Sh("openssl req -inform DER -in " + Q(der) + " -out " + Q(out));
  if (r.exit_code != 0) throw std::runtime_error("openssl req -inform DER failed: " + r.output);
  return ReadFile(out);
}

}  // namespace ipfleet::ca::testing
