// Bundle signature verification against the CA pinned at enrollment (ipfleet_ca::VerifyBundle).
#pragma once

#include <string>

#include "ipfleet/agent/sync/bundle_check.h"

namespace ipfleet::agent {

// The signer must chain to `pinned_ca_pem` (never to the chain the bundle itself carries) and
// not be revoked by the bundle's CRL (which VerifyBundle checks is signed by that CA).
BundleVerifyFn MakeCaVerifier(std::string pinned_ca_pem);

}  // namespace ipfleet::agent
