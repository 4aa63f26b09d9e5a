// Certificate profiles: what each kind of certificate the CA issues may be used for.
#pragma once

#include <string_view>

#include "ipfleet/common/status.h"

namespace ipfleet::ca {

// id-kp-ipsecIKE, RFC 4945 / RFC 4809.
inline constexpr std::string_view kOidIpsecIke = "1.3.6.1.5.5.7.3.17";
inline constexpr std::string_view kOidServerAuth = "1.3.6.1.5.5.7.3.1";
inline constexpr std::string_view kOidClientAuth = "1.3.6.1.5.5.7.3.2";
// iKEIntermediate (1.3.6.1.5.5.8.2.2), expected by some IKE peers (Windows) on peer certificates.
inline constexpr std::string_view kOidIkeIntermediate = "1.3.6.1.5.5.8.2.2";
// ipfleet's private arc: a UUID OID (ITU-T X.667, arc 2.25) that needs no registration.
inline constexpr std::string_view kOidIpfleetArc = "2.25.131755941408280477794484523195140111330";
// EKU that marks the policy-signing certificate; bundles verify only with a signer carrying it.
inline constexpr std::string_view kOidPolicySigning = "2.25.131755941408280477794484523195140111330.1";
// CN of the policy-signing certificate made by `init`.
inline constexpr std::string_view kPolicySignerCommonName = "ipfleet-policy-signer";

enum class Profile {
  kHost,          // agent host: EKU ipsecIKE + clientAuth; SAN IPs/DNS from the inventory
  kExternal,      // external IKE peer (router, strongSwan): ipsecIKE + serverAuth + clientAuth + iKEIntermediate
  kController,    // controller TLS server: serverAuth (+ clientAuth for controller-to-controller use)
  kPolicySigner,  // bundle signing: only the ipfleet policy-signing EKU, keyUsage digitalSignature
};

// "host" | "external" | "controller" | "policy-signer".
std::string_view ProfileName(Profile p);
absl::StatusOr<Profile> ParseProfile(std::string_view name);

}  // namespace ipfleet::ca
