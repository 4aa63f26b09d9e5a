// `ipfleet-agent run`: the daemon.
#pragma once

#include <cstdint>
#include <string>

#include "layout.h"

namespace ipfleet::agent::daemon {

struct RunOptions {
  Path data_dir;
  std::string metrics_address = "127.0.0.1";
  int metrics_port = 9477;  // -1 disables /metrics
  int health_interval_seconds = 10;
  uint16_t ike_port = 500;
  bool fake_kernel = false;  // in-memory kernel (demos and benchmarks without XFRM)
};

int Run(const RunOptions& o);

}  // namespace ipfleet::agent::daemon
