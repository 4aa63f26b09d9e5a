// A minimal IKE engine for agent tests: "negotiation" is instant and installs an SA pair (and
// protecting policies) into the given Xfrm, like the real engine would after IKE_AUTH.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "ipfleet/agent/sync/ike_seam.h"
#include "ipfleet/agent/sync/kernel_plan.h"
#include "ipfleet/kernel/xfrm.h"

namespace ipfleet::agent::testing {

inline kernel::SaId Sid(const kernel::IpAddress& dst, uint32_t spi) {
  kernel::SaId id;
  id.dst = dst;
  id.spi = spi;
  return id;
}

// Copies (a range-for over `*x.DumpSas()` would iterate a destroyed temporary).
inline std::vector<kernel::SaState> Sas(kernel::Xfrm& x) { return x.DumpSas().value(); }
inline std::vector<kernel::PolicyState> Policies(kernel::Xfrm& x) { return x.DumpPolicies().value(); }

class FakeIke : public IkeSeam {
 public:
  explicit FakeIke(kernel::Xfrm& xfrm) : xfrm_(xfrm) {}

  absl::Status AddConnection(const TunnelConfig& t, const ConnectionOptions& o) override {
    log.push_back("add:" + t.name);
    conns_[t.name] = Conn{t, o, std::nullopt};
    if (t.start == StartKind::kStart && auto_establish) return Establish(t.name);
    return absl::OkStatus();
  }
  absl::Status ReplaceConnection(const TunnelConfig& t, const ConnectionOptions& o) override {
    log.push_back("replace:" + t.name);
    auto it = conns_.find(t.name);
    if (it == conns_.end()) return absl::NotFoundError("no connection " + t.name);
    // Make-before-break: new CHILD_SA first, then the old one goes.
    auto old = it->second.sa;
    it->second.tunnel = t;
    it->second.options = o;
    if (auto_establish) {
      IPFLEET_RETURN_IF_ERROR(NewChild(t.name));
      if (old && !old->children.empty()) RemoveChild(t.name, old->children.front());
    }
    return absl::OkStatus();
  }
  absl::Status RemoveConnection(const std::string& name) override {
    log.push_back("remove:" + name);
    (void)DeleteIkeSa(name);
    conns_.erase(name);
    return absl::OkStatus();
  }
  absl::Status Initiate(const std::string& name) override {
    log.push_back("initiate:" + name);
    if (!conns_.count(name)) return absl::NotFoundError("no connection " + name);
    if (fail_initiate) return absl::UnavailableError("peer unreachable");
    return Establish(name);
  }
  absl::Status DeleteChildSas(const std::string& name, uint32_t spi_in) override {
    log.push_back("delete_child:" + name);
    auto it = conns_.find(name);
    if (it == conns_.end() || !it->second.sa) return absl::OkStatus();
    auto children = it->second.sa->children;
    for (const auto& c : children) {
      if (spi_in == 0 || c.spi_in == spi_in) RemoveChild(name, c);
    }
    return absl::OkStatus();
  }
  absl::Status DeleteIkeSa(const std::string& name) override {
    log.push_back("delete_ike:" + name);
    (void)DeleteChildSas(name, 0);
    if (auto it = conns_.find(name); it != conns_.end()) it->second.sa.reset();
    return absl::OkStatus();
  }
  absl::Status Rekey(const std::string& name) override {
    log.push_back("rekey:" + name);
    auto it = conns_.find(name);
    if (it == conns_.end()) return absl::NotFoundError("no connection " + name);
    if (fail_initiate) return absl::UnavailableError("peer unreachable");
    if (!it->second.sa || it->second.sa->children.empty()) return Establish(name);
    auto old = it->second.sa->children;
    IPFLEET_RETURN_IF_ERROR(NewChild(name));
    if (keep_replaced) {  // like the engine's grace period: still listed, being deleted
      for (auto& c : it->second.sa->children)
        if (c.spi_in != it->second.sa->children.back().spi_in) c.phase = SaPhase::kDeleting;
    } else {
      for (const auto& c : old) RemoveChild(name, c);
    }
    it->second.sa->children.back().rekeys = 1;
    return absl::OkStatus();
  }
  std::optional<IkeSaView> Query(const std::string& name) override {
    auto it = conns_.find(name);
    if (it == conns_.end()) return std::nullopt;
    return it->second.sa;
  }
  absl::Status SetTrust(const std::vector<std::string>& chain, const std::string& crl) override {
    log.push_back("trust");
    trust_chain = chain;
    trust_crl = crl;
    return absl::OkStatus();
  }

  // ---- test controls ----
  IkeSaView* Sa(const std::string& name) {
    auto it = conns_.find(name);
    return it == conns_.end() || !it->second.sa ? nullptr : &*it->second.sa;
  }
  bool Has(const std::string& name) const { return conns_.count(name) > 0; }
  const TunnelConfig* Config(const std::string& name) const {
    auto it = conns_.find(name);
    return it == conns_.end() ? nullptr : &it->second.tunnel;
  }
  int64_t now_unix = 1'700'000'000;
  bool auto_establish = true;
  bool fail_initiate = false;
  bool keep_replaced = false;  // Rekey leaves the replaced CHILD_SAs listed as kDeleting
  std::vector<std::string> log;
  std::vector<std::string> trust_chain;
  std::string trust_crl;

 private:
  struct Conn {
    TunnelConfig tunnel;
    ConnectionOptions options;
    std::optional<IkeSaView> sa;
  };

  absl::Status Establish(const std::string& name) {
    auto& c = conns_.at(name);
    if (!c.sa) {
      IkeSaView v;
      v.spi_i = 0x1000 + next_spi_;
      v.spi_r = 0x2000 + next_spi_;
      v.phase = SaPhase::kEstablished;
      v.initiator = c.tunnel.initiator;
      v.established_unix = now_unix;
      v.last_heard_unix = now_unix;
      v.suite = "aes128gcm16-prfsha256-curve25519";
      v.remote_identity = c.tunnel.remote_identity;
      c.sa = v;
      // Policies once per IKE_SA, like the engine installing its CHILD_SA's selectors.
      auto pols = TunnelPolicies(c.tunnel, c.options.policy_priority);
      if (!pols.ok()) return pols.status();
      for (const auto& p : *pols) IPFLEET_RETURN_IF_ERROR(xfrm_.UpdatePolicy(p));
    }
    return NewChild(name);
  }

  absl::Status NewChild(const std::string& name) {
    auto& c = conns_.at(name);
    if (!c.sa) return Establish(name);
    ChildSaView ch;
    ch.spi_in = 0xc0000000u + ++next_spi_;
    ch.spi_out = 0xd0000000u + next_spi_;
    ch.established_unix = now_unix;
    ch.suite = "aes128gcm16";
    for (bool out : {false, true}) {
      kernel::SaParams sa;
      sa.src = ToKernel(out ? c.tunnel.local_address : c.tunnel.remote_address);
      sa.dst = ToKernel(out ? c.tunnel.remote_address : c.tunnel.local_address);
      sa.spi = out ? ch.spi_out : ch.spi_in;
      sa.reqid = OwnedReqid(c.tunnel);
      sa.aead = kernel::AeadAlgo{"rfc4106(gcm(aes))", std::vector<uint8_t>(20, 7), 128};
      IPFLEET_RETURN_IF_ERROR(xfrm_.AddSa(sa));
    }
    c.sa->children.push_back(ch);
    return absl::OkStatus();
  }

  void RemoveChild(const std::string& name, const ChildSaView ch) {
    auto& c = conns_.at(name);
    (void)xfrm_.DeleteSa(Sid(ToKernel(c.tunnel.local_address), ch.spi_in));
    (void)xfrm_.DeleteSa(Sid(ToKernel(c.tunnel.remote_address), ch.spi_out));
    auto& v = c.sa->children;
    for (auto it = v.begin(); it != v.end(); ++it) {
      if (it->spi_in == ch.spi_in) {
        v.erase(it);
        break;
      }
    }
  }

  kernel::Xfrm& xfrm_;
  std::map<std::string, Conn> conns_;
  uint32_t next_spi_ = 0;
};

}  // namespace ipfleet::agent::testing
