#include "harness/ike_peer.h"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>

#include <absl/strings/str_cat.h>
#include <absl/strings/str_join.h>
#include <absl/strings/str_split.h>
#include <nlohmann/json.hpp>

#include "harness/netns.h"
#include "ipfleet/common/files.h"

#ifndef IPFLEET_IKE_PEER
#define IPFLEET_IKE_PEER ""
#endif

namespace ipfleet::interop {

std::string ConfiguredIkePeer() {
  std::string bin = IPFLEET_IKE_PEER;
  if (const char* e = std::getenv("IPFLEET_IKE_PEER")) bin = e;
  if (bin.empty() || access(bin.c_str(), X_OK) != 0) return "";
  return bin;
}

namespace {

// docs/ike.md: YAML config; JSON is valid YAML, and nlohmann does the quoting.
std::string RenderConfig(const IkePeerOptions& o) {
  nlohmann::json j;
  if (!o.listen.empty()) j["listen"] = o.listen;
  j["retransmit_timeout_ms"] = o.retransmit_timeout_ms;
  j["retransmit_tries"] = o.retransmit_tries;
  j.update(o.settings);
  j["tunnels"] = nlohmann::json::array();
  for (const auto& t : o.tunnels) {
    nlohmann::json tj = {{"name", t.name},
                         {"local", t.local},
                         {"remote", t.remote},
                         {"local_id", t.local_id},
                         {"remote_id", t.remote_id},
                         {"auth", t.psk ? "psk" : "pubkey"},
                         {"ike_proposals", {t.ike_proposal}},
                         {"dpd_interval", t.dpd_interval_s},
                         {"dpd_action", t.dpd_action}};
    if (t.psk) {
      tj["psk"] = t.psk_secret;
    } else {
      tj["cert"] = t.cert.string();
      tj["key"] = t.key.string();
      tj["ca"] = {t.ca.string()};
      if (!t.crl.empty()) tj["crl"] = {t.crl.string()};
    }
    tj["children"] = {{{"name", t.child_name},
                       {"local_ts", {t.local_ts}},
                       {"remote_ts", {t.remote_ts}},
                       {"mode", "tunnel"},
                       {"esp_proposals", {t.esp_proposal}},
                       {"start_action", t.start_action}}};
    tj["children"][0].update(t.child_extra);
    tj.update(t.extra);
    j["tunnels"].push_back(std::move(tj));
  }
  return j.dump(2) + "\n";
}

std::vector<std::string> Strings(const nlohmann::json& j, const char* key) {
  std::vector<std::string> out;
  if (j.contains(key) && j[key].is_array()) {
    for (const auto& x : j[key]) {
      if (x.is_string()) out.push_back(x.get<std::string>());
    }
  }
  return out;
}

std::string Str(const nlohmann::json& j, const char* key) {
  if (!j.contains(key)) return "";
  if (j[key].is_string()) return j[key].get<std::string>();
  return j[key].dump();
}

}  // namespace

absl::StatusOr<std::unique_ptr<IkePeer>> IkePeer::Start(const IkePeerOptions& options) {
  if (options.binary.empty()) return absl::FailedPreconditionError("ipfleet-ike-peer binary not configured");
  std::unique_ptr<IkePeer> p(new IkePeer());
  p->options_ = options;
  IPFLEET_RETURN_IF_ERROR(files::EnsureDir(options.dir, 0700));
  p->config_ = options.dir / "ike-peer.yaml";
  p->status_ = options.dir / "status.json";
  p->log_ = options.dir / "ike-peer.log";
  std::filesystem::remove(p->status_);
  IPFLEET_RETURN_IF_ERROR(files::WriteAtomic(p->config_, RenderConfig(options), 0600));
  std::vector<std::string> argv = {options.binary, "--config", p->config_.string(), "--log-level",
                                   options.log_level};
  if (options.write_status) argv.insert(argv.end(), {"--status-file", p->status_.string()});
  if (options.initiate) argv.push_back("--initiate");
  if (options.initiate_window > 0) {
    argv.push_back("--initiate-window");
    argv.push_back(std::to_string(options.initiate_window));
  }
  if (options.cpu) argv.insert(argv.begin(), {"taskset", "-c", std::to_string(*options.cpu)});
  IPFLEET_ASSIGN_OR_RETURN(p->process_,
                           Process::Spawn(NetnsPair::Exec(options.netns, argv), {}, p->log_.string()));
  // Ready once it has bound UDP 500 in its namespace (or it died: report its log).
  bool ready = WaitFor(
      [&] {
        if (!p->process_.Running()) return true;
        auto r = Run(NetnsPair::Exec(options.netns, {"ss", "-H", "-n", "-u", "-l", "sport", "=", ":500"}),
                     std::chrono::seconds(3));
        return r.ok() && r->out.find(":500") != std::string::npos;
      },
      std::chrono::seconds(10), std::chrono::milliseconds(20));
  if (!p->process_.Running() || !ready) {
    return absl::InternalError(absl::StrCat("ipfleet-ike-peer did not come up (", p->process_.Running() ? "no UDP 500"
                                                                                                        : "exited",
                                            "): ", p->LogTail(30)));
  }
  return p;
}

IkePeer::~IkePeer() { Stop(); }

void IkePeer::Stop() { process_.Stop(SIGTERM, std::chrono::seconds(3)); }

std::string IkePeer::Log() const {
  auto r = files::Read(log_);
  return r.ok() ? *r : std::string();
}

std::string IkePeer::LogTail(size_t max_lines) const {
  std::vector<std::string> lines = absl::StrSplit(Log(), '\n', absl::SkipEmpty());
  size_t start = lines.size() > max_lines ? lines.size() - max_lines : 0;
  std::string out;
  for (size_t i = start; i < lines.size(); ++i) absl::StrAppend(&out, "\n    ours| ", lines[i]);
  return out;
}

std::string IkePeer::StatusText() const {
  auto r = files::Read(status_);
  return r.ok() ? *r : std::string("(no status file)");
}

absl::StatusOr<std::vector<OurIkeSa>> IkePeer::Sas() {
  std::vector<OurIkeSa> out;
  if (!std::filesystem::exists(status_)) return out;
  IPFLEET_ASSIGN_OR_RETURN(std::string text, files::Read(status_));
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError("status file is not JSON: " + text.substr(0, 500));
  if (!j.contains("ike_sas") || !j["ike_sas"].is_array()) return out;
  for (const auto& s : j["ike_sas"]) {
    OurIkeSa sa;
    sa.tunnel = Str(s, "tunnel");
    sa.state = Str(s, "state");
    sa.spi_i = Str(s, "spi_i");
    sa.spi_r = Str(s, "spi_r");
    sa.local = Str(s, "local");
    sa.remote = Str(s, "remote");
    sa.local_id = Str(s, "local_id");
    sa.remote_id = Str(s, "remote_id");
    sa.suite = Str(s, "suite");
    sa.initiator = s.contains("initiator") && s["initiator"].is_boolean() && s["initiator"].get<bool>();
    if (s.contains("children") && s["children"].is_array()) {
      for (const auto& c : s["children"]) {
        OurChildSa ch;
        ch.name = Str(c, "name");
        ch.state = Str(c, "state");
        ch.spi_in = Str(c, "spi_in");
        ch.spi_out = Str(c, "spi_out");
        ch.mode = Str(c, "mode");
        ch.suite = Str(c, "suite");
        ch.local_ts = Strings(c, "local_ts");
        ch.remote_ts = Strings(c, "remote_ts");
        sa.children.push_back(std::move(ch));
      }
    }
    out.push_back(std::move(sa));
  }
  return out;
}

absl::StatusOr<std::vector<OurIkeSa>> IkePeer::WaitSas(
    const std::function<bool(const std::vector<OurIkeSa>&)>& pred, std::chrono::milliseconds timeout) {
  std::vector<OurIkeSa> view;
  absl::Status err = absl::OkStatus();
  bool ok = WaitFor(
      [&] {
        auto v = Sas();
        if (!v.ok()) {
          err = v.status();
          return false;
        }
        view = *std::move(v);
        return pred(view);
      },
      timeout, std::chrono::milliseconds(25));
  if (!ok) {
    return absl::DeadlineExceededError(absl::StrCat("our SAs did not reach the expected state within ",
                                                    timeout.count(), " ms; last view: ", Describe(view),
                                                    err.ok() ? "" : " error: " + err.ToString(),
                                                    process_.Running() ? "" : " (ipfleet-ike-peer exited)"));
  }
  return view;
}

bool OursOneEstablished(const std::vector<OurIkeSa>& sas) {
  return sas.size() == 1 && sas[0].state == "ESTABLISHED" && sas[0].children.size() == 1 &&
         sas[0].children[0].state == "INSTALLED";
}

bool OursNone(const std::vector<OurIkeSa>& sas) { return sas.empty(); }

std::string Describe(const std::vector<OurIkeSa>& sas) {
  if (sas.empty()) return "(no IKE_SAs)";
  std::vector<std::string> parts;
  for (const auto& s : sas) {
    std::string p = absl::StrCat(s.tunnel, ":", s.state, s.initiator ? " (initiator) " : " (responder) ", s.spi_i,
                                 "_i/", s.spi_r, "_r ", s.suite, " ", s.local, "<->", s.remote, " children[");
    for (const auto& c : s.children) {
      absl::StrAppend(&p, c.name, ":", c.state, " ", c.spi_in, "/", c.spi_out, " ", absl::StrJoin(c.local_ts, ","),
                      "==", absl::StrJoin(c.remote_ts, ","), "; ");
    }
    parts.push_back(p + "]");
  }
  return absl::StrJoin(parts, " | ");
}

}  // namespace ipfleet::interop
