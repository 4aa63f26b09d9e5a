// IKE_AUTH authentication: the AUTH payload (RFC 7296 2.15 PSK, RFC 7427 digital signatures with
// ECDSA and RSA-PSS), certificate chain + CRL verification against the configured CAs, and the
// check that the peer's ID is the certificate's subject or one of its subjectAltNames.
// Verification has no off switch.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <vector>

#include "ipfleet/common/openssl.h"
#include "ipfleet/common/status.h"
#include "ipfleet/ike/config.h"
#include "ipfleet/ike/crypto.h"

namespace ipfleet::ike {

// Parsed credentials of one tunnel, loaded once from PeerConfig.
struct Credentials {
  ossl::PKey key;                 // our private key (pubkey auth)
  ossl::X509Ptr cert;             // our end-entity certificate
  std::vector<Bytes> cert_chain;  // DER: end entity first, then intermediates
  ossl::X509Store store;          // trust anchors (+ CRLs)
  bool crl_check = false;
  Bytes certreq;                  // SHA-1 of each CA's SubjectPublicKeyInfo, concatenated
  std::string psk;
  // Chains that verified recently: SHA-256 of the DER chain -> (monotonic expiry, parsed end-entity
  // certificate). Parsing a certificate and decoding its key through OpenSSL 3's decoders costs
  // more than the signature check, and fleet peers present the same chain every time. Scoped to
  // this object, so a new CA/CRL (a new Load) starts empty; entries live at most 60 s.
  struct Verified {
    std::chrono::steady_clock::time_point expiry;
    std::shared_ptr<X509> cert;
  };
  mutable std::map<std::string, Verified> verified_cache;

  static absl::StatusOr<std::shared_ptr<Credentials>> Load(const PeerConfig& peer);
};

// Tunnels of one host nearly always share their certificate, key, CA and CRL: one parsed Credentials
// (and so one verified-chain cache) per distinct set, instead of one per tunnel, saves memory and load
// time and lets every tunnel to a peer reuse that peer's verified chain. The engine keeps one across
// loads: the agent reloads its whole config for every tunnel it adds, and each IKE_SA keeps the
// config it was made with, so a per-load cache would leave one parsed set per IKE_SA.
class CredentialsCache {
 public:
  absl::StatusOr<std::shared_ptr<Credentials>> Get(const PeerConfig& peer);
  // Forgets the sets nothing else holds any more (call after a load).
  void Prune();
  size_t size() const { return by_inputs_.size(); }

 private:
  std::map<std::string, std::shared_ptr<Credentials>> by_inputs_;  // key: SHA-256 of the inputs
};

// The octets an AUTH payload signs or MACs (RFC 7296 2.15):
//   message | peer nonce | prf(SK_p, ID')  where ID' is the ID payload body.
absl::StatusOr<Bytes> AuthOctets(const Prf& prf, ByteView sk_p, ByteView real_message, ByteView peer_nonce,
                                 ByteView id_body);

// PSK: AUTH = prf(prf(secret, "Key Pad for IKEv2"), octets).
absl::StatusOr<Bytes> PskAuth(const Prf& prf, std::string_view secret, ByteView octets);

// RFC 7427 AUTH data (method 14): length | AlgorithmIdentifier | signature. The hash is chosen
// from what the peer announced in SIGNATURE_HASH_ALGORITHMS (ECDSA: the curve's hash; RSA:
// RSASSA-PSS with SHA-256 and salt = hash length).
absl::StatusOr<Bytes> SignAuth(EVP_PKEY* key, ByteView octets, const std::vector<uint16_t>& peer_hashes);
// Verifies method-14 AUTH data with the peer's public key. Accepts ecdsa-with-SHA256/384/512,
// RSASSA-PSS (SHA-256/384/512, MGF1 with the same hash) and sha256/384/512WithRSAEncryption.
absl::Status VerifyAuth(EVP_PKEY* peer_key, ByteView auth_data, ByteView octets);

// Verifies the peer's CERT payloads (DER, end entity first) against the credentials' store with
// CRL checking when CRLs are configured. Returns the end-entity certificate.
absl::StatusOr<ossl::X509Ptr> VerifyPeerCert(const Credentials& creds, const std::vector<Bytes>& der_certs);

// OK when `id` is the certificate's subject DN or matches a subjectAltName of its type.
absl::Status CheckIdInCert(X509* cert, const Identity& id);

}  // namespace ipfleet::ike
