#include "ipfleet/controller/api/enrollment.h"

#include <absl/strings/escaping.h>
#include <absl/strings/str_cat.h>
#include <arpa/inet.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "ipfleet/ca/authority.h"
#include "ipfleet/controller/api/pki.h"
#include "ipfleet/controller/inventory/store.h"

namespace ipfleet::controller {
namespace {

bool IsAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

// 1-63 characters of [A-Za-z0-9._-], starting with a letter or digit.
bool ValidName(const std::string& s) {
  if (s.empty() || s.size() > 63 || !IsAlnum(s[0])) return false;
  for (char c : s) {
    if (!IsAlnum(c) && c != '.' && c != '_' && c != '-') return false;
  }
  return true;
}

// LDH labels separated by dots, optional leading "*." wildcard.
bool ValidDns(const std::string& name) {
  std::string s = name.rfind("*.", 0) == 0 ? name.substr(2) : name;
  if (s.empty() || s.size() > 253) return false;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find('.', start);
    if (end == std::string::npos) end = s.size();
    std::string label = s.substr(start, end - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
    for (char c : label) {
      if (!IsAlnum(c) && c != '-') return false;
    }
    start = end + 1;
  }
  return true;
}

bool ValidIp(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

uint32_t Ttl(const ControllerContext& ctx, uint32_t requested) {
  return requested ? requested : ctx.default_token_ttl_seconds;
}

// What an enrolling agent should know to fail over: this replica's agent endpoint, then the
// others the inventory knows (a replica down now may well be back when it is needed).
std::vector<std::string> ReplicaEndpoints(const ControllerContext& ctx) {
  if (!ctx.store->Shared()) return {};
  std::vector<std::string> out{ctx.agent_endpoint};
  absl::StatusOr<std::vector<inventory::ReplicaRecord>> replicas = ctx.store->ListReplicas();
  if (!replicas.ok()) return out;  // the agent still has the endpoints it was given
  for (const auto& r : *replicas) {
    if (!r.endpoint.empty() && std::find(out.begin(), out.end(), r.endpoint) == out.end()) out.push_back(r.endpoint);
  }
  return out;
}

}  // namespace

absl::StatusOr<std::string> GenerateToken() {
  unsigned char raw[32];
  if (RAND_bytes(raw, sizeof raw) != 1) {
    return absl::InternalError("RAND_bytes: could not generate an enrollment token");
  }
  std::string out;
  absl::WebSafeBase64Escape(absl::string_view(reinterpret_cast<const char*>(raw), sizeof raw), &out);
  OPENSSL_cleanse(raw, sizeof raw);
  return out;
}

std::string HashToken(const std::string& token) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(token.data(), token.size(), md, &len, EVP_sha256(), nullptr);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(md), len));
}

std::string EnrollCommand(const std::string& agent_endpoint, const std::string& host,
                          const std::string& token, const std::string& ca_fingerprint) {
  return absl::StrCat("ipfleet-agent enroll --controller ", agent_endpoint, " --name ", host, " --token ",
                      token, " --ca-fingerprint ", ca_fingerprint, " --data-dir /var/lib/ipfleet-agent");
}

absl::Status ValidateHost(const inventory::Host& h) {
  if (!ValidName(h.name)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "host name '", h.name, "' is invalid: use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit"));
  }
  if (h.addresses.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("host '", h.name, "' needs at least one --address (its outer IP address)"));
  }
  for (const auto& a : h.addresses) {
    if (!ValidIp(a)) {
      return absl::InvalidArgumentError(absl::StrCat("address '", a, "' is not an IPv4 or IPv6 address"));
    }
  }
  for (const auto& d : h.dns_names) {
    if (!ValidDns(d)) return absl::InvalidArgumentError(absl::StrCat("DNS name '", d, "' is invalid"));
  }
  for (const auto& [k, v] : h.labels) {
    if (!ValidName(k)) {
      return absl::InvalidArgumentError(absl::StrCat("label key '", k, "' is invalid (use letters, digits, . _ -)"));
    }
    if (v.size() > 255) return absl::InvalidArgumentError(absl::StrCat("label '", k, "' value is too long"));
  }
  return absl::OkStatus();
}

absl::StatusOr<NewToken> AddHostWithToken(ControllerContext& ctx, inventory::Host host,
                                          uint32_t ttl_seconds, const std::string& actor) {
  IPFLEET_RETURN_IF_ERROR(ValidateHost(host));
  IPFLEET_ASSIGN_OR_RETURN(std::string token, GenerateToken());
  int64_t now = ctx.clock();
  host.created_unix = now;
  inventory::EnrollmentToken t;
  t.token_sha256 = HashToken(token);
  t.host = host.name;
  t.created_unix = now;
  t.expires_unix = now + Ttl(ctx, ttl_seconds);
  IPFLEET_RETURN_IF_ERROR(ctx.store->Transact([&](inventory::Tx& tx) -> absl::Status {
    IPFLEET_RETURN_IF_ERROR(tx.AddHost(host));
    IPFLEET_RETURN_IF_ERROR(tx.AddEnrollmentToken(t));
    return tx.AppendAudit({0, now, actor, "host.add", host.name,
                           absl::StrCat("addresses=", host.addresses.size(), " token_expires=", t.expires_unix),
                           true});
  }));
  spdlog::info("event=host_added host={} actor={} token_expires={}", host.name, actor, t.expires_unix);
  return NewToken{std::move(token), t.expires_unix};
}

absl::StatusOr<NewToken> NewTokenForHost(ControllerContext& ctx, const std::string& host,
                                         uint32_t ttl_seconds, const std::string& actor) {
  IPFLEET_ASSIGN_OR_RETURN(std::string token, GenerateToken());
  int64_t now = ctx.clock();
  inventory::EnrollmentToken t;
  t.token_sha256 = HashToken(token);
  t.host = host;
  t.created_unix = now;
  t.expires_unix = now + Ttl(ctx, ttl_seconds);
  IPFLEET_RETURN_IF_ERROR(ctx.store->Transact([&](inventory::Tx& tx) -> absl::Status {
    IPFLEET_RETURN_IF_ERROR(tx.GetHost(host).status());
    IPFLEET_RETURN_IF_ERROR(tx.AddEnrollmentToken(t));
    return tx.AppendAudit({0, now, actor, "host.token", host, absl::StrCat("token_expires=", t.expires_unix), true});
  }));
  spdlog::info("event=token_issued host={} actor={} token_expires={}", host, actor, t.expires_unix);
  return NewToken{std::move(token), t.expires_unix};
}

absl::StatusOr<Enrolled> EnrollHost(ControllerContext& ctx, const std::string& host,
                                    const std::string& token, const std::string& csr_pem) {
  if (host.empty() || token.empty() || csr_pem.empty()) {
    return absl::InvalidArgumentError("Enroll needs host, token and csr_pem");
  }
  const std::string hash = HashToken(token);
  int64_t now = ctx.clock();
  // Check first so a bad token costs no signature; the transaction below checks again.
  IPFLEET_RETURN_IF_ERROR(inventory::CheckEnrollmentToken(ctx.store->GetEnrollmentToken(hash), host, now));
  IPFLEET_ASSIGN_OR_RETURN(inventory::Host rec, ctx.store->GetHost(host));

  ca::IssueRequest req;
  req.common_name = host;
  req.ips = rec.addresses;
  req.dns = rec.dns_names;
  req.days = ctx.host_cert_days;
  req.profile = ca::Profile::kHost;
  absl::StatusOr<ca::IssuedCert> issued = ctx.pki->Issue(csr_pem, req);
  if (!issued.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("could not issue a certificate from the CSR: ", std::string(issued.status().message())));
  }
  inventory::Certificate cert = Pki::ToRecord(*issued, req, "host");
  std::string previous;
  IPFLEET_RETURN_IF_ERROR(ctx.store->Transact([&](inventory::Tx& tx) -> absl::Status {
    IPFLEET_RETURN_IF_ERROR(tx.ConsumeEnrollmentToken(hash, host, now));
    IPFLEET_ASSIGN_OR_RETURN(inventory::Host current, tx.GetHost(host));
    previous = current.cert_serial;
    IPFLEET_RETURN_IF_ERROR(tx.PutCertificate(cert));
    IPFLEET_RETURN_IF_ERROR(tx.SetHostCertificate(host, cert.serial, cert.not_after_unix));
    return tx.AppendAudit({0, now, "agent:" + host, "host.enroll", host, "serial=" + cert.serial, true});
  }));
  spdlog::info("event=host_enrolled host={} serial={} not_after={}", host, cert.serial, cert.not_after_unix);
  if (!previous.empty() && previous != cert.serial) {
    absl::Status st = ctx.pki->Revoke(previous, "superseded", "agent:" + host);
    if (!st.ok()) {
      spdlog::error("event=revoke_superseded_failed host={} serial={} error=\"{}\"", host, previous,
                    std::string(st.message()));
    }
  }
  return Enrolled{issued->pem, cert.serial, previous, ReplicaEndpoints(ctx)};
}

}  // namespace ipfleet::controller
