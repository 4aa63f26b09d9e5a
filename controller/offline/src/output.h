// Small helpers shared by the offline subcommands: errors on stderr, exit codes.
#pragma once

#include <iostream>
#include <string_view>

#include "ipfleet/common/status.h"

namespace ipfleet::controller::offline {

// Prints "ipfleet-controller <cmd>: <message>" on stderr and returns exit code 1.
inline int Fail(std::string_view cmd, const absl::Status& st) {
  std::cerr << "ipfleet-controller " << cmd << ": " << st.message() << "\n";
  return 1;
}

}  // namespace ipfleet::controller::offline
