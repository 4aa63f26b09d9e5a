// IKEv2 message encoder/decoder (RFC 7296 section 3). Every decoder is bounds-checked: lengths
// inside the message must agree with the bytes present, counts with the entries parsed. The
// codec knows nothing about SAs or keys; the Encrypted payload is kept as raw bytes.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "ipfleet/common/status.h"
#include "ipfleet/ike/wire.h"

namespace ipfleet::ike {

using ByteView = std::span<const uint8_t>;

// Parses and validates the fixed header: major version 2, length equal to the datagram size.
absl::StatusOr<Header> DecodeHeader(ByteView datagram);

// Parses a whole datagram: header plus the outer payload chain. An SK payload, if present,
// ends the chain (its body is left encrypted).
absl::StatusOr<Message> DecodeMessage(ByteView datagram);

// Parses a payload chain whose first payload has type `first` (e.g. the decrypted SK content).
absl::StatusOr<std::vector<Payload>> DecodeChain(PayloadType first, ByteView data);

// When a decode failed because of an unknown payload with the critical bit set, its type
// (to be answered with UNSUPPORTED_CRITICAL_PAYLOAD); nullopt for other failures.
std::optional<uint8_t> UnsupportedCriticalType(const absl::Status& s);
// True when the failure was an unsupported major version (answer INVALID_MAJOR_VERSION).
bool IsInvalidMajorVersion(const absl::Status& s);

// Encodes a payload chain (next-payload fields linked, lengths filled). Returns the bytes;
// the first payload's type is payloads.front().type (kNone for an empty chain).
Bytes EncodeChain(const std::vector<Payload>& payloads);

// Encodes header + chain; next_payload and length in the header are computed.
Bytes EncodeMessage(const Message& msg);

// Header with length/next_payload as given (used when building an SK message).
void AppendHeader(const Header& h, Bytes& out);

// The body (without generic header) of an ID payload: IDi'/IDr' for the AUTH computation.
Bytes EncodeIdBody(const IdPayload& id);

// Convenience constructors.
Payload MakeNotify(NotifyType type, Bytes data = {}, ProtocolId proto = ProtocolId::kNone, Bytes spi = {});

}  // namespace ipfleet::ike
