#include <absl/strings/str_cat.h>

#include "internal.h"

namespace ipfleet::policy::internal {

absl::StatusOr<KeyLengths> StaticKeyLengths(const v1::Proposal& proposal) {
  if (proposal.esp().encryption().empty()) {
    return absl::InvalidArgumentError(absl::StrCat("proposal \"", proposal.name(), "\" has no ESP encryption"));
  }
  const std::string& enc = proposal.esp().encryption(0);
  KeyLengths k;
  bool aead = false;
  if (enc == "aes128gcm16") { k.encryption = 16 + 4; aead = true; }
  else if (enc == "aes192gcm16") { k.encryption = 24 + 4; aead = true; }
  else if (enc == "aes256gcm16") { k.encryption = 32 + 4; aead = true; }
  else if (enc == "aes128") k.encryption = 16;
  else if (enc == "aes192") k.encryption = 24;
  else if (enc == "aes256") k.encryption = 32;
  else return absl::InvalidArgumentError(absl::StrCat("static keys: unsupported ESP encryption \"", enc, "\""));
  if (!aead) {
    if (proposal.esp().integrity().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("static keys: proposal \"", proposal.name(), "\" needs ESP integrity with ", enc));
    }
    const std::string& integ = proposal.esp().integrity(0);
    if (integ == "sha1") k.integrity = 20;
    else if (integ == "sha256") k.integrity = 32;
    else if (integ == "sha384") k.integrity = 48;
    else if (integ == "sha512") k.integrity = 64;
    else return absl::InvalidArgumentError(absl::StrCat("static keys: unsupported ESP integrity \"", integ, "\""));
  }
  return k;
}

namespace {

absl::StatusOr<v1::StaticSaKeys> OneDirection(const KeyLengths& lengths, KeySource& keys) {
  v1::StaticSaKeys out;
  uint32_t spi = 0;
  // SPIs 0-255 are reserved (RFC 4303); draw until we are outside that range.
  while (spi < 0x100) {
    IPFLEET_ASSIGN_OR_RETURN(std::string raw, keys.RandomBytes(4));
    spi = (uint32_t{static_cast<uint8_t>(raw[0])} << 24) | (uint32_t{static_cast<uint8_t>(raw[1])} << 16) |
          (uint32_t{static_cast<uint8_t>(raw[2])} << 8) | uint32_t{static_cast<uint8_t>(raw[3])};
  }
  out.set_spi(spi);
  IPFLEET_ASSIGN_OR_RETURN(std::string enc, keys.RandomBytes(lengths.encryption));
  out.set_encryption_key(std::move(enc));
  if (lengths.integrity > 0) {
    IPFLEET_ASSIGN_OR_RETURN(std::string integ, keys.RandomBytes(lengths.integrity));
    out.set_integrity_key(std::move(integ));
  }
  return out;
}

}  // namespace

absl::StatusOr<StaticKeyMaterial> NewStaticKeys(const KeyLengths& lengths, uint64_t generation, KeySource& keys) {
  StaticKeyMaterial m;
  m.key_generation = generation;
  IPFLEET_ASSIGN_OR_RETURN(m.a_to_b, OneDirection(lengths, keys));
  IPFLEET_ASSIGN_OR_RETURN(m.b_to_a, OneDirection(lengths, keys));
  return m;
}

bool KeysFit(const StaticKeyMaterial& m, const KeyLengths& lengths) {
  for (const auto* k : {&m.a_to_b, &m.b_to_a}) {
    if (k->spi() < 0x100 || k->encryption_key().size() != lengths.encryption ||
        k->integrity_key().size() != lengths.integrity) {
      return false;
    }
  }
  return true;
}

}  // namespace ipfleet::policy::internal
