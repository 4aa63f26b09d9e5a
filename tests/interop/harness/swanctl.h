// swanctl.conf rendering and parsing of `swanctl --list-sas --pretty`, charon's own view of its SAs.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ipfleet/common/status.h"

namespace ipfleet::interop {

// One IKE connection with one CHILD_SA, as both the harness self-test and the engine interop tests need.
struct SwanctlConn {
  std::string name = "t";
  std::string local_addr, remote_addr;
  std::string ike_proposals = "aes128gcm16-prfsha256-x25519";
  std::string esp_proposals = "aes128gcm16";
  bool psk = true;  // else pubkey (certificates)
  std::string local_id, remote_id;
  std::string local_cert;   // file name in the swanctl x509/ dir (pubkey auth)
  std::string child_name = "c";
  std::string local_ts, remote_ts;
  std::string start_action = "none";  // none | trap | start
  std::string mode = "tunnel";
  int dpd_delay_s = 0;   // 0: no liveness checks from charon
  std::string unique = "no";
  int rekey_time_s = 0;   // 0: charon's default
  int reauth_time_s = 0;
  bool mobike = false;
  int child_rekey_time_s = 0;  // 0: charon's default (1 h)
  std::string extra = "";      // more lines for the connection section, e.g. "fragmentation = yes"
};

struct SwanctlSecrets {
  // id pairs that share the PSK; empty when only certificates are used.
  std::vector<std::string> psk_ids;
  std::string psk;
};

std::string RenderSwanctlConf(const std::vector<SwanctlConn>& conns, const SwanctlSecrets& secrets);

// A node of swanctl's --pretty output: `key = value`, `key = [ items ]` or `key { children }`.
struct VNode {
  std::string value;
  std::vector<std::string> items;
  std::vector<std::pair<std::string, VNode>> children;

  const VNode* Find(const std::string& key) const;
  std::string Str(const std::string& key) const;  // "" when absent
};

// Typed view of one IKE_SA and its CHILD_SAs as charon reports them.
struct ChildSaView {
  std::string name, state, mode, protocol, encap, spi_in, spi_out, encr_alg, encr_keysize, integ_alg, dh_group;
  std::vector<std::string> local_ts, remote_ts;
};
struct IkeSaView {
  std::string conn, state, initiator, local_host, remote_host, local_port, remote_port, local_id, remote_id;
  std::string initiator_spi, responder_spi, encr_alg, encr_keysize, integ_alg, prf_alg, dh_group;
  std::vector<ChildSaView> children;
};

// Parses the whole stdout of `swanctl --list-sas --pretty` (a list-sa event per IKE_SA).
absl::StatusOr<std::vector<IkeSaView>> ParseListSas(const std::string& pretty);

// Compact one-line rendering for assertion messages.
std::string Describe(const std::vector<IkeSaView>& sas);

}  // namespace ipfleet::interop
