// A throwaway PostgreSQL server for tests: initdb into a temp dir, pg_ctl start listening on a
// unix socket in that dir only (no TCP port), one database per caller, pg_ctl stop and removal at
// the end. Uses Debian's postgresql package (/usr/lib/postgresql/N/bin); as root it runs the
// server as the `postgres` user, since PostgreSQL refuses to run as root.
#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ipfleet::testing {

class PostgresServer {
 public:
  // Why a server cannot be started here (binaries missing), or empty when it can.
  static std::string MissingReason();
  static absl::StatusOr<std::unique_ptr<PostgresServer>> Start();
  ~PostgresServer();

  // A new empty database and its URI (libpq syntax: postgresql://ipfleet@/NAME?host=DIR&port=P).
  absl::StatusOr<std::string> CreateDatabase(const std::string& name);
  std::string Uri(const std::string& database) const;

  // Stops the server (fast shutdown: sessions are cut) and starts it again on the same data.
  absl::Status Stop();
  absl::Status Restart();
  const std::string& log_path() const { return log_; }

 private:
  PostgresServer() = default;
  absl::Status Run(const std::string& command) const;  // as the server's user

  std::string bin_;
  std::string dir_;
  std::string log_;
  int port_ = 0;
  bool running_ = false;
};

}  // namespace ipfleet::testing
