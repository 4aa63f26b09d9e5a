// Domain records of the controller's inventory. Plain structs, no wire types: the api/ layer
// translates to and from the v1 protobuf messages. Where a record carries a whole proto message
// (a health report, a signed bundle, a tunnel spec) it is kept as opaque serialized bytes so the
// store never depends on generated code and a PostgreSQL implementation can store a bytea.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace ipfleet::inventory {

// A fleet host running ipfleet-agent.
struct Host {
  std::string name;
  std::vector<std::string> addresses;  // outer addresses, become IP SANs
  std::vector<std::string> dns_names;  // become DNS SANs
  std::map<std::string, std::string> labels;
  std::string cert_serial;  // current certificate (lower-case hex), empty before enrollment
  int64_t cert_not_after_unix = 0;
  bool enrolled = false;
  int64_t created_unix = 0;
  int64_t last_seen_unix = 0;  // last message on a session (persisted on hello/health/close)
  std::string agent_version;
  uint64_t applied_bundle_version = 0;  // what the agent acknowledged as applied
  uint64_t desired_bundle_version = 0;  // latest bundle version built for the host
  std::string replica;  // the controller replica that holds the host's session; empty when none
};

// Enrollment token: only the SHA-256 of the token text is stored.
struct EnrollmentToken {
  std::string token_sha256;  // lower-case hex of SHA-256(token)
  std::string host;
  int64_t created_unix = 0;
  int64_t expires_unix = 0;
  bool used = false;
  int64_t used_unix = 0;
};

// Every certificate the running controller issued (hosts, external peers, admins).
struct Certificate {
  std::string serial;  // lower-case hex, ca::SerialHex spelling
  std::string name;    // subject CN: host / external peer / admin name
  std::string kind;    // "host", "external", "admin", "controller", "policy-signer"
  int64_t not_before_unix = 0;
  int64_t not_after_unix = 0;
  std::vector<std::string> ip_addresses;
  std::vector<std::string> dns_names;
  std::string pem;
  bool revoked = false;
  int64_t revoked_unix = 0;
  std::string revocation_reason;  // RFC 5280 reason name
};

// One revoked serial as the inventory records it (also for serials it holds no certificate of).
struct RevocationRecord {
  std::string serial;
  int64_t revoked_unix = 0;
  std::string reason;  // RFC 5280 reason name
};

// The latest health report of a host: summary columns for `status`, full report as bytes
// (serialized ipfleet.v1.HealthReport) for `sas` and tunnel views.
struct HealthRecord {
  std::string host;
  int64_t at_unix = 0;       // when the controller received it
  uint64_t bundle_version = 0;
  uint32_t tunnels_up = 0;
  uint32_t tunnels_total = 0;
  uint32_t stale_sas = 0;
  uint64_t forced_renegotiations = 0;  // agent's running total
  std::string report;                  // serialized ipfleet.v1.HealthReport
};

// --- desired inventory (written by `apply`, read by the policy compiler) ---------------------
// Each carries its full definition as bytes (serialized v1 message chosen by the fleet/ layer)
// plus the columns the controller needs to query on.
struct ProposalRecord {
  std::string name;
  std::string spec;  // e.g. serialized ipfleet.v1.Proposal
};

struct ExternalPeerRecord {
  std::string name;
  std::string address;
  std::string identity;
  int auth = 0;      // ipfleet.v1.AuthMethod value
  std::string spec;  // e.g. serialized ipfleet.v1.ExternalPeer
};

struct TunnelRecord {
  std::string name;
  std::string left;   // host name
  std::string right;  // host or external peer name
  bool right_is_external = false;
  int mode = 0;  // ipfleet.v1.TunnelMode value
  int auth = 0;  // ipfleet.v1.AuthMethod value
  std::string proposal;
  std::string spec;  // the fleet/ layer's full tunnel definition
};

// The whole desired state as of one generation.
struct DesiredInventory {
  std::vector<ProposalRecord> proposals;
  std::vector<ExternalPeerRecord> external_peers;
  std::vector<TunnelRecord> tunnels;
};

// One generation of the desired inventory. `snapshot` lets a rollback rebuild an old generation
// (the fleet/ layer decides its encoding, e.g. the fleet YAML or a serialized snapshot).
struct Generation {
  uint64_t id = 0;
  int64_t created_unix = 0;
  std::string source;    // file name or "rollback of N"
  std::string snapshot;  // opaque bytes
  std::string comment;
};

// A signed bundle built for one host at one version.
struct BundleRecord {
  std::string host;
  uint64_t version = 0;
  uint64_t generation = 0;
  int64_t created_unix = 0;
  std::string signed_bundle;  // serialized ipfleet.v1.SignedBundle
};

// Values equal the ipfleet.v1 enum numbers so translation is a cast.
enum class RolloutState : int { kUnspecified = 0, kRunning = 1, kSucceeded = 2, kHalted = 3, kAborted = 4 };
enum class HostRolloutState : int { kUnspecified = 0, kPending = 1, kSent = 2, kDone = 3, kFailed = 4, kTimedOut = 5 };
enum class CommandState : int { kUnspecified = 0, kQueued = 1, kDelivered = 2, kSucceeded = 3, kFailed = 4 };

struct RolloutHost {
  std::string host;
  uint32_t wave = 0;
  uint64_t version = 0;
  HostRolloutState state = HostRolloutState::kPending;
  std::string error;
  int64_t updated_unix = 0;
};

struct Rollout {
  uint64_t id = 0;  // assigned by CreateRollout
  uint64_t generation = 0;
  RolloutState state = RolloutState::kRunning;
  uint32_t current_wave = 0;
  uint32_t waves = 0;
  uint32_t canary_percent = 0;
  uint32_t wave_size = 0;
  uint32_t wave_timeout_seconds = 0;
  int64_t started_unix = 0;
  int64_t finished_unix = 0;
  std::string error;
  std::vector<RolloutHost> hosts;  // filled by reads; CreateRollout inserts them too
};

// A command queued for one host (flush-sa, rekey, re-enroll).
struct CommandRecord {
  uint64_t id = 0;  // assigned by EnqueueCommand, strictly increasing
  std::string host;
  int kind = 0;  // ipfleet.v1.CommandKind value
  std::string tunnel;
  std::string peer;
  int64_t issued_unix = 0;
  CommandState state = CommandState::kQueued;
  int64_t delivered_unix = 0;
  int64_t finished_unix = 0;
  std::string result;  // serialized ipfleet.v1.CommandResult once reported
};

// One admin action (who did what to what, and whether it worked).
struct AuditEntry {
  uint64_t id = 0;
  int64_t at_unix = 0;
  std::string actor;   // "unix:uid=0", "cert:CN=alice", "controller"
  std::string action;  // "host.add", "cert.revoke", "apply", ...
  std::string target;
  std::string detail;  // never a secret
  bool ok = true;
};

// One controller replica serving this inventory (several share a PostgreSQL inventory).
struct ReplicaRecord {
  std::string id;        // --replica-id, unique among the replicas
  std::string endpoint;  // the agent endpoint it advertises
  int64_t started_unix = 0;
  int64_t heartbeat_unix = 0;  // refreshed every second while it runs
  bool leader = false;         // it runs the rollout engine and the command dispatcher
};

// A message between replicas, through the inventory: the leader's bundles and commands for a host
// whose session another replica holds, and that replica's acks and health reports for the leader.
// Every replica reads every message after the last sequence number it saw and acts on its own.
struct BusMessage {
  uint64_t seq = 0;  // assigned by AppendBus, strictly increasing
  int64_t at_unix = 0;
  std::string origin;  // replica id of the writer
  std::string host;
  std::string kind;     // one of bus_kind below
  std::string payload;  // serialized message, opaque to the store
};

// What a bus message says (controller/replication/replication.h tells who writes and who reads).
namespace bus_kind {
inline constexpr char kBundle[] = "bundle";    // a bundle was stored for the host: send the newest
inline constexpr char kCommand[] = "command";  // a command was queued for the host: send the queued
inline constexpr char kHello[] = "hello";      // agents' messages, for the leader's rollout engine
inline constexpr char kAck[] = "ack";
inline constexpr char kHealth[] = "health";
}  // namespace bus_kind

}  // namespace ipfleet::inventory
