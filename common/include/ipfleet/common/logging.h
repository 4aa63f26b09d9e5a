// Logging setup. One line per event with key=value fields; never a key or a secret.
#pragma once

#include <spdlog/spdlog.h>

#include <string_view>

namespace ipfleet::logging {

// Configures the default spdlog logger for a program: stderr, "[time] [level] [program] msg",
// level from `level` ("trace".."off") or IPFLEET_LOG_LEVEL when `level` is empty.
void Init(std::string_view program, std::string_view level = {});

}  // namespace ipfleet::logging
