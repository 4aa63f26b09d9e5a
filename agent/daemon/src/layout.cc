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
  // "controllers" since controllers can be replicated; "controller" alone in older files.
  if (j.contains("controllers") && j["controllers"].is_array()) {
    for (const auto& e : j["controllers"]) {
      if (e.is_string() && !e.get<std::string>().empty()) c.controllers.push_back(e.get<std::string>());
    }
  } else if (std::string one = j.value("controller", ""); !one.empty()) {
    c.controllers.push_back(one);
  }
  c.tls_server_name = j.value("tls_server_name", "");
  if (c.host.empty() || c.controllers.empty()) {
    return absl::DataLossError(ConfigFile(d).string() + " lacks host/controllers");
  }
  return c;
}

absl::Status SaveConfig(const Path& d, const AgentConfig& c) {
  nlohmann::json j{{"host", c.host},
                   {"controllers", c.controllers},
                   {"controller", c.controllers.empty() ? "" : c.controllers.front()},  // for older tools
                   {"tls_server_name", c.tls_server_name}};
  return files::WriteAtomic(ConfigFile(d), j.dump(2) + "\n", 0644);
}

}  // namespace ipfleet::agent::daemon
