// IKEv2 wire model (RFC 7296 section 3): header, payload structs and protocol constants.
// Plain data only; encoding/decoding lives in codec.h so the state machine never touches bytes.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

namespace ipfleet::ike {

using Bytes = std::vector<uint8_t>;
using ByteView = std::span<const uint8_t>;

enum class ExchangeType : uint8_t {
  kIkeSaInit = 34,
  kIkeAuth = 35,
  kCreateChildSa = 36,
  kInformational = 37,
};

// Header flags (RFC 7296 3.1).
inline constexpr uint8_t kFlagInitiator = 0x08;
inline constexpr uint8_t kFlagVersion = 0x10;
inline constexpr uint8_t kFlagResponse = 0x20;

enum class PayloadType : uint8_t {
  kNone = 0,
  kSa = 33,
  kKe = 34,
  kIdi = 35,
  kIdr = 36,
  kCert = 37,
  kCertReq = 38,
  kAuth = 39,
  kNonce = 40,
  kNotify = 41,
  kDelete = 42,
  kVendorId = 43,
  kTsi = 44,
  kTsr = 45,
  kSk = 46,
  kCp = 47,
  kEap = 48,
  kSkf = 53,
};

enum class ProtocolId : uint8_t { kNone = 0, kIke = 1, kAh = 2, kEsp = 3 };

enum class TransformType : uint8_t { kEncr = 1, kPrf = 2, kInteg = 3, kDh = 4, kEsn = 5 };

// Transform IDs used by this engine (IANA "IKEv2 Parameters").
namespace encr {
inline constexpr uint16_t kAesCbc = 12;
inline constexpr uint16_t kAesGcm16 = 20;
}  // namespace encr
namespace prf {
inline constexpr uint16_t kHmacSha256 = 5;
inline constexpr uint16_t kHmacSha384 = 6;
inline constexpr uint16_t kHmacSha512 = 7;
}  // namespace prf
namespace integ {
inline constexpr uint16_t kNone = 0;
inline constexpr uint16_t kHmacSha256_128 = 12;
inline constexpr uint16_t kHmacSha384_192 = 13;
inline constexpr uint16_t kHmacSha512_256 = 14;
}  // namespace integ
namespace dh {
inline constexpr uint16_t kNone = 0;
inline constexpr uint16_t kModp2048 = 14;
inline constexpr uint16_t kEcp256 = 19;
inline constexpr uint16_t kEcp384 = 20;
inline constexpr uint16_t kCurve25519 = 31;
}  // namespace dh
namespace esn {
inline constexpr uint16_t kNo = 0;
inline constexpr uint16_t kYes = 1;
}  // namespace esn

inline constexpr uint16_t kAttrKeyLength = 14;  // TV format, AF bit set on the wire

enum class IdType : uint8_t {
  kIpv4 = 1,
  kFqdn = 2,
  kRfc822 = 3,
  kIpv6 = 5,
  kDerAsn1Dn = 9,
  kDerAsn1Gn = 10,
  kKeyId = 11,
};

enum class CertEncoding : uint8_t { kX509Signature = 4, kCrl = 7 };

enum class AuthMethod : uint8_t { kRsaSig = 1, kPsk = 2, kDss = 3, kEcdsa256 = 9, kDigitalSignature = 14 };

// Notify message types (IANA); error types are < 16384.
enum class NotifyType : uint16_t {
  kUnsupportedCriticalPayload = 1,
  kInvalidIkeSpi = 4,
  kInvalidMajorVersion = 5,
  kInvalidSyntax = 7,
  kInvalidMessageId = 9,
  kInvalidSpi = 11,
  kNoProposalChosen = 14,
  kInvalidKePayload = 17,
  kAuthenticationFailed = 24,
  kSinglePairRequired = 34,
  kNoAdditionalSas = 35,
  kInternalAddressFailure = 36,
  kFailedCpRequired = 37,
  kTsUnacceptable = 38,
  kInvalidSelectors = 39,
  kTemporaryFailure = 43,
  kChildSaNotFound = 44,
  kInitialContact = 16384,
  kSetWindowSize = 16385,
  kAdditionalTsPossible = 16386,
  kIpcompSupported = 16387,
  kNatDetectionSourceIp = 16388,
  kNatDetectionDestinationIp = 16389,
  kCookie = 16390,
  kUseTransportMode = 16391,
  kHttpCertLookupSupported = 16392,
  kRekeySa = 16393,
  kEspTfcPaddingNotSupported = 16394,
  kNonFirstFragmentsAlso = 16395,
  kMobikeSupported = 16396,
  kIkev2FragmentationSupported = 16430,
  kSignatureHashAlgorithms = 16431,
};

inline bool IsErrorNotify(uint16_t t) { return t < 16384; }

// RFC 7427 hash algorithm identifiers.
namespace sighash {
inline constexpr uint16_t kSha256 = 2;
inline constexpr uint16_t kSha384 = 3;
inline constexpr uint16_t kSha512 = 4;
}  // namespace sighash

enum class TsType : uint8_t { kIpv4AddrRange = 7, kIpv6AddrRange = 8 };

struct Header {
  uint64_t spi_i = 0;
  uint64_t spi_r = 0;
  PayloadType next_payload = PayloadType::kNone;
  uint8_t major_version = 2;
  uint8_t minor_version = 0;
  ExchangeType exchange = ExchangeType::kIkeSaInit;
  uint8_t flags = 0;
  uint32_t message_id = 0;
  uint32_t length = 0;  // filled by the encoder, checked by the decoder

  bool is_response() const { return flags & kFlagResponse; }
  bool is_initiator() const { return flags & kFlagInitiator; }
};
inline constexpr size_t kHeaderSize = 28;
inline constexpr size_t kGenericPayloadHeaderSize = 4;

struct Attribute {
  uint16_t type = 0;
  bool tv = true;  // TV (fixed 2-byte value) vs TLV
  uint16_t value = 0;
  Bytes tlv_value;
  bool operator==(const Attribute&) const = default;
};

struct Transform {
  TransformType type = TransformType::kEncr;
  uint16_t id = 0;
  std::vector<Attribute> attributes;

  std::optional<uint16_t> key_length() const;
  bool operator==(const Transform&) const = default;
};
// A transform with an optional key-length attribute.
Transform MakeTransform(TransformType type, uint16_t id, uint16_t key_bits = 0);

struct Proposal {
  uint8_t number = 1;
  ProtocolId protocol = ProtocolId::kIke;
  Bytes spi;
  std::vector<Transform> transforms;
  bool operator==(const Proposal&) const = default;
};

struct SaPayload {
  std::vector<Proposal> proposals;
};

struct KePayload {
  uint16_t group = 0;
  Bytes data;
};

struct IdPayload {
  IdType type = IdType::kFqdn;
  Bytes data;
};

struct CertPayload {
  CertEncoding encoding = CertEncoding::kX509Signature;
  Bytes data;
};

struct CertReqPayload {
  CertEncoding encoding = CertEncoding::kX509Signature;
  Bytes data;  // concatenated SHA-1 hashes of trusted CA public keys
};

struct AuthPayload {
  AuthMethod method = AuthMethod::kPsk;
  Bytes data;
};

struct NoncePayload {
  Bytes data;
};

struct NotifyPayload {
  ProtocolId protocol = ProtocolId::kNone;
  Bytes spi;
  uint16_t type = 0;
  Bytes data;
};

struct DeletePayload {
  ProtocolId protocol = ProtocolId::kIke;
  uint8_t spi_size = 0;
  std::vector<Bytes> spis;
};

struct VendorIdPayload {
  Bytes data;
};

struct TrafficSelector {
  TsType type = TsType::kIpv4AddrRange;
  uint8_t ip_protocol = 0;
  uint16_t start_port = 0;
  uint16_t end_port = 0xffff;
  Bytes start_addr;  // 4 or 16 bytes
  Bytes end_addr;
  bool operator==(const TrafficSelector&) const = default;
};

struct TsPayload {
  std::vector<TrafficSelector> selectors;
};

// The Encrypted payload as seen on the wire: the inner chain's first type and the raw
// IV || ciphertext || ICV. Decryption is done by the crypto layer, then DecodeChain.
struct SkPayload {
  PayloadType first_inner = PayloadType::kNone;
  Bytes body;
};

// A payload this decoder does not understand (non-critical) kept as raw bytes.
struct UnknownPayload {
  uint8_t type = 0;
  bool critical = false;
  Bytes body;
};

using PayloadBody = std::variant<SaPayload, KePayload, IdPayload, CertPayload, CertReqPayload, AuthPayload,
                                 NoncePayload, NotifyPayload, DeletePayload, VendorIdPayload, TsPayload,
                                 SkPayload, UnknownPayload>;

struct Payload {
  PayloadType type = PayloadType::kNone;  // distinguishes IDi/IDr and TSi/TSr
  bool critical = false;
  PayloadBody body;
};

struct Message {
  Header header;
  std::vector<Payload> payloads;

  // Finds the first payload of a type, or nullptr.
  const Payload* Find(PayloadType t) const;
  template <typename T>
  const T* Get(PayloadType t) const {
    const Payload* p = Find(t);
    return p ? std::get_if<T>(&p->body) : nullptr;
  }
  std::vector<const NotifyPayload*> Notifies() const;
  const NotifyPayload* FindNotify(NotifyType t) const;
};

std::string ExchangeName(ExchangeType e);
std::string PayloadName(PayloadType t);
std::string NotifyName(uint16_t t);
std::string TransformTypeName(TransformType t);
std::string TransformName(const Transform& t);

}  // namespace ipfleet::ike
