#include "layout.h"

#include <absl/strings/str_cat.h>

#include <nlohmann/json.hpp>

#include "ipfleet/common/files.h"

namespace ipfleet::agent::daemon {

absl::StatusOr<AgentConfig> LoadConfig(const Path& d) {
  auto text = files::Read(ConfigFile(d));
  if (!text.ok()) {
    return absl::FailedPreconditionError(absl::StrCat("not enrolled: ", text.status().message(),
                                                      " (run `ipfleet-agent enroll` first)"));
  }
  auto j = nlohmann::json::parse(*text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return absl::DataLossError(ConfigFile(d).string() + " is damaged");
  AgentConfig c;
  c.host = j.value("host", "");
  c.controller = j.value("controller", "");
  c.tls_server_name = j.value("tls_server_name", "");
  if (c.host.empty() || c.controller.empty()) return absl::DataLossError(ConfigFile(d).string() + " lacks host/controller");
  return c;
}

absl::Status SaveConfig(const Path& d, const AgentConfig& c) {
  nlohmann::json j{{"host", c.host}, {"controller", c.controller}, {"tls_server_name", c.tls_server_name}};
  return files::WriteAtomic(ConfigFile(d), j.dump(2) + "\n", 0644);
}

}  // namespace ipfleet::agent::daemon
