// `ipfleet-agent enroll`: pin the CA, make a key locally, send a CSR with the one-time token.
#pragma once

#include <string>
#include <vector>

#include "layout.h"

namespace ipfleet::agent::daemon {

struct EnrollOptions {
  // Controller replicas' ADDR:PORT: enrollment uses the first that answers, the session all of them.
  std::vector<std::string> controllers;
  std::string name;            // host name the token was issued for
  std::string token;           // secret: never logged
  std::string ca_fingerprint;  // SHA-256 of the CA certificate
  std::string ca_file;         // optional: CA PEM obtained out of band (checked against the fingerprint)
  std::string tls_server_name;
  Path data_dir;
  int timeout_seconds = 15;
};

absl::Status Enroll(const EnrollOptions& o);

// Fetches the controller's TLS certificate chain without trusting it (to find the pinned CA).
absl::StatusOr<std::vector<std::string>> FetchPeerChain(const std::string& host_port, int timeout_seconds);

}  // namespace ipfleet::agent::daemon
