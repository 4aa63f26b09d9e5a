// `ipfleet-agent status` and `ipfleet-agent sas`: the local view, like `setkey -D` / `-DP`.
#pragma once

#include "layout.h"

namespace ipfleet::agent::daemon {

int Status(const Path& data_dir, bool json);
// From the latest report; with `kernel`, the owned SAs (-D) and policies (-P) read from XFRM.
int Sas(const Path& data_dir, bool kernel, bool policies);

}  // namespace ipfleet::agent::daemon
