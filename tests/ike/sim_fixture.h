// Helpers for the rekey/mesh/INITIAL_CONTACT tests: N engines on one simulated network, each with
// its own fake kernel that records the order in which SAs were added (the kernel sends on the
// newest outbound SA of a template, so the order is what a traffic model needs).
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ipfleet/ike/engine.h"
#include "ipfleet/ike/sim_network.h"
#include "ipfleet/kernel/fake_xfrm.h"

namespace ipfleet::ike::testing {

// FakeXfrm that numbers SAs in the order they became usable (AddSa, or UpdateSa completing a
// larval SPI), like the kernel's add_time but without its one-second resolution.
class OrderedXfrm : public kernel::FakeXfrm {
 public:
  absl::Status AddSa(const kernel::SaParams& sa) override {
    absl::Status s = FakeXfrm::AddSa(sa);
    if (s.ok()) order_[sa.id()] = ++seq_;
    return s;
  }
  absl::Status UpdateSa(const kernel::SaParams& sa) override {
    absl::Status s = FakeXfrm::UpdateSa(sa);
    if (s.ok() && !order_.count(sa.id())) order_[sa.id()] = ++seq_;
    return s;
  }
  absl::Status DeleteSa(const kernel::SaId& id) override {
    order_.erase(id);
    return FakeXfrm::DeleteSa(id);
  }
  // The SA the kernel would send on from `src` to `dst` with `reqid`: the newest complete one.
  std::optional<kernel::SaState> CurrentOutbound(const kernel::IpAddress& src, const kernel::IpAddress& dst,
                                                 uint32_t reqid) {
    std::optional<kernel::SaState> best;
    uint64_t best_seq = 0;
    auto all = DumpSas();
    if (!all.ok()) return best;
    std::vector<kernel::SaState> sas = std::move(*all);
    for (auto& st : sas) {
      const auto& p = st.params;
      if (p.src != src || p.dst != dst || p.reqid != reqid || (!p.aead && !p.crypt)) continue;
      uint64_t seq = order_.count(p.id()) ? order_[p.id()] : 0;
      if (!best || seq > best_seq) best = st, best_seq = seq;
    }
    return best;
  }
  // The complete inbound SA with this SPI, if installed.
  std::optional<kernel::SaState> Inbound(const kernel::IpAddress& local, uint32_t spi) {
    auto q = QuerySa(kernel::SaId{local, spi, kernel::IpsecProto::kEsp, {}});
    if (!q.ok() || (!q->params.aead && !q->params.crypt)) return std::nullopt;
    return *q;
  }

 private:
  std::map<kernel::SaId, uint64_t> order_;
  uint64_t seq_ = 0;
};

inline kernel::IpAddress HostAddr(int i) {
  return kernel::IpAddress::MustParse("192.0.2." + std::to_string(i + 1));
}
inline std::string InnerAddr(int i) { return "198.51.100." + std::to_string(i + 1) + "/32"; }

// A PSK tunnel from host i to host j (names are symmetric so both ends call it the same).
inline PeerConfig PskTunnel(int i, int j, const std::string& psk = "ipfleet test psk") {
  PeerConfig p;
  p.name = "t" + std::to_string(std::min(i, j)) + "-" + std::to_string(std::max(i, j));
  p.local_addr = HostAddr(i);
  p.remote_addr = HostAddr(j);
  p.local_id = HostAddr(i).ToString();
  p.remote_id = HostAddr(j).ToString();
  p.auth = AuthKind::kPsk;
  p.psk = psk;
  ChildConfig c;
  c.name = "c";
  c.local_ts = {*TsConfig::Parse(InnerAddr(i))};
  c.remote_ts = {*TsConfig::Parse(InnerAddr(j))};
  p.children = {c};
  return p;
}

struct Host {
  Host(FakeClock& clock, SimNetwork& net, kernel::IpAddress a) : clock_(clock), net_(net), addr(a) { Restart(); }
  // A fresh engine (and kernel), as after a reboot: all state lost.
  void Restart() {
    if (engine) net_.Detach(addr);
    engine.reset();
    xfrm = std::make_unique<OrderedXfrm>();
    engine = Engine::Create(clock_, net_, *xfrm);
    net_.Attach(addr, engine.get());
    events.clear();
    engine->SetEventCallback([this](const Event& e) { events.push_back(e); });
  }
  int Count(EventType t) const {
    int n = 0;
    for (const auto& e : events) n += e.type == t;
    return n;
  }
  size_t Established(const std::string& tunnel = "") const {
    size_t n = 0;
    for (const auto& s : engine->ListSas()) n += s.state == IkeState::kEstablished && (tunnel.empty() || s.tunnel == tunnel);
    return n;
  }
  size_t Installed(const std::string& tunnel = "") const {
    size_t n = 0;
    for (const auto& s : engine->ListSas())
      if (tunnel.empty() || s.tunnel == tunnel)
        for (const auto& c : s.children) n += c.state == ChildState::kInstalled;
    return n;
  }
  FakeClock& clock_;
  SimNetwork& net_;
  kernel::IpAddress addr;
  std::unique_ptr<OrderedXfrm> xfrm;
  std::unique_ptr<Engine> engine;
  std::vector<Event> events;
};

}  // namespace ipfleet::ike::testing
