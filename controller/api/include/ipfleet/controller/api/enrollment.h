// Hosts and enrollment: adding a host with a single-use token, and the token-authorised
// first contact of an agent (issue a host certificate whose SANs come from the inventory).
#pragma once

#include <string>
#include <vector>

#include "ipfleet/common/status.h"
#include "ipfleet/controller/api/context.h"
#include "ipfleet/controller/inventory/types.h"

namespace ipfleet::controller {

// 256 random bits, base64url without padding (43 characters).
absl::StatusOr<std::string> GenerateToken();
// Lower-case hex SHA-256 of the token text: the only form the inventory stores.
std::string HashToken(const std::string& token);

// The exact command an operator runs on the new host.
std::string EnrollCommand(const std::string& agent_endpoint, const std::string& host,
                          const std::string& token, const std::string& ca_fingerprint);

struct NewToken {
  std::string token;
  int64_t expires_unix = 0;
};

// Validates names, addresses, DNS names and labels (InvalidArgument naming the bad field).
absl::Status ValidateHost(const inventory::Host& host);

// Adds the host and a token in one transaction (with an audit row).
absl::StatusOr<NewToken> AddHostWithToken(ControllerContext& ctx, inventory::Host host,
                                          uint32_t ttl_seconds, const std::string& actor);
// A fresh token for an existing host (re-enrollment after key loss).
absl::StatusOr<NewToken> NewTokenForHost(ControllerContext& ctx, const std::string& host,
                                         uint32_t ttl_seconds, const std::string& actor);

struct Enrolled {
  std::string certificate_pem;
  std::string serial;
  std::string previous_serial;  // revoked as superseded when the host re-enrolled
  std::vector<std::string> controllers;  // every replica's agent endpoint, this one first (shared inventory)
};

// Checks the token, issues the host certificate from the CSR with the host record's SANs,
// consumes the token and records the certificate in one transaction. A previous certificate of
// the host is revoked (superseded).
absl::StatusOr<Enrolled> EnrollHost(ControllerContext& ctx, const std::string& host,
                                    const std::string& token, const std::string& csr_pem);

}  // namespace ipfleet::controller
