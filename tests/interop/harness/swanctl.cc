#include "harness/swanctl.h"

#include <absl/strings/str_cat.h>
#include <absl/strings/str_join.h>
#include <absl/strings/str_split.h>
#include <absl/strings/strip.h>

namespace ipfleet::interop {

std::string RenderSwanctlConf(const std::vector<SwanctlConn>& conns, const SwanctlSecrets& secrets) {
  std::string out = "connections {\n";
  for (const auto& c : conns) {
    absl::StrAppend(&out, "  ", c.name, " {\n", "    version = 2\n", "    local_addrs = ", c.local_addr, "\n",
                    "    remote_addrs = ", c.remote_addr, "\n", "    proposals = ", c.ike_proposals, "\n",
                    "    unique = ", c.unique, "\n", "    mobike = ", c.mobike ? "yes" : "no", "\n");
    if (c.dpd_delay_s > 0) absl::StrAppend(&out, "    dpd_delay = ", c.dpd_delay_s, "s\n");
    if (c.rekey_time_s > 0) absl::StrAppend(&out, "    rekey_time = ", c.rekey_time_s, "s\n");
    if (c.reauth_time_s > 0) absl::StrAppend(&out, "    reauth_time = ", c.reauth_time_s, "s\n");
    if (!c.extra.empty()) absl::StrAppend(&out, "    ", c.extra, "\n");
    absl::StrAppend(&out, "    local {\n      auth = ", c.psk ? "psk" : "pubkey", "\n      id = \"", c.local_id,
                    "\"\n");
    if (!c.psk && !c.local_cert.empty()) absl::StrAppend(&out, "      certs = ", c.local_cert, "\n");
    absl::StrAppend(&out, "    }\n    remote {\n      auth = ", c.psk ? "psk" : "pubkey", "\n      id = \"",
                    c.remote_id, "\"\n    }\n");
    absl::StrAppend(&out, "    children {\n      ", c.child_name, " {\n        local_ts = ", c.local_ts,
                    "\n        remote_ts = ", c.remote_ts, "\n        esp_proposals = ", c.esp_proposals,
                    "\n        mode = ", c.mode, "\n        start_action = ", c.start_action,
                    c.child_rekey_time_s > 0 ? absl::StrCat("\n        rekey_time = ", c.child_rekey_time_s, "s")
                                             : std::string(),
                    "\n        dpd_action = clear\n      }\n    }\n  }\n");
  }
  out += "}\n";
  if (!secrets.psk_ids.empty()) {
    out += "secrets {\n  ike-interop {\n";
    for (size_t i = 0; i < secrets.psk_ids.size(); ++i) {
      absl::StrAppend(&out, "    id-", i, " = \"", secrets.psk_ids[i], "\"\n");
    }
    absl::StrAppend(&out, "    secret = \"", secrets.psk, "\"\n  }\n}\n");
  }
  return out;
}

const VNode* VNode::Find(const std::string& key) const {
  for (const auto& [k, v] : children) {
    if (k == key) return &v;
  }
  return nullptr;
}

std::string VNode::Str(const std::string& key) const {
  const VNode* n = Find(key);
  return n ? n->value : "";
}

namespace {

// Recursive descent over lines: "name {", "}", "key = [", "item", "]", "key = value".
absl::Status ParseBlock(const std::vector<absl::string_view>& lines, size_t& i, VNode& node) {
  while (i < lines.size()) {
    absl::string_view line = absl::StripAsciiWhitespace(lines[i++]);
    if (line.empty()) continue;
    if (line == "}") return absl::OkStatus();
    if (absl::EndsWith(line, " {") || line == "{") {
      std::string key(absl::StripAsciiWhitespace(line.substr(0, line.size() - 1)));
      VNode child;
      IPFLEET_RETURN_IF_ERROR(ParseBlock(lines, i, child));
      node.children.emplace_back(std::move(key), std::move(child));
      continue;
    }
    size_t eq = line.find(" = ");
    if (eq == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("swanctl output: unexpected line ", i, ": '", line, "'"));
    }
    std::string key(line.substr(0, eq));
    absl::string_view value = line.substr(eq + 3);
    VNode child;
    if (value == "[") {
      while (true) {
        if (i >= lines.size()) return absl::InvalidArgumentError("swanctl output: unterminated list");
        absl::string_view item = absl::StripAsciiWhitespace(lines[i++]);
        if (item == "]") break;
        child.items.emplace_back(item);
      }
    } else {
      child.value = std::string(value);
    }
    node.children.emplace_back(std::move(key), std::move(child));
  }
  return absl::OkStatus();
}

ChildSaView ToChild(const VNode& n) {
  ChildSaView c;
  c.name = n.Str("name");
  c.state = n.Str("state");
  c.mode = n.Str("mode");
  c.protocol = n.Str("protocol");
  c.encap = n.Str("encap");
  c.spi_in = n.Str("spi-in");
  c.spi_out = n.Str("spi-out");
  c.encr_alg = n.Str("encr-alg");
  c.encr_keysize = n.Str("encr-keysize");
  c.integ_alg = n.Str("integ-alg");
  c.dh_group = n.Str("dh-group");
  if (const VNode* l = n.Find("local-ts")) c.local_ts = l->items;
  if (const VNode* r = n.Find("remote-ts")) c.remote_ts = r->items;
  return c;
}

}  // namespace

absl::StatusOr<std::vector<IkeSaView>> ParseListSas(const std::string& pretty) {
  std::vector<absl::string_view> lines = absl::StrSplit(pretty, '\n');
  VNode root;
  size_t i = 0;
  IPFLEET_RETURN_IF_ERROR(ParseBlock(lines, i, root));
  std::vector<IkeSaView> out;
  for (const auto& [msg, body] : root.children) {
    if (msg != "list-sa event") continue;
    for (const auto& [conn, n] : body.children) {
      IkeSaView s;
      s.conn = conn;
      s.state = n.Str("state");
      s.initiator = n.Str("initiator");
      s.local_host = n.Str("local-host");
      s.remote_host = n.Str("remote-host");
      s.local_port = n.Str("local-port");
      s.remote_port = n.Str("remote-port");
      s.local_id = n.Str("local-id");
      s.remote_id = n.Str("remote-id");
      s.initiator_spi = n.Str("initiator-spi");
      s.responder_spi = n.Str("responder-spi");
      s.encr_alg = n.Str("encr-alg");
      s.encr_keysize = n.Str("encr-keysize");
      s.integ_alg = n.Str("integ-alg");
      s.prf_alg = n.Str("prf-alg");
      s.dh_group = n.Str("dh-group");
      if (const VNode* children = n.Find("child-sas")) {
        for (const auto& [unused, cn] : children->children) s.children.push_back(ToChild(cn));
      }
      out.push_back(std::move(s));
    }
  }
  return out;
}

std::string Describe(const std::vector<IkeSaView>& sas) {
  if (sas.empty()) return "(no IKE_SAs)";
  std::vector<std::string> parts;
  for (const auto& s : sas) {
    std::string p = absl::StrCat(s.conn, ":", s.state, " ", s.initiator_spi, "_i/", s.responder_spi, "_r ",
                                 s.encr_alg, "-", s.encr_keysize, "/", s.integ_alg, "/", s.prf_alg, "/", s.dh_group,
                                 " ", s.local_id, "<->", s.remote_id, " children[");
    for (const auto& c : s.children) {
      absl::StrAppend(&p, c.name, ":", c.state, " ", c.spi_in, "/", c.spi_out, " ", absl::StrJoin(c.local_ts, ","),
                      "==", absl::StrJoin(c.remote_ts, ","), "; ");
    }
    p += "]";
    parts.push_back(std::move(p));
  }
  return absl::StrJoin(parts, " | ");
}

}  // namespace ipfleet::interop
