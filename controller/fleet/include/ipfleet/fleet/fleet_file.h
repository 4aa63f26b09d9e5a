// The fleet file (fleet.yaml): what an operator declares. Parsed and validated here; every error
// names the file, line, column and field ("fleet.yaml:12:7: tunnels[1].proposal: unknown proposal
// \"fast\""). The format is documented in docs/fleet-file.md.
#pragma once

#include <absl/strings/string_view.h>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ipfleet/common/status.h"
#include "ipfleet/policy/inventory.h"
#include "ipfleet/v1/types.pb.h"

namespace ipfleet::fleet {

// Where something was written (1-based), for messages raised after parsing (e.g. during expansion).
struct Mark {
  int line = 0;
  int column = 0;
};

// Options shared by explicit tunnels, meshes and hubs. Unset fields fall back to `defaults:`.
struct TunnelOptions {
  std::optional<std::string> proposal;
  std::optional<v1::TunnelMode> mode;
  std::optional<v1::AuthMethod> auth;
  std::optional<v1::StartAction> start_action;
  std::optional<v1::DpdSettings> dpd;
  std::optional<std::string> family;  // "ipv4" | "ipv6"
  std::optional<bool> rotate_keys;
};

// Matches hosts whose labels contain every pair, or the hosts named in `names`.
struct HostSelector {
  std::map<std::string, std::string> labels;
  std::vector<std::string> names;
  bool by_names = false;
};

struct HostEntry {
  std::string name;
  std::optional<std::map<std::string, std::string>> labels;  // replaces the inventory's labels
  std::vector<std::string> subnets;
  Mark mark;
};

struct ExternalPeerEntry {
  policy::ExternalPeer peer;
  Mark mark;
};

struct ProposalEntry {
  v1::Proposal proposal;
  Mark mark;
};

struct TunnelEntry {
  std::string name;  // empty: "<a>--<b>" with the names sorted
  std::string a, b;
  std::map<std::string, std::vector<std::string>> subnets;  // per-end override, keyed by end name
  TunnelOptions options;
  std::string field;  // "tunnels[2]"
  Mark mark;
};

struct MeshEntry {
  std::string name;
  HostSelector select;
  TunnelOptions options;
  std::string field;
  Mark mark;
};

struct HubEntry {
  std::string name;
  std::string hub;
  HostSelector spokes;  // labels select hosts; names may also be external peers
  TunnelOptions options;
  std::string field;
  Mark mark;
};

struct BypassEntry {
  policy::BypassExemption exemption;
  Mark mark;
};

struct FleetFile {
  std::string file_name;
  TunnelOptions defaults;
  std::vector<ProposalEntry> proposals;  // file order; a built-in "default" is added when absent
  std::vector<HostEntry> hosts;
  std::vector<ExternalPeerEntry> external_peers;
  std::vector<TunnelEntry> tunnels;
  std::vector<MeshEntry> meshes;
  std::vector<HubEntry> hubs;
  std::vector<BypassEntry> bypass;
};

// Parses and validates one fleet document. Errors are InvalidArgument; the message lists every
// problem found (one per line, at most 20), each as "FILE:LINE:COL: FIELD: what is wrong".
absl::StatusOr<FleetFile> ParseFleetFile(absl::string_view yaml, absl::string_view file_name);

// The proposal used when the file defines none called "default".
v1::Proposal BuiltinDefaultProposal();

}  // namespace ipfleet::fleet
