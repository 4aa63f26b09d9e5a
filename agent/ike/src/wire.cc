// Names for log lines and the Message lookup helpers.
#include "ipfleet/ike/wire.h"

#include <absl/strings/str_cat.h>

namespace ipfleet::ike {

const Payload* Message::Find(PayloadType t) const {
  for (const auto& p : payloads)
    if (p.type == t) return &p;
  return nullptr;
}

std::vector<const NotifyPayload*> Message::Notifies() const {
  std::vector<const NotifyPayload*> out;
  for (const auto& p : payloads)
    if (auto* n = std::get_if<NotifyPayload>(&p.body)) out.push_back(n);
  return out;
}

const NotifyPayload* Message::FindNotify(NotifyType t) const {
  for (const auto& p : payloads)
    if (auto* n = std::get_if<NotifyPayload>(&p.body); n && n->type == static_cast<uint16_t>(t)) return n;
  return nullptr;
}

std::string ExchangeName(ExchangeType e) {
  switch (e) {
    case ExchangeType::kIkeSaInit: return "IKE_SA_INIT";
    case ExchangeType::kIkeAuth: return "IKE_AUTH";
    case ExchangeType::kCreateChildSa: return "CREATE_CHILD_SA";
    case ExchangeType::kInformational: return "INFORMATIONAL";
  }
  return absl::StrCat("EXCHANGE_", static_cast<int>(e));
}

std::string PayloadName(PayloadType t) {
  switch (t) {
    case PayloadType::kNone: return "NONE";
    case PayloadType::kSa: return "SA";
    case PayloadType::kKe: return "KE";
    case PayloadType::kIdi: return "IDi";
    case PayloadType::kIdr: return "IDr";
    case PayloadType::kCert: return "CERT";
    case PayloadType::kCertReq: return "CERTREQ";
    case PayloadType::kAuth: return "AUTH";
    case PayloadType::kNonce: return "No";
    case PayloadType::kNotify: return "N";
    case PayloadType::kDelete: return "D";
    case PayloadType::kVendorId: return "V";
    case PayloadType::kTsi: return "TSi";
    case PayloadType::kTsr: return "TSr";
    case PayloadType::kSk: return "SK";
    default: return absl::StrCat("PAYLOAD_", static_cast<int>(t));
  }
}

std::string NotifyName(uint16_t t) {
  switch (static_cast<NotifyType>(t)) {
    case NotifyType::kUnsupportedCriticalPayload: return "UNSUPPORTED_CRITICAL_PAYLOAD";
    case NotifyType::kInvalidIkeSpi: return "INVALID_IKE_SPI";
    case NotifyType::kInvalidMajorVersion: return "INVALID_MAJOR_VERSION";
    case NotifyType::kInvalidSyntax: return "INVALID_SYNTAX";
    case NotifyType::kInvalidMessageId: return "INVALID_MESSAGE_ID";
    case NotifyType::kInvalidSpi: return "INVALID_SPI";
    case NotifyType::kNoProposalChosen: return "NO_PROPOSAL_CHOSEN";
    case NotifyType::kInvalidKePayload: return "INVALID_KE_PAYLOAD";
    case NotifyType::kAuthenticationFailed: return "AUTHENTICATION_FAILED";
    case NotifyType::kSinglePairRequired: return "SINGLE_PAIR_REQUIRED";
    case NotifyType::kNoAdditionalSas: return "NO_ADDITIONAL_SAS";
    case NotifyType::kInternalAddressFailure: return "INTERNAL_ADDRESS_FAILURE";
    case NotifyType::kFailedCpRequired: return "FAILED_CP_REQUIRED";
    case NotifyType::kTsUnacceptable: return "TS_UNACCEPTABLE";
    case NotifyType::kInvalidSelectors: return "INVALID_SELECTORS";
    case NotifyType::kTemporaryFailure: return "TEMPORARY_FAILURE";
    case NotifyType::kChildSaNotFound: return "CHILD_SA_NOT_FOUND";
    case NotifyType::kInitialContact: return "INITIAL_CONTACT";
    case NotifyType::kSetWindowSize: return "SET_WINDOW_SIZE";
    case NotifyType::kAdditionalTsPossible: return "ADDITIONAL_TS_POSSIBLE";
    case NotifyType::kIpcompSupported: return "IPCOMP_SUPPORTED";
    case NotifyType::kNatDetectionSourceIp: return "NAT_DETECTION_SOURCE_IP";
    case NotifyType::kNatDetectionDestinationIp: return "NAT_DETECTION_DESTINATION_IP";
    case NotifyType::kCookie: return "COOKIE";
    case NotifyType::kUseTransportMode: return "USE_TRANSPORT_MODE";
    case NotifyType::kHttpCertLookupSupported: return "HTTP_CERT_LOOKUP_SUPPORTED";
    case NotifyType::kRekeySa: return "REKEY_SA";
    case NotifyType::kEspTfcPaddingNotSupported: return "ESP_TFC_PADDING_NOT_SUPPORTED";
    case NotifyType::kNonFirstFragmentsAlso: return "NON_FIRST_FRAGMENTS_ALSO";
    case NotifyType::kMobikeSupported: return "MOBIKE_SUPPORTED";
    case NotifyType::kIkev2FragmentationSupported: return "IKEV2_FRAGMENTATION_SUPPORTED";
    case NotifyType::kSignatureHashAlgorithms: return "SIGNATURE_HASH_ALGORITHMS";
  }
  return absl::StrCat("NOTIFY_", t);
}

std::string TransformTypeName(TransformType t) {
  switch (t) {
    case TransformType::kEncr: return "ENCR";
    case TransformType::kPrf: return "PRF";
    case TransformType::kInteg: return "INTEG";
    case TransformType::kDh: return "DH";
    case TransformType::kEsn: return "ESN";
  }
  return absl::StrCat("TYPE_", static_cast<int>(t));
}

std::string TransformName(const Transform& t) {
  switch (t.type) {
    case TransformType::kEncr: {
      std::string bits = t.key_length() ? absl::StrCat("_", *t.key_length()) : "";
      if (t.id == encr::kAesCbc) return "AES_CBC" + bits;
      if (t.id == encr::kAesGcm16) return "AES_GCM_16" + bits;
      return absl::StrCat("ENCR_", t.id, bits);
    }
    case TransformType::kPrf:
      if (t.id == prf::kHmacSha256) return "PRF_HMAC_SHA2_256";
      if (t.id == prf::kHmacSha384) return "PRF_HMAC_SHA2_384";
      if (t.id == prf::kHmacSha512) return "PRF_HMAC_SHA2_512";
      return absl::StrCat("PRF_", t.id);
    case TransformType::kInteg:
      if (t.id == integ::kHmacSha256_128) return "HMAC_SHA2_256_128";
      if (t.id == integ::kHmacSha384_192) return "HMAC_SHA2_384_192";
      if (t.id == integ::kHmacSha512_256) return "HMAC_SHA2_512_256";
      if (t.id == integ::kNone) return "INTEG_NONE";
      return absl::StrCat("INTEG_", t.id);
    case TransformType::kDh:
      if (t.id == dh::kModp2048) return "MODP_2048";
      if (t.id == dh::kEcp256) return "ECP_256";
      if (t.id == dh::kEcp384) return "ECP_384";
      if (t.id == dh::kCurve25519) return "CURVE_25519";
      if (t.id == dh::kNone) return "DH_NONE";
      return absl::StrCat("DH_", t.id);
    case TransformType::kEsn:
      return t.id == esn::kYes ? "ESN" : "NO_ESN";
  }
  return absl::StrCat("T", static_cast<int>(t.type), "_", t.id);
}

}  // namespace ipfleet::ike
