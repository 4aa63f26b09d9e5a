#include "postgres_server.h"

#include <libpq-fe.h>
#include <pwd.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>

#include "absl/strings/str_cat.h"

namespace ipfleet::testing {
namespace {

namespace fs = std::filesystem;

std::string FindBinDir() {
  std::error_code ec;
  std::string best;
  for (const auto& e : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    fs::path bin = e.path() / "bin";
    if (fs::exists(bin / "initdb", ec) && fs::exists(bin / "pg_ctl", ec) && bin.string() > best) best = bin.string();
  }
  return best;
}

}  // namespace

std::string PostgresServer::MissingReason() {
  if (FindBinDir().empty()) {
    return "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin (install Debian's postgresql "
           "package: deploy/install-deps.sh)";
  }
  if (::geteuid() == 0 && ::getpwnam("postgres") == nullptr) return "running as root but no 'postgres' user to run the server as";
  return "";
}

absl::Status PostgresServer::Run(const std::string& command) const {
  std::string line = ::geteuid() == 0 ? absl::StrCat("runuser -u postgres -- ", command) : command;
  line += absl::StrCat(" >>", log_, " 2>&1");
  int rc = std::system(line.c_str());
  if (rc != 0) {
    std::string tail;
    for (const std::string& f : {log_, dir_ + "/postgres.log"}) {
      std::ifstream in(f);
      std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      tail += text.substr(text.size() > 800 ? text.size() - 800 : 0);
    }
    return absl::InternalError(absl::StrCat("`", command, "` exited with ", rc, ":\n", tail));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<PostgresServer>> PostgresServer::Start() {
  if (std::string why = MissingReason(); !why.empty()) return absl::FailedPreconditionError(why);
  auto s = std::unique_ptr<PostgresServer>(new PostgresServer());
  s->bin_ = FindBinDir();
  char tmpl[] = "/tmp/ipfleet-pg-XXXXXX";
  if (!::mkdtemp(tmpl)) return absl::InternalError("mkdtemp failed");
  s->dir_ = tmpl;
  s->log_ = s->dir_ + "/commands.log";  // the shell's (root's) file; the server writes postgres.log
  s->port_ = 20000 + static_cast<int>(std::random_device{}() % 40000);  // names the socket file only
  if (::geteuid() == 0) {
    struct passwd* pw = ::getpwnam("postgres");
    if (::chown(s->dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) return absl::InternalError("chown of the temp dir failed");
  }
  if (absl::Status st = s->Run(absl::StrCat(s->bin_, "/initdb -D ", s->dir_, "/data -U ipfleet --auth=trust -E UTF8 "
                                              "--no-sync --no-instructions"));
      !st.ok()) {
    return st;
  }
  if (absl::Status st = s->Restart(); !st.ok()) return st;
  return s;
}

absl::Status PostgresServer::Restart() {
  // No TCP (listen_addresses empty): the socket lives in our own directory. fsync off: a test
  // server need not survive a power loss, and it saves seconds per test on slow disks.
  absl::Status st = Run(absl::StrCat(bin_, "/pg_ctl -D ", dir_, "/data -l ", dir_, "/postgres.log -w -t 30 -o \"-c listen_addresses='' ",
                                     "-c unix_socket_directories=", dir_, " -p ", port_,
                                     " -c fsync=off -c max_connections=200\" start"));
  running_ = st.ok();
  return st;
}

absl::Status PostgresServer::Stop() {
  if (!running_) return absl::OkStatus();
  running_ = false;
  return Run(absl::StrCat(bin_, "/pg_ctl -D ", dir_, "/data -w -t 30 -m fast stop"));
}

PostgresServer::~PostgresServer() {
  (void)Stop();
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

std::string PostgresServer::Uri(const std::string& database) const {
  return absl::StrCat("postgresql://ipfleet@/", database, "?host=", dir_, "&port=", port_);
}

absl::StatusOr<std::string> PostgresServer::CreateDatabase(const std::string& name) {
  PGconn* c = PQconnectdb(Uri("postgres").c_str());
  if (PQstatus(c) != CONNECTION_OK) {
    std::string why = PQerrorMessage(c);
    PQfinish(c);
    return absl::UnavailableError(absl::StrCat("connect to the test server: ", why));
  }
  PGresult* r = PQexec(c, absl::StrCat("CREATE DATABASE \"", name, "\"").c_str());
  bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  std::string why = ok ? "" : PQresultErrorMessage(r);
  PQclear(r);
  PQfinish(c);
  if (!ok) return absl::InternalError(absl::StrCat("CREATE DATABASE ", name, ": ", why));
  return Uri(name);
}

}  // namespace ipfleet::testing
