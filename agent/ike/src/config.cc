// Parsing of the textual config forms (proposals, identities, selectors) into wire types.
#include "ipfleet/ike/config.h"

#include <absl/strings/numbers.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_join.h>
#include <absl/strings/str_split.h>
#include <openssl/x509.h>

#include <map>

#include "ipfleet/common/openssl.h"

namespace ipfleet::ike {

absl::StatusOr<Identity> Identity::Parse(const std::string& text) {
  Identity id;
  if (text.empty()) return absl::InvalidArgumentError("empty identity");
  if (auto ip = kernel::IpAddress::Parse(text); ip.ok()) {
    id.type = ip->is_v4() ? IdType::kIpv4 : IdType::kIpv6;
    id.data.assign(ip->bytes.begin(), ip->bytes.begin() + (ip->is_v4() ? 4 : 16));
    return id;
  }
  if (text.find('=') != std::string::npos) {
    // "CN=host-a,O=ipfleet" (or "/CN=.../O=..."): build the DER Name in the order written.
    ossl::X509Name name(X509_NAME_new());
    if (!name) return ossl::Error("X509_NAME_new");
    std::vector<std::string> parts =
        absl::StrSplit(text, absl::ByAnyChar(text[0] == '/' ? "/" : ","), absl::SkipWhitespace());
    for (std::string part : parts) {
      while (!part.empty() && part.front() == ' ') part.erase(part.begin());
      auto eq = part.find('=');
      if (eq == std::string::npos) return absl::InvalidArgumentError(absl::StrCat("bad DN component '", part, "'"));
      std::string key = part.substr(0, eq), val = part.substr(eq + 1);
      if (X509_NAME_add_entry_by_txt(name.get(), key.c_str(), MBSTRING_UTF8,
                                     reinterpret_cast<const unsigned char*>(val.c_str()), -1, -1, 0) != 1)
        return ossl::Error(absl::StrCat("X509_NAME_add_entry_by_txt(", key, ")"), absl::StatusCode::kInvalidArgument);
    }
    unsigned char* der = nullptr;
    int len = i2d_X509_NAME(name.get(), &der);
    if (len <= 0) return ossl::Error("i2d_X509_NAME");
    id.type = IdType::kDerAsn1Dn;
    id.data.assign(der, der + len);
    OPENSSL_free(der);
    return id;
  }
  id.type = text.find('@') != std::string::npos ? IdType::kRfc822 : IdType::kFqdn;
  id.data.assign(text.begin(), text.end());
  return id;
}

std::string Identity::ToString() const {
  switch (type) {
    case IdType::kIpv4:
    case IdType::kIpv6: {
      kernel::IpAddress a;
      a.family = type == IdType::kIpv4 ? kernel::IpAddress::Family::kV4 : kernel::IpAddress::Family::kV6;
      if (data.size() != (type == IdType::kIpv4 ? 4u : 16u)) return "<bad address id>";
      std::copy(data.begin(), data.end(), a.bytes.begin());
      return a.ToString();
    }
    case IdType::kDerAsn1Dn: {
      const unsigned char* p = data.data();
      ossl::X509Name name(d2i_X509_NAME(nullptr, &p, data.size()));
      if (!name) return "<bad DN>";
      ossl::Bio bio(BIO_new(BIO_s_mem()));
      X509_NAME_print_ex(bio.get(), name.get(), 0, XN_FLAG_RFC2253 & ~XN_FLAG_DN_REV);  // in written order
      return ossl::BioToString(bio.get());
    }
    case IdType::kFqdn:
    case IdType::kRfc822:
      return std::string(data.begin(), data.end());
    default:
      return absl::StrCat("id-type-", static_cast<int>(type));
  }
}

absl::StatusOr<TsConfig> TsConfig::Parse(const std::string& text) {
  TsConfig ts;
  std::string prefix = text, extra;
  if (auto b = text.find('['); b != std::string::npos) {
    if (text.back() != ']') return absl::InvalidArgumentError(absl::StrCat("bad selector '", text, "'"));
    prefix = text.substr(0, b);
    extra = text.substr(b + 1, text.size() - b - 2);
  }
  IPFLEET_ASSIGN_OR_RETURN(ts.prefix, kernel::IpPrefix::Parse(prefix));
  if (!extra.empty()) {
    std::vector<std::string> pp = absl::StrSplit(extra, '/');
    static const std::map<std::string, uint8_t> kProtos = {{"tcp", 6}, {"udp", 17}, {"icmp", 1}, {"icmpv6", 58}, {"sctp", 132}};
    int proto;
    if (auto it = kProtos.find(pp[0]); it != kProtos.end()) proto = it->second;
    else if (!absl::SimpleAtoi(pp[0], &proto) || proto < 0 || proto > 255)
      return absl::InvalidArgumentError(absl::StrCat("bad protocol in selector '", text, "'"));
    ts.proto = static_cast<uint8_t>(proto);
    if (pp.size() > 1) {
      int port;
      if (!absl::SimpleAtoi(pp[1], &port) || port < 0 || port > 65535)
        return absl::InvalidArgumentError(absl::StrCat("bad port in selector '", text, "'"));
      ts.port_lo = ts.port_hi = static_cast<uint16_t>(port);
    }
  }
  return ts;
}

std::string TsConfig::ToString() const {
  std::string s = prefix.ToString();
  if (proto || port_lo != 0 || port_hi != 0xffff) {
    absl::StrAppend(&s, "[", proto);
    if (port_lo == port_hi) absl::StrAppend(&s, "/", port_lo);
    else if (port_lo != 0 || port_hi != 0xffff) absl::StrAppend(&s, "/", port_lo, "-", port_hi);
    s += "]";
  }
  return s;
}

absl::StatusOr<Proposal> ParseProposal(const std::string& text, ProtocolId protocol) {
  Proposal p;
  p.protocol = protocol;
  std::vector<Transform> encrs, prfs, integs, dhs, esns;
  bool aead = false;
  for (std::string tok : std::vector<std::string>(absl::StrSplit(text, '-', absl::SkipEmpty()))) {
    if (tok == "aes128gcm16" || tok == "aes256gcm16" || tok == "aes192gcm16") {
      encrs.push_back(MakeTransform(TransformType::kEncr, encr::kAesGcm16,
                                    tok == "aes128gcm16" ? 128 : tok == "aes192gcm16" ? 192 : 256));
      aead = true;
    } else if (tok == "aes128" || tok == "aes192" || tok == "aes256") {
      encrs.push_back(MakeTransform(TransformType::kEncr, encr::kAesCbc, tok == "aes128" ? 128 : tok == "aes192" ? 192 : 256));
    } else if (tok == "sha256" || tok == "sha384" || tok == "sha512") {
      uint16_t i = tok == "sha256" ? integ::kHmacSha256_128 : tok == "sha384" ? integ::kHmacSha384_192 : integ::kHmacSha512_256;
      integs.push_back(MakeTransform(TransformType::kInteg, i));
    } else if (tok == "prfsha256" || tok == "prfsha384" || tok == "prfsha512") {
      uint16_t i = tok == "prfsha256" ? prf::kHmacSha256 : tok == "prfsha384" ? prf::kHmacSha384 : prf::kHmacSha512;
      prfs.push_back(MakeTransform(TransformType::kPrf, i));
    } else if (tok == "modp2048") {
      dhs.push_back(MakeTransform(TransformType::kDh, dh::kModp2048));
    } else if (tok == "ecp256") {
      dhs.push_back(MakeTransform(TransformType::kDh, dh::kEcp256));
    } else if (tok == "ecp384") {
      dhs.push_back(MakeTransform(TransformType::kDh, dh::kEcp384));
    } else if (tok == "x25519" || tok == "curve25519") {
      dhs.push_back(MakeTransform(TransformType::kDh, dh::kCurve25519));
    } else if (tok == "esn" || tok == "noesn") {
      esns.push_back(MakeTransform(TransformType::kEsn, tok == "esn" ? esn::kYes : esn::kNo));
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown algorithm '", tok, "' in proposal '", text, "'"));
    }
  }
  if (encrs.empty()) return absl::InvalidArgumentError(absl::StrCat("proposal '", text, "' has no encryption algorithm"));
  if (aead && !integs.empty()) return absl::InvalidArgumentError(absl::StrCat("proposal '", text, "' mixes AEAD and integrity"));
  if (!aead && integs.empty()) return absl::InvalidArgumentError(absl::StrCat("proposal '", text, "' needs an integrity algorithm"));
  if (protocol == ProtocolId::kIke) {
    if (prfs.empty()) {
      if (integs.empty()) return absl::InvalidArgumentError(absl::StrCat("AEAD IKE proposal '", text, "' needs a prf"));
      for (const auto& i : integs)
        prfs.push_back(MakeTransform(TransformType::kPrf, i.id == integ::kHmacSha256_128   ? prf::kHmacSha256
                                                         : i.id == integ::kHmacSha384_192 ? prf::kHmacSha384
                                                                                          : prf::kHmacSha512));
    }
    if (dhs.empty()) return absl::InvalidArgumentError(absl::StrCat("IKE proposal '", text, "' needs a DH group"));
    if (!esns.empty()) return absl::InvalidArgumentError("ESN is not an IKE transform");
  } else {
    if (!prfs.empty()) return absl::InvalidArgumentError("PRF is not an ESP transform");
    if (esns.empty()) esns.push_back(MakeTransform(TransformType::kEsn, esn::kNo));
  }
  for (auto* v : {&encrs, &prfs, &integs, &dhs, &esns}) p.transforms.insert(p.transforms.end(), v->begin(), v->end());
  return p;
}

std::string ProposalSuiteName(const Proposal& p) {
  std::vector<std::string> names;
  for (const auto& t : p.transforms) names.push_back(TransformName(t));
  return absl::StrJoin(names, "/");
}

const char* ToString(StartAction a) {
  switch (a) {
    case StartAction::kNone: return "none";
    case StartAction::kStart: return "start";
    case StartAction::kTrap: return "trap";
  }
  return "?";
}

const char* ToString(AuthKind a) { return a == AuthKind::kPsk ? "psk" : "pubkey"; }

}  // namespace ipfleet::ike
