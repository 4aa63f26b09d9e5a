#include "ipfleet/common/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <cstdlib>
#include <string>

namespace ipfleet::logging {

void Init(std::string_view program, std::string_view level) {
  auto logger = spdlog::stderr_color_mt(std::string(program));
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ " + std::string(program) + " %v");
  std::string lvl(level);
  if (lvl.empty()) {
    const char* env = std::getenv("IPFLEET_LOG_LEVEL");
    lvl = env ? env : "info";
  }
  logger->set_level(spdlog::level::from_str(lvl));
  spdlog::set_default_logger(logger);
}

}  // namespace ipfleet::logging
