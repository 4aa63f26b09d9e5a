// The controller's Prometheus metrics: families declared at start, values that are cheap to keep
// current updated where they happen (inventory write latency, enrollment failures), the rest
// computed from the inventory and the session registry when scraped.
#pragma once

#include "ipfleet/common/metrics.h"
#include "ipfleet/controller/api/context.h"

namespace ipfleet::controller {

// Declares the families, hooks the store's transaction observer and adds the scrape collector.
// `ca_not_after_unix` is the CA certificate's expiry.
void InstallControllerMetrics(Metrics& metrics, ControllerContext& ctx, int64_t ca_not_after_unix);

}  // namespace ipfleet::controller
