// CA issuance throughput: the ipfleet CA library (in-process, CSR parse + signature check +
// certificate build + ECDSA/RSA signature + PEM, then stored in an SQLite table) beside a loop of
// `openssl x509 -req -CA ...` processes on the same CSRs. Prints both rates and their ratio.
//
//   ca_issue_bench [--count N] [--openssl-count M] [--threads T] [--ca-key ecdsa-p256|rsa-3072]
//
// "Issued and stored": a certificate counts once its row is committed to the SQLite table
// (WAL, synchronous=NORMAL, batched transactions), as the controller would store it.
#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sqlite3.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ipfleet/ca/authority.h"
#include "ipfleet/ca/csr.h"
#include "ipfleet/ca/keys.h"
#include "ipfleet/ca/layout.h"
#include "ipfleet/common/files.h"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using ipfleet::ca::CertificateAuthority;
using ipfleet::ca::IssuedCert;
using ipfleet::ca::IssueRequest;

double CpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

void WritePlain(const fs::path& p, const std::string& data) {
  std::ofstream f(p, std::ios::trunc);
  f << data;
  if (!f) {
    std::cerr << "ca_issue_bench: cannot write " << p << "\n";
    std::exit(1);
  }
}

struct Rate {
  double per_sec = 0;      // wall clock
  double cpu_us_per = 0;   // CPU time of this process per certificate
};

[[noreturn]] void Die(const std::string& msg) {
  std::cerr << "ca_issue_bench: " << msg << "\n";
  std::exit(1);
}

// The bench's certificate table: what the controller's store keeps per certificate.
class SqliteSink {
 public:
  explicit SqliteSink(const fs::path& path) {
    if (sqlite3_open(path.c_str(), &db_) != SQLITE_OK) Die("sqlite3_open failed");
    Exec("PRAGMA journal_mode=WAL");
    Exec("PRAGMA synchronous=NORMAL");
    Exec("CREATE TABLE certificates (serial TEXT PRIMARY KEY, name TEXT NOT NULL, kind TEXT NOT NULL,"
         " not_before INTEGER NOT NULL, not_after INTEGER NOT NULL, pem TEXT NOT NULL)");
    if (sqlite3_prepare_v2(db_, "INSERT INTO certificates VALUES (?1, ?2, ?3, ?4, ?5, ?6)", -1, &insert_,
                           nullptr) != SQLITE_OK) {
      Die(std::string("sqlite3_prepare_v2: ") + sqlite3_errmsg(db_));
    }
  }
  ~SqliteSink() {
    sqlite3_finalize(insert_);
    sqlite3_close(db_);
  }
  // One transaction per batch; thread-safe.
  void Store(const std::vector<IssuedCert>& batch) {
    std::lock_guard<std::mutex> g(mu_);
    Exec("BEGIN");
    for (const IssuedCert& c : batch) {
      sqlite3_bind_text(insert_, 1, c.serial_hex.c_str(), -1, SQLITE_STATIC);
      sqlite3_bind_text(insert_, 2, c.common_name.c_str(), -1, SQLITE_STATIC);
      sqlite3_bind_text(insert_, 3, "host", -1, SQLITE_STATIC);
      sqlite3_bind_int64(insert_, 4, std::chrono::system_clock::to_time_t(c.not_before));
      sqlite3_bind_int64(insert_, 5, std::chrono::system_clock::to_time_t(c.not_after));
      sqlite3_bind_text(insert_, 6, c.pem.c_str(), static_cast<int>(c.pem.size()), SQLITE_STATIC);
      if (sqlite3_step(insert_) != SQLITE_DONE) Die(std::string("sqlite3_step: ") + sqlite3_errmsg(db_));
      sqlite3_reset(insert_);
    }
    Exec("COMMIT");
  }
  int64_t Count() {
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db_, "SELECT count(*) FROM certificates", -1, &st, nullptr);
    sqlite3_step(st);
    int64_t n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
  }

 private:
  void Exec(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : "?";
      sqlite3_free(err);
      Die(std::string("sqlite3_exec(") + sql + "): " + msg);
    }
  }
  sqlite3* db_ = nullptr;
  sqlite3_stmt* insert_ = nullptr;
  std::mutex mu_;
};

IssueRequest RequestFor(size_t i) {
  IssueRequest r;
  r.common_name = "host" + std::to_string(i);
  r.ips = {"10." + std::to_string((i >> 16) & 255) + "." + std::to_string((i >> 8) & 255) + "." +
           std::to_string(i & 255)};
  r.dns = {r.common_name + ".fleet.example"};
  r.days = 365;
  return r;
}

// Library: `count` certificates from the precomputed CSRs on `threads` threads, each batch of
// issued certificates committed to SQLite. Returns certificates per second.
Rate BenchLibrary(const CertificateAuthority& ca, const std::vector<std::string>& csrs, size_t count,
                    int threads, const fs::path& db_path) {
  std::error_code ec;
  fs::remove(db_path, ec);
  SqliteSink sink(db_path);
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  constexpr size_t kBatch = 256;
  double cpu0 = CpuSeconds();
  auto t0 = Clock::now();
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      std::vector<IssuedCert> batch;
      batch.reserve(kBatch);
      for (size_t i; (i = next.fetch_add(1)) < count;) {
        auto c = ca.Issue(csrs[i % csrs.size()], RequestFor(i));
        if (!c.ok()) {
          std::cerr << "issue failed: " << c.status() << "\n";
          failed = true;
          return;
        }
        batch.push_back(std::move(*c));
        if (batch.size() == kBatch) {
          sink.Store(batch);
          batch.clear();
        }
      }
      if (!batch.empty()) sink.Store(batch);
    });
  }
  for (auto& w : workers) w.join();
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  double cpu = CpuSeconds() - cpu0;
  if (failed) Die("library issuance failed");
  if (static_cast<size_t>(sink.Count()) != count) Die("stored count mismatch");
  return Rate{static_cast<double>(count) / secs, cpu * 1e6 / static_cast<double>(count)};
}

// openssl: one `openssl x509 -req` process per CSR, sequentially (as a shell loop would).
double BenchOpenssl(const fs::path& work, const fs::path& data_dir, size_t count, size_t csr_count) {
  const std::string ext = (work / "ext.cnf").string();
  auto t0 = Clock::now();
  for (size_t i = 0; i < count; ++i) {
    IssueRequest r = RequestFor(i);
    // Same extensions the library puts in a host certificate.
    std::string cnf = "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                      "extendedKeyUsage=1.3.6.1.5.5.7.3.17,clientAuth\nsubjectKeyIdentifier=hash\n"
                      "authorityKeyIdentifier=keyid\nsubjectAltName=IP:" + r.ips[0] + ",DNS:" + r.dns[0] + "\n";
    WritePlain(ext, cnf);
    std::string csr = (work / ("csr" + std::to_string(i % csr_count) + ".pem")).string();
    std::string out = (work / "openssl.crt").string();
    std::string subj = "/CN=" + r.common_name;
    std::string ca_crt = ipfleet::ca::layout::CaCert(data_dir).string();
    std::string ca_key = ipfleet::ca::layout::CaKey(data_dir).string();
    std::vector<std::string> args = {"openssl", "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key,
                                     "-days", "365", "-subj", subj, "-extfile", ext, "-out", out};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    if (posix_spawnp(&pid, "openssl", &fa, nullptr, argv.data(), environ) != 0) Die("posix_spawnp openssl");
    posix_spawn_file_actions_destroy(&fa);
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) Die("openssl x509 -req failed for " + csr);
  }
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  return static_cast<double>(count) / secs;
}

}  // namespace

int main(int argc, char** argv) {
  size_t count = 50000;
  size_t openssl_count = 200;
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::string key_type = "ecdsa-p256";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--count") count = std::stoul(argv[i + 1]);
    else if (a == "--openssl-count") openssl_count = std::stoul(argv[i + 1]);
    else if (a == "--threads") threads = std::stoi(argv[i + 1]);
    else if (a == "--ca-key") key_type = argv[i + 1];
    else Die("unknown flag " + a);
  }
  auto kt = ipfleet::ca::ParseKeyType(key_type);
  if (!kt.ok()) Die(std::string(kt.status().message()));

  char tmpl[] = "/tmp/ipfleet-ca-bench.XXXXXX";
  if (mkdtemp(tmpl) == nullptr) Die("mkdtemp");
  fs::path work(tmpl);
  fs::path data_dir = work / "data";
  ipfleet::ca::InitOptions opts;
  opts.key_type = *kt;
  auto ca = CertificateAuthority::Init(data_dir, opts);
  if (!ca.ok()) Die(std::string(ca.status().message()));

  // Precomputed CSRs (agents' keys are EC P-256), shared by both contenders.
  const size_t csr_count = 1000;
  std::vector<std::string> csrs;
  for (size_t i = 0; i < csr_count; ++i) {
    auto key = ipfleet::ca::GenerateKey(ipfleet::ca::KeyType::kEcdsaP256);
    if (!key.ok()) Die("keygen");
    auto csr = ipfleet::ca::MakeCsrPem(key->get(), "agent" + std::to_string(i));
    if (!csr.ok()) Die("csr");
    csrs.push_back(*csr);
    WritePlain(work / ("csr" + std::to_string(i) + ".pem"), *csr);
  }

  std::printf("CA key %s, %zu precomputed EC P-256 CSRs, %u CPUs\n", key_type.c_str(), csr_count,
              std::thread::hardware_concurrency());
  Rate lib1 = BenchLibrary(**ca, csrs, count, 1, work / "certs1.db");
  std::printf("ipfleet library, 1 thread : %9.0f certs/s issued+stored (%zu certs into SQLite; %.0f us CPU/cert)\n",
              lib1.per_sec, count, lib1.cpu_us_per);
  Rate libn = lib1;
  if (threads > 1) {
    libn = BenchLibrary(**ca, csrs, count, threads, work / "certsN.db");
    std::printf("ipfleet library, %d threads: %9.0f certs/s issued+stored (%zu certs into SQLite; %.0f us CPU/cert)\n",
                threads, libn.per_sec, count, libn.cpu_us_per);
  }
  double best = std::max(lib1.per_sec, libn.per_sec);
  if (openssl_count > 0) {
    double ossl = BenchOpenssl(work, data_dir, openssl_count, csr_count);
    std::printf("openssl x509 -req loop    : %9.1f certs/s (%zu processes)\n", ossl, openssl_count);
    std::printf("ratio library/openssl     : %9.0fx\n", best / ossl);
  }
  std::printf("target >= 5000 certs/s    : %s (best %.0f certs/s)\n", best >= 5000 ? "met" : "NOT met", best);
  std::error_code ec;
  fs::remove_all(work, ec);
  return 0;
}
