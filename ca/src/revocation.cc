#include "ipfleet/ca/revocation.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>

#include "x509_util.h"

namespace ipfleet::ca {

namespace {

struct ReasonName {
  RevocationReason reason;
  std::string_view name;
};
constexpr ReasonName kReasons[] = {
    {RevocationReason::kUnspecified, "unspecified"},
    {RevocationReason::kKeyCompromise, "keyCompromise"},
    {RevocationReason::kCaCompromise, "cACompromise"},
    {RevocationReason::kAffiliationChanged, "affiliationChanged"},
    {RevocationReason::kSuperseded, "superseded"},
    {RevocationReason::kCessationOfOperation, "cessationOfOperation"},
    {RevocationReason::kCertificateHold, "certificateHold"},
    {RevocationReason::kRemoveFromCrl, "removeFromCRL"},
    {RevocationReason::kPrivilegeWithdrawn, "privilegeWithdrawn"},
    {RevocationReason::kAaCompromise, "aACompromise"},
};

// Lower case without '-', '_' so "key-compromise" == "keyCompromise".
std::string Fold(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '-' || c == '_' || c == ' ') continue;
    out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

bool ValidReasonValue(int v) {
  return std::any_of(std::begin(kReasons), std::end(kReasons),
                     [v](const ReasonName& r) { return static_cast<int>(r.reason) == v; });
}

}  // namespace

std::string_view RevocationReasonName(RevocationReason r) {
  for (const auto& rn : kReasons) {
    if (rn.reason == r) return rn.name;
  }
  return "unspecified";
}

absl::StatusOr<RevocationReason> ParseRevocationReason(std::string_view text) {
  int v = -1;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec == std::errc() && ptr == text.data() + text.size()) {
    if (ValidReasonValue(v)) return static_cast<RevocationReason>(v);
  } else {
    std::string folded = Fold(text);
    for (const auto& rn : kReasons) {
      if (Fold(rn.name) == folded) return rn.reason;
    }
  }
  std::string names;
  for (const auto& rn : kReasons) {
    if (!names.empty()) names += ", ";
    names += rn.name;
  }
  return absl::InvalidArgumentError("unknown revocation reason \"" + std::string(text) +
                                    "\" (one of: " + names + ")");
}

absl::StatusOr<CaState> ParseCaState(std::string_view json, std::string_view origin) {
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError("damaged CA state " + std::string(origin) + ": " + std::string(why));
  };
  nlohmann::json doc = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return bad("not valid JSON");
  if (!doc.is_object()) return bad("not a JSON object");
  if (!doc.contains("version") || !doc["version"].is_number_integer() || doc["version"].get<int64_t>() != 1) {
    return bad("missing or unsupported \"version\" (want 1)");
  }
  if (!doc.contains("crl_number") || !doc["crl_number"].is_number_unsigned()) {
    return bad("missing or invalid \"crl_number\"");
  }
  if (!doc.contains("revoked") || !doc["revoked"].is_array()) return bad("missing \"revoked\" array");
  CaState state;
  state.crl_number = doc["crl_number"].get<uint64_t>();
  for (const auto& e : doc["revoked"]) {
    if (!e.is_object() || !e.contains("serial") || !e["serial"].is_string() || !e.contains("reason") ||
        !e["reason"].is_number_integer() || !e.contains("revoked_at") ||
        !e["revoked_at"].is_number_integer()) {
      return bad("revoked entry lacks serial/reason/revoked_at");
    }
    auto serial = NormalizeSerialHex(e["serial"].get<std::string>());
    if (!serial.ok()) return bad(std::string(serial.status().message()));
    int reason = e["reason"].get<int>();
    if (!ValidReasonValue(reason)) return bad("invalid reason " + std::to_string(reason));
    state.revoked.push_back(RevokedEntry{*serial, static_cast<RevocationReason>(reason),
                                         internal::FromUnix(e["revoked_at"].get<int64_t>())});
  }
  return state;
}

std::string SerializeCaState(const CaState& state) {
  nlohmann::json doc;
  doc["version"] = 1;
  doc["crl_number"] = state.crl_number;
  doc["revoked"] = nlohmann::json::array();
  for (const auto& e : state.revoked) {
    doc["revoked"].push_back({{"serial", e.serial_hex},
                              {"reason", static_cast<int>(e.reason)},
                              {"reason_name", std::string(RevocationReasonName(e.reason))},
                              {"revoked_at", internal::ToUnix(e.revoked_at)}});
  }
  return doc.dump(2) + "\n";
}

}  // namespace ipfleet::ca
