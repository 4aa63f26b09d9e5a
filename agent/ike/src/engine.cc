// The IKE_SA manager: routes datagrams to IKE_SAs, runs exchanges (one outstanding request per
// SA, RFC 7296 2.3 window 1), retransmits with exponential backoff, answers retransmitted
// requests from a cache, runs liveness checks and turns kernel ACQUIREs into negotiations.
#include <absl/strings/str_cat.h>
#include <absl/strings/str_join.h>

#include <functional>
#include <map>
#include <set>
#include <string_view>

#include "internal.h"
#include "natfrag.h"
#include "rekey.h"

namespace ipfleet::ike {

std::string Endpoint::ToString() const {
  return addr.is_v6() ? absl::StrCat("[", addr.ToString(), "]:", port) : absl::StrCat(addr.ToString(), ":", port);
}

const char* ToString(IkeState s) {
  switch (s) {
    case IkeState::kConnecting: return "CONNECTING";
    case IkeState::kEstablished: return "ESTABLISHED";
    case IkeState::kDeleting: return "DELETING";
  }
  return "?";
}
const char* ToString(ChildState s) {
  switch (s) {
    case ChildState::kInstalling: return "INSTALLING";
    case ChildState::kInstalled: return "INSTALLED";
    case ChildState::kDeleting: return "DELETING";
  }
  return "?";
}
const char* ToString(EventType t) {
  switch (t) {
    case EventType::kIkeEstablished: return "ike_established";
    case EventType::kIkeFailed: return "ike_failed";
    case EventType::kIkeDeleted: return "ike_deleted";
    case EventType::kChildInstalled: return "child_installed";
    case EventType::kChildFailed: return "child_failed";
    case EventType::kChildDeleted: return "child_deleted";
    case EventType::kLivenessFailed: return "liveness_failed";
    case EventType::kProposalMismatch: return "proposal_mismatch";
  }
  return "?";
}

namespace internal {
namespace {

size_t DigestOf(ByteView d) {
  return std::hash<std::string_view>{}(std::string_view(reinterpret_cast<const char*>(d.data()), d.size()));
}

// A peer's config as its runtime keeps it: the credential material is parsed once into the
// shared Credentials, so no copy of it (the private key above all) stays per tunnel.
PeerConfig WithoutCredentials(const PeerConfig& pc) {
  PeerConfig c = pc;
  c.psk.clear();
  c.cert_pem.clear();
  c.key_pem.clear();
  c.ca_pems.clear();
  c.crl_pems.clear();
  return c;
}

// Tells installed trap policies from changed ones without keeping a copy of each: a hash of
// everything a trap policy's config decides.
uint64_t PolicyDigest(const kernel::PolicyParams& p) {
  std::string text = absl::StrCat(p.id().ToString(), "|", static_cast<int>(p.action), "|", p.priority);
  for (const auto& t : p.templates)
    absl::StrAppend(&text, "|", t.src.ToString(), ">", t.dst.ToString(), "/", static_cast<int>(t.proto), "/",
                    static_cast<int>(t.mode), "/", t.reqid, "/", t.spi, "/", t.optional);
  return std::hash<std::string>{}(text);
}

bool AllReqidsExplicit(const PeerConfig& pc) {
  for (const auto& c : pc.children)
    if (c.reqid == 0) return false;  // allocated per load
  return true;
}

class EngineImpl : public Engine, public Services {
 public:
  EngineImpl(Clock& c, Network& n, kernel::Xfrm& x) : clock_(c), net_(n), xfrm_(x) {}
  ~EngineImpl() override {
    // Kernel state belongs to SAs; leave nothing behind when the engine goes away.
    for (auto& [id, sa] : sas_)
      for (auto& c : sa->children) UninstallChild(*sa, *c);
  }

  // ---- Services ----
  kernel::Xfrm& xfrm() override { return xfrm_; }
  TimePoint now() const override { return clock_.Now(); }
  uint64_t NextId() override { return next_id_++; }
  void Emit(const Event& e) override {
    if (cb_) cb_(e);
  }
  std::vector<std::shared_ptr<const PeerRuntime>> PeersFor(const Endpoint& local, const Endpoint& remote) override {
    std::vector<std::shared_ptr<const PeerRuntime>> out;
    for (const auto& p : peers_) {
      const auto& c = p->cfg;
      bool local_ok = c.local_addr.family == kernel::IpAddress::Family::kUnspec || c.local_addr == local.addr;
      bool remote_ok = c.remote_addr.family == kernel::IpAddress::Family::kUnspec || c.remote_addr == remote.addr;
      if (local_ok && remote_ok) out.push_back(p);
    }
    return out;
  }
  bool HasOtherSa(const IkeSa& sa) override {
    for (const auto& [id, o] : sas_) {
      if (id == sa.id) continue;
      if (o->peer->cfg.name == sa.peer->cfg.name || o->remote.addr == sa.remote.addr) return true;
      if (sa.peer->remote_id && !o->peer_id.empty() && o->peer_id == *sa.peer->remote_id) return true;
    }
    return false;
  }
  void InitialContact(IkeSa& sa) override {
    // Only SAs created before this one (ids grow monotonically) whose authentication completed
    // with the same identities on both ends: a peer that restarted lost exactly those. SAs still
    // connecting, or younger than this one, were started after the peer's reboot and stay.
    std::vector<uint64_t> stale;
    for (const auto& [id, o] : sas_)
      if (id < sa.id && o->state != IkeState::kConnecting && !o->peer_id.empty() && o->peer_id == sa.peer_id &&
          o->my_id == sa.my_id)
        stale.push_back(id);
    for (uint64_t id : stale) {
      spdlog::info("initial_contact {} dropping_ike={}", sa.log_prefix(), id);
      Destroy(id, "initial_contact");
    }
  }

  IkeSa* FindIke(uint64_t id) override { return Find(id); }
  uint64_t NewIkeSpi() override { return NewSpi(); }
  IkeSa& AdoptIkeSa(std::unique_ptr<IkeSa> sa) override {
    IkeSa& ref = *sa;
    by_spi_[sa->my_spi()] = sa->id;
    sas_[sa->id] = std::move(sa);
    return ref;
  }
  const IkeConfig& config() const override { return config_; }
  bool PoliciesInUse(const ChildSa& except) override {
    for (const auto& [id, o] : sas_)
      for (const auto& c : o->children)
        if (c.get() != &except && c->cfg->reqid == except.cfg->reqid && c->sas_installed) return true;
    return false;
  }
  bool Trapped(const kernel::PolicyId& id) const override { return traps_.count(id) > 0; }
  std::vector<IkeSa*> AllIke() override {
    std::vector<IkeSa*> out;
    for (auto& [id, o] : sas_) out.push_back(o.get());
    return out;
  }

  // ---- Engine ----
  absl::Status Load(const IkeConfig& config) override {
    std::vector<std::shared_ptr<const PeerRuntime>> peers;
    uint32_t next_reqid = kernel::kOwnedReqidFirst + 1;
    // A tunnel whose config did not change keeps its parsed runtime, which its IKE_SAs already
    // share: no re-parsing, and one runtime per tunnel however often the config is reloaded (the
    // agent reloads for every tunnel it adds). Not with an allocated reqid, which is per load.
    std::map<std::string, std::shared_ptr<const PeerRuntime>> unchanged;
    for (const auto& p : peers_) unchanged.emplace(p->cfg.name, p);
    for (const auto& pc : config.peers) {
      auto fail = [&](const absl::Status& s) {
        return absl::Status(s.code(), absl::StrCat("tunnel ", pc.name, ": ", s.message()));
      };
      auto creds = creds_cache_.Get(pc);  // same certificate, key, CA and CRL: one shared copy
      if (!creds.ok()) return fail(creds.status());
      PeerConfig cfg = WithoutCredentials(pc);
      if (auto it = unchanged.find(pc.name); it != unchanged.end() && it->second->creds == *creds &&
                                             it->second->cfg == cfg && AllReqidsExplicit(pc)) {
        peers.push_back(it->second);
        continue;
      }
      auto rt = std::make_shared<PeerRuntime>();
      rt->cfg = std::move(cfg);
      rt->creds = *creds;
      if (pc.ike_proposals.empty()) return fail(absl::InvalidArgumentError("no IKE proposals"));
      for (const auto& s : pc.ike_proposals) {
        auto p = ParseProposal(s, ProtocolId::kIke);
        if (!p.ok()) return fail(p.status());
        rt->ike_proposals.push_back(*p);
      }
      if (!pc.local_id.empty()) {
        auto id = Identity::Parse(pc.local_id);
        if (!id.ok()) return fail(id.status());
        rt->local_id = *id;
      }
      if (!pc.remote_id.empty()) {
        auto id = Identity::Parse(pc.remote_id);
        if (!id.ok()) return fail(id.status());
        rt->remote_id = *id;
      }
      for (const auto& cc : pc.children) {
        PeerRuntime::Child ch;
        ch.cfg = cc;
        for (const auto& s : cc.esp_proposals) {
          auto p = ParseProposal(s, ProtocolId::kEsp);
          if (!p.ok()) return fail(p.status());
          std::erase_if(p->transforms, [](const Transform& t) { return t.type == TransformType::kDh; });
          ch.esp_proposals.push_back(*p);
        }
        if (ch.esp_proposals.empty()) return fail(absl::InvalidArgumentError(absl::StrCat("child ", cc.name, ": no ESP proposals")));
        ch.reqid = cc.reqid ? cc.reqid : next_reqid++;
        if (!kernel::IsOwnedReqid(ch.reqid))
          return fail(absl::InvalidArgumentError(absl::StrCat("child ", cc.name, ": reqid ", ch.reqid, " outside the owned range")));
        rt->children.push_back(std::move(ch));
      }
      peers.push_back(std::move(rt));
    }
    peers_ = std::move(peers);
    creds_cache_.Prune();
    config_ = config;
    config_.peers = {};  // the settings only: the peers live in peers_
    if (absl::Status s = RefreshTraps(); !s.ok()) return s;
    for (const auto& p : peers_) {
      bool start = false;
      for (const auto& ch : p->children)
        if (ch.cfg.start_action == StartAction::kStart) start = true;
      // Only what is missing: the peer may have brought the tunnel up already (we were its
      // responder), and a reload must not start a second IKE_SA beside a working one.
      if (start)
        if (absl::Status s = InitiateChildren(p->cfg.name); !s.ok()) return s;
    }
    spdlog::info("ike_config_loaded tunnels={}", peers_.size());
    return absl::OkStatus();
  }

  void OnDatagram(const Endpoint& local, const Endpoint& remote, ByteView data) override {
    ++stats_.datagrams_in;
    if (IsNatKeepalive(data)) return;  // RFC 3948 2.3: only keeps the peer's NAT mapping open
    auto msg = DecodeMessage(data);
    if (!msg.ok()) {
      ++stats_.dropped;
      spdlog::debug("ike_drop from={} reason=\"{}\"", remote.ToString(), Msg(msg.status()));
      MaybeAnswerUndecodable(local, remote, data, msg.status());
      return;
    }
    const Header& h = msg->header;
    if (h.exchange == ExchangeType::kIkeSaInit && !h.is_response()) {
      if (!h.is_initiator() || h.spi_r != 0 || h.message_id != 0) return Drop(remote, "malformed IKE_SA_INIT request header");
      auto key = std::make_pair(h.spi_i, remote);
      if (auto it = half_open_.find(key); it != half_open_.end()) {
        if (IkeSa* sa = Find(it->second)) return HandleRequest(*sa, *msg, data, local, remote);
      }
      // RFC 7296 2.6: half-open limits and, above a threshold, a stateless COOKIE round trip.
      size_t from_peer = 0;
      for (const auto& [k, v] : half_open_) from_peer += k.second.addr == remote.addr;
      if (auto v = admission_.Check(config_, *msg, remote, half_open_.size(), from_peer, now()); !v.accept) {
        if (!v.reply.empty()) {
          ++stats_.datagrams_out;
          net_.Send(local, remote, std::move(v.reply));
        }
        return Drop(remote, v.why);
      }
      auto peers = PeersFor(local, remote);
      if (peers.empty()) return Drop(remote, "no tunnel configured for this peer");
      auto sa = std::make_unique<IkeSa>(*this, NextId(), peers.front(), false, local, remote);
      sa->spi_i = h.spi_i;
      sa->spi_r = NewSpi();
      IkeSa& ref = *sa;
      by_spi_[sa->spi_r] = sa->id;
      half_open_[key] = sa->id;
      sas_[sa->id] = std::move(sa);
      return HandleRequest(ref, *msg, data, local, remote);
    }
    uint64_t our_spi = h.is_initiator() ? h.spi_r : h.spi_i;
    auto it = by_spi_.find(our_spi);
    IkeSa* sa = it == by_spi_.end() ? nullptr : Find(it->second);
    if (!sa || h.is_initiator() == sa->initiator || (sa->spi_r && h.spi_r && h.spi_r != sa->spi_r) ||
        (h.is_initiator() && h.spi_i != sa->spi_i)) {
      if (!h.is_response()) SendInvalidIkeSpi(local, remote, h);
      return Drop(remote, "unknown IKE SPI");
    }
    if (IsFragmentMessage(*msg)) return OnFragment(*sa, *msg, data, local, remote);
    if (h.is_response()) HandleResponse(*sa, *msg, data, local, remote);
    else HandleRequest(*sa, *msg, data, local, remote);
  }

  void OnKernelEvent(const kernel::XfrmEvent& event) override {
    if (auto* a = std::get_if<kernel::AcquireEvent>(&event)) {
      for (const auto& p : peers_)
        if (const auto* ch = p->FindChildByReqid(a->templ.reqid)) {
          spdlog::info("acquire tunnel={} child={} reqid={} flow={}", p->cfg.name, ch->cfg.name, ch->reqid, a->selector.ToString());
          InitiateChild(p, ch);
          return;
        }
      spdlog::debug("acquire_ignored reqid={} (not ours)", a->templ.reqid);
    } else if (auto* e = std::get_if<kernel::ExpireEvent>(&event)) {
      if (!e->hard) {  // soft limit reached: rekey now (rekey.h)
        for (auto& [id, sa] : sas_)
          for (auto& c : sa->children)
            if (c->spi_in == e->id.spi || c->spi_out == e->id.spi) {
              spdlog::info("child_soft_expired {} child={} spi={:08x}", sa->log_prefix(), c->id, e->id.spi);
              if (RequestChildRekey(*sa, *c)) Kick(*sa);
              return;
            }
        return;
      }
      for (auto& [id, sa] : sas_)
        for (auto& c : sa->children)
          if (c->spi_in == e->id.spi || c->spi_out == e->id.spi) {
            spdlog::info("child_hard_expired {} child={}", sa->log_prefix(), c->id);
            (void)DeleteChild(c->id);
            return;
          }
    }
  }

  void Tick() override {
    TimePoint t = now();
    std::vector<uint64_t> ids;
    for (const auto& [id, _] : sas_) ids.push_back(id);
    for (uint64_t id : ids) {
      IkeSa* sa = Find(id);
      if (!sa) continue;
      NatFragTick(*sa, t);
      RekeyTick(*sa, t);
      if (!sa->outstanding && !sa->queue.empty()) Kick(*sa);
      if (!Find(id)) continue;
      if (sa->outstanding && t >= sa->outstanding->next) {
        if (sa->outstanding->tries >= config_.retransmit_tries) {
          Timeout(*sa);
          continue;
        }
        ++sa->outstanding->tries;
        sa->outstanding->next = t + config_.retransmit_timeout * (1 << sa->outstanding->tries);
        ++stats_.retransmits;
        spdlog::debug("retransmit {} mid={} try={}", sa->log_prefix(), sa->outstanding->mid, sa->outstanding->tries);
        Send(*sa, sa->outstanding->packet);
      }
      if (sa->state == IkeState::kEstablished && sa->peer->cfg.dpd_interval.count() > 0 && !sa->outstanding &&
          sa->queue.empty() && t - sa->last_heard >= sa->peer->cfg.dpd_interval) {
        auto ex = NewExchange(ExchangeType::kInformational);
        ex->tasks.push_back(NewInfoNotify(true));
        sa->queue.push_back(std::move(ex));
        spdlog::debug("liveness_check {}", sa->log_prefix());
        Kick(*sa);
      }
      if (sa->state == IkeState::kConnecting && !sa->initiator && t - sa->created >= config_.half_open_timeout) {
        spdlog::info("half_open_expired {}", sa->log_prefix());
        Destroy(id, "half_open_timeout");
      }
    }
  }

  std::optional<TimePoint> NextDeadline() const override {
    std::optional<TimePoint> best;
    auto consider = [&](TimePoint t) {
      if (!best || t < *best) best = t;
    };
    for (const auto& [id, sa] : sas_) {
      if (sa->outstanding) consider(sa->outstanding->next);
      if (auto d = NextKeepalive(*sa, config_.nat_keepalive)) consider(*d);
      if (auto d = ReassemblyDeadline(*sa, config_.reassembly_timeout)) consider(*d);
      if (auto d = RekeyDeadline(*sa)) consider(*d);
      if (sa->state == IkeState::kEstablished && sa->peer->cfg.dpd_interval.count() > 0 && !sa->outstanding)
        consider(sa->last_heard + sa->peer->cfg.dpd_interval);
      if (sa->state == IkeState::kConnecting && !sa->initiator) consider(sa->created + config_.half_open_timeout);
    }
    return best;
  }

  absl::StatusOr<uint64_t> Initiate(const std::string& tunnel) override {
    auto peer = FindPeer(tunnel);
    if (!peer) return absl::NotFoundError(absl::StrCat("no tunnel named '", tunnel, "'"));
    std::vector<const PeerRuntime::Child*> children;
    for (const auto& c : peer->children) children.push_back(&c);
    return StartIke(peer, children);
  }

  absl::Status InitiateChildren(const std::string& tunnel) override {
    auto peer = FindPeer(tunnel);
    if (!peer) return absl::NotFoundError(absl::StrCat("no tunnel named '", tunnel, "'"));
    for (auto& [id, sa] : sas_) {
      if (sa->peer->cfg.name != tunnel || sa->state == IkeState::kDeleting) continue;
      // Children of an IKE_SA still connecting follow its IKE_AUTH; an established one gets a
      // CREATE_CHILD_SA per child config of its own (the config it was authenticated with).
      if (sa->state == IkeState::kEstablished)
        for (const auto& ch : sa->peer->children) QueueChildIfMissing(*sa, &ch);
      return absl::OkStatus();
    }
    return Initiate(tunnel).status();
  }

  absl::Status DeleteIke(uint64_t ike_id) override {
    IkeSa* sa = Find(ike_id);
    if (!sa) return absl::NotFoundError(absl::StrCat("no IKE_SA ", ike_id));
    if (sa->state == IkeState::kDeleting) return absl::OkStatus();
    if (sa->state == IkeState::kConnecting) {
      Destroy(ike_id, "deleted_while_connecting");
      return absl::OkStatus();
    }
    sa->state = IkeState::kDeleting;
    sa->queue.clear();
    auto ex = NewExchange(ExchangeType::kInformational);
    ex->tasks.push_back(NewIkeDelete(true));
    sa->queue.push_back(std::move(ex));
    Kick(*sa);
    return absl::OkStatus();
  }

  absl::Status DeleteChild(uint64_t child_id) override {
    for (auto& [id, sa] : sas_)
      if (ChildSa* c = sa->FindChild(child_id)) {
        if (c->state != ChildState::kInstalled) return absl::FailedPreconditionError("CHILD_SA not installed");
        // Deleting from now on, though the exchange may wait in the queue: a renegotiation queued
        // right after must not take this child for a live one.
        c->state = ChildState::kDeleting;
        auto ex = NewExchange(ExchangeType::kInformational);
        ex->tasks.push_back(NewChildDelete(true, child_id));
        sa->queue.push_back(std::move(ex));
        Kick(*sa);
        return absl::OkStatus();
      }
    return absl::NotFoundError(absl::StrCat("no CHILD_SA ", child_id));
  }

  absl::Status RekeyChild(uint64_t child_id) override {
    for (auto& [id, sa] : sas_)
      if (ChildSa* c = sa->FindChild(child_id)) {
        if (!RequestChildRekey(*sa, *c)) return absl::FailedPreconditionError("CHILD_SA not installed or already rekeying");
        Kick(*sa);
        return absl::OkStatus();
      }
    return absl::NotFoundError(absl::StrCat("no CHILD_SA ", child_id));
  }

  absl::Status RekeyIke(uint64_t ike_id) override {
    IkeSa* sa = Find(ike_id);
    if (!sa) return absl::NotFoundError(absl::StrCat("no IKE_SA ", ike_id));
    if (!RequestIkeRekey(*sa)) return absl::FailedPreconditionError("IKE_SA not established or already rekeying");
    Kick(*sa);
    return absl::OkStatus();
  }

  absl::StatusOr<size_t> Flush(const std::string& tunnel) override {
    std::vector<uint64_t> ids;
    for (const auto& [id, sa] : sas_)
      if (tunnel.empty() || sa->peer->cfg.name == tunnel) ids.push_back(id);
    for (uint64_t id : ids) IPFLEET_RETURN_IF_ERROR(DeleteIke(id));
    return ids.size();
  }

  std::vector<IkeSaInfo> ListSas() const override { return ListSas(std::string()); }

  // Empty `tunnel`: every tunnel's. Filtering first: the agent queries each tunnel every tick.
  std::vector<IkeSaInfo> ListSas(const std::string& tunnel) const override {
    std::vector<IkeSaInfo> out;
    TimePoint t = now();
    for (const auto& [id, sa] : sas_) {
      if (!tunnel.empty() && sa->peer->cfg.name != tunnel) continue;
      IkeSaInfo i;
      i.id = id;
      i.tunnel = sa->peer->cfg.name;
      i.state = sa->state;
      i.initiator = sa->initiator;
      i.spi_i = sa->spi_i;
      i.spi_r = sa->spi_r;
      i.local = sa->local;
      i.remote = sa->remote;
      i.local_id = sa->my_id.empty() ? "" : sa->my_id.ToString();
      i.remote_id = sa->peer_id.empty() ? "" : sa->peer_id.ToString();
      i.suite = sa->suite();
      i.age = std::chrono::duration_cast<std::chrono::seconds>(t - sa->created);
      i.last_heard = std::chrono::duration_cast<std::chrono::seconds>(t - sa->last_heard);
      for (const auto& c : sa->children) {
        ChildSaInfo ci;
        ci.id = c->id;
        ci.name = c->cfg->cfg.name;
        // Replaced by our own rekey (or the loser of a collision): its DELETE may still wait in
        // the queue, but it no longer carries our traffic.
        ci.state = c->state == ChildState::kInstalled && (c->replaced_by || c->redundant) ? ChildState::kDeleting : c->state;
        ci.spi_in = c->spi_in;
        ci.spi_out = c->spi_out;
        ci.reqid = c->cfg->reqid;
        ci.mode = c->mode;
        for (const auto& ts : c->ts_local) ci.local_ts.push_back(TsToString(ts));
        for (const auto& ts : c->ts_remote) ci.remote_ts.push_back(TsToString(ts));
        ci.suite = c->proposal.transforms.empty() ? "" : ProposalSuiteName(c->proposal);
        ci.age = std::chrono::duration_cast<std::chrono::seconds>(t - c->created);
        i.children.push_back(std::move(ci));
      }
      out.push_back(std::move(i));
    }
    return out;
  }

  EngineStats stats() const override { return stats_; }
  void SetEventCallback(std::function<void(const Event&)> cb) override { cb_ = std::move(cb); }

 private:
  IkeSa* Find(uint64_t id) {
    auto it = sas_.find(id);
    return it == sas_.end() ? nullptr : it->second.get();
  }
  std::shared_ptr<const PeerRuntime> FindPeer(const std::string& name) const {
    for (const auto& p : peers_)
      if (p->cfg.name == name) return p;
    return nullptr;
  }
  uint64_t NewSpi() {
    for (;;) {
      Bytes b = RandomBytes(8);
      uint64_t v = 0;
      for (uint8_t x : b) v = v << 8 | x;
      if (v && !by_spi_.count(v)) return v;
    }
  }
  void Drop(const Endpoint& remote, const char* why) {
    ++stats_.dropped;
    spdlog::debug("ike_drop from={} reason=\"{}\"", remote.ToString(), why);
  }
  std::unique_ptr<Exchange> NewExchange(ExchangeType t, bool initiator = true) {
    auto ex = std::make_unique<Exchange>();
    ex->type = t;
    ex->initiator = initiator;
    return ex;
  }
  void Send(IkeSa& sa, const Bytes& packet) {
    sa.last_sent = now();
    for (Bytes& d : FragmentForSend(sa, packet, config_.fragment_size)) {  // RFC 7383 when negotiated
      ++stats_.datagrams_out;
      net_.Send(sa.local, sa.remote, std::move(d));
    }
  }

  absl::StatusOr<uint64_t> StartIke(std::shared_ptr<const PeerRuntime> peer, const std::vector<const PeerRuntime::Child*>& children) {
    if (peer->cfg.remote_addr.family == kernel::IpAddress::Family::kUnspec)
      return absl::FailedPreconditionError(absl::StrCat("tunnel ", peer->cfg.name, " has no remote address to initiate to"));
    Endpoint local{peer->cfg.local_addr, peer->cfg.local_port}, remote{peer->cfg.remote_addr, peer->cfg.remote_port};
    auto sa = std::make_unique<IkeSa>(*this, NextId(), peer, true, local, remote);
    sa->spi_i = NewSpi();
    auto init = NewExchange(ExchangeType::kIkeSaInit);
    init->tasks.push_back(NewIkeInit(true));
    init->tasks.push_back(NewIkeNatd(true));
    init->tasks.push_back(NewIkeSigHash(true));
    init->tasks.push_back(NewIkeFrag(true, config_.fragmentation));
    init->tasks.push_back(NewIkeCookie(true));
    sa->queue.push_back(std::move(init));
    auto auth = NewExchange(ExchangeType::kIkeAuth);
    auth->tasks.push_back(NewIkeAuth(true));
    if (!children.empty()) auth->tasks.push_back(NewChildCreate(true, children.front(), true));
    sa->queue.push_back(std::move(auth));
    for (size_t i = 1; i < children.size(); ++i) {
      auto cc = NewExchange(ExchangeType::kCreateChildSa);
      cc->tasks.push_back(NewChildCreate(true, children[i], false));
      sa->queue.push_back(std::move(cc));
    }
    uint64_t id = sa->id;
    by_spi_[sa->spi_i] = id;
    IkeSa& ref = *sa;
    sas_[id] = std::move(sa);
    spdlog::info("ike_initiate {} children={}", ref.log_prefix(), children.size());
    Kick(ref);
    return id;
  }

  // Installs the trap policies of the current config, then removes those of the previous one that
  // it no longer has (a removed tunnel must not keep dropping its traffic), unless a CHILD_SA
  // still uses them (its removal deletes them).
  // Policies already installed with the same parameters are not sent again: every reload (each
  // bundle, each trust change) carries the whole config.
  absl::Status RefreshTraps() {
    std::map<kernel::PolicyId, uint64_t> wanted;
    for (const auto& p : peers_)
      for (const auto& ch : p->children) {
        if (ch.cfg.start_action != StartAction::kTrap) continue;
        size_t sent = 0;
        for (auto& pol : TrapPolicies(*p, ch)) {
          const kernel::PolicyId id = pol.id();
          const uint64_t digest = PolicyDigest(pol);
          if (auto it = traps_.find(id); it == traps_.end() || it->second != digest) {
            if (absl::Status s = xfrm_.UpdatePolicy(pol); !s.ok())
              return absl::Status(s.code(), absl::StrCat("tunnel ", p->cfg.name, ": trap policy ", id.ToString(), ": ", s.message()));
            ++sent;
          }
          wanted.emplace(id, digest);
        }
        if (sent) spdlog::info("trap_installed tunnel={} child={} reqid={}", p->cfg.name, ch.cfg.name, ch.reqid);
      }
    std::set<kernel::PolicyId> in_use;
    for (const auto& [id, sa] : sas_)
      for (const auto& c : sa->children)
        if (c->sas_installed) in_use.insert(c->policies.begin(), c->policies.end());
    for (const auto& [id, digest] : traps_)
      if (!wanted.count(id) && !in_use.count(id)) (void)xfrm_.DeletePolicy(id);
    traps_ = std::move(wanted);
    return absl::OkStatus();
  }

  void InitiateChild(std::shared_ptr<const PeerRuntime> peer, const PeerRuntime::Child* ch) {
    for (auto& [id, sa] : sas_) {
      if (sa->peer->cfg.name != peer->cfg.name || sa->state == IkeState::kDeleting) continue;
      if (sa->state == IkeState::kConnecting) return;  // children follow once established
      // The SA's own copy of the child config: it may predate a reload, and a child's config
      // must be owned by its IKE_SA's peer.
      if (const auto* own = sa->peer->FindChild(ch->cfg.name)) QueueChildIfMissing(*sa, own);
      return;
    }
    (void)StartIke(peer, {ch});
  }

  // Queues a CREATE_CHILD_SA for `ch` on `sa` unless a child of that config is installed or
  // being negotiated there (one being deleted does not count).
  void QueueChildIfMissing(IkeSa& sa, const PeerRuntime::Child* ch) {
    for (const auto& c : sa.children)
      if (c->cfg->cfg.name == ch->cfg.name && c->state != ChildState::kDeleting) return;
    for (const auto& ex : sa.queue)
      for (const auto& t : ex->tasks)
        if (t->CreatesChild(ch->cfg.name)) return;
    auto cc = NewExchange(ExchangeType::kCreateChildSa);
    cc->tasks.push_back(NewChildCreate(true, ch, false));
    sa.queue.push_back(std::move(cc));
    spdlog::info("child_initiate {} child={}", sa.log_prefix(), ch->cfg.name);
    Kick(sa);
  }

  // Sends the next queued request when the window is free.
  void Kick(IkeSa& sa) {
    while (!sa.outstanding && !sa.queue.empty()) {
      std::unique_ptr<Exchange> ex = std::move(sa.queue.front());
      sa.queue.pop_front();
      std::vector<Payload> payloads;
      absl::Status st;
      for (auto& t : ex->tasks) {
        st = t->Build(sa, *ex, payloads);
        if (!st.ok()) break;
      }
      if (!st.ok()) {
        spdlog::warn("exchange_build_failed {} exchange={} reason=\"{}\"", sa.log_prefix(), ExchangeName(ex->type), Msg(st));
        if (ex->type == ExchangeType::kIkeSaInit || ex->type == ExchangeType::kIkeAuth) return Fail(sa, Msg(st));
        continue;
      }
      uint32_t mid = sa.my_next_mid;
      auto packet = sa.Seal(ex->type, mid, false, payloads);
      if (!packet.ok()) {
        spdlog::warn("exchange_seal_failed {} reason=\"{}\"", sa.log_prefix(), Msg(packet.status()));
        return Fail(sa, Msg(packet.status()));
      }
      if (ex->type == ExchangeType::kIkeSaInit) sa.init_request = *packet;
      sa.outstanding = IkeSa::Outstanding{std::move(ex), mid, std::move(*packet), 0, now() + config_.retransmit_timeout};
      Send(sa, sa.outstanding->packet);
    }
  }

  std::unique_ptr<Exchange> ResponderExchange(IkeSa& sa, ExchangeType type, const std::vector<Payload>& in) {
    auto ex = NewExchange(type, false);
    switch (type) {
      case ExchangeType::kIkeSaInit:
        ex->tasks.push_back(NewIkeInit(false));
        ex->tasks.push_back(NewIkeNatd(false));
        ex->tasks.push_back(NewIkeSigHash(false));
        ex->tasks.push_back(NewIkeFrag(false, config_.fragmentation));
        break;
      case ExchangeType::kIkeAuth:
        ex->tasks.push_back(NewIkeAuth(false));
        ex->tasks.push_back(NewChildCreate(false, nullptr, true));
        break;
      case ExchangeType::kCreateChildSa:  // new CHILD_SA, CHILD_SA rekey or IKE_SA rekey
        ex->tasks.push_back(NewCreateChildResponder(in));
        break;
      case ExchangeType::kInformational: {
        bool ike_del = false, child_del = false;
        for (const auto& p : in)
          if (auto* d = std::get_if<DeletePayload>(&p.body)) (d->protocol == ProtocolId::kIke ? ike_del : child_del) = true;
        if (ike_del) ex->tasks.push_back(NewIkeDelete(false));
        else if (child_del) ex->tasks.push_back(NewChildDelete(false, 0));
        ex->tasks.push_back(NewInfoNotify(false));
        break;
      }
    }
    (void)sa;
    return ex;
  }

  // `opened`: the inner payloads when the request was reassembled from fragments (already verified).
  void HandleRequest(IkeSa& sa, const Message& msg, ByteView data, const Endpoint& local, const Endpoint& remote,
                     const std::vector<Payload>* opened = nullptr) {
    const Header& h = msg.header;
    if (sa.cached_mid && h.message_id == *sa.cached_mid) {
      // A retransmitted request: answer with the cached response, never process twice.
      if (DigestOf(data) == sa.cached_digest) {
        ++stats_.retransmits_answered;
        spdlog::debug("retransmitted_request {} mid={}", sa.log_prefix(), h.message_id);
        Send(sa, sa.cached_response);
        return;
      }
      return Drop(sa.remote, "request reuses the last message ID with different content");
    }
    if (h.message_id != sa.peer_next_mid) return Drop(sa.remote, "request message ID outside the window");
    bool allowed = (h.exchange == ExchangeType::kIkeSaInit && !sa.keys) ||
                   (h.exchange == ExchangeType::kIkeAuth && sa.keys && sa.state == IkeState::kConnecting) ||
                   (h.exchange == ExchangeType::kCreateChildSa && sa.state == IkeState::kEstablished) ||
                   (h.exchange == ExchangeType::kInformational && sa.keys);
    if (!allowed) return Drop(sa.remote, "exchange not allowed in this state");
    auto in = opened ? absl::StatusOr<std::vector<Payload>>(*opened) : sa.Open(msg, data);
    if (!in.ok()) {
      spdlog::debug("request_rejected {} reason=\"{}\"", sa.log_prefix(), Msg(in.status()));
      if (h.exchange == ExchangeType::kIkeSaInit) Destroy(sa.id, "");
      return Drop(sa.remote, "request failed verification");
    }
    sa.last_heard = now();
    // RFC 7296 2.11: answer where the (authenticated) request came from; a NAT-T peer moves to 4500.
    FollowPeer(sa, local, remote, true);
    if (h.exchange == ExchangeType::kIkeSaInit) sa.init_request.assign(data.begin(), data.end());
    auto ex = ResponderExchange(sa, h.exchange, *in);
    for (auto& t : ex->tasks) {
      absl::Status st = t->Process(sa, *ex, *in);
      if (!st.ok()) {
        if (!ex->fatal_notify) ex->fatal_notify = MakeNotify(NotifyType::kInvalidSyntax);
        ex->failure = Msg(st);
        break;
      }
    }
    std::vector<Payload> out;
    if (!ex->fatal_notify) {
      for (auto& t : ex->tasks) {
        absl::Status st = t->Build(sa, *ex, out);
        if (!st.ok()) {
          spdlog::warn("response_build_failed {} exchange={} task={} reason=\"{}\"", sa.log_prefix(), ExchangeName(h.exchange), t->name(), Msg(st));
          ex->failure = Msg(st);
          ex->fatal_notify = MakeNotify(h.exchange == ExchangeType::kIkeAuth ? NotifyType::kAuthenticationFailed : NotifyType::kTemporaryFailure);
          break;
        }
      }
    }
    if (ex->fatal_notify) out = {*ex->fatal_notify};
    uint64_t spi_r = sa.spi_r;
    bool refused_init = h.exchange == ExchangeType::kIkeSaInit && ex->fatal_notify;
    if (refused_init) sa.spi_r = 0;  // RFC 7296 2.6: no IKE_SA was created
    auto packet = sa.Seal(h.exchange, h.message_id, true, out);
    sa.spi_r = spi_r;
    if (!packet.ok()) {
      spdlog::warn("response_seal_failed {} reason=\"{}\"", sa.log_prefix(), Msg(packet.status()));
      return Destroy(sa.id, "");
    }
    if (h.exchange == ExchangeType::kIkeSaInit && !refused_init) sa.init_response = *packet;
    sa.cached_mid = h.message_id;
    sa.cached_digest = DigestOf(data);
    sa.cached_response = *packet;
    ++sa.peer_next_mid;
    Send(sa, *packet);

    if (refused_init) {
      spdlog::info("ike_sa_init_refused {} notify={} reason=\"{}\"", sa.log_prefix(),
                   NotifyName(std::get<NotifyPayload>(ex->fatal_notify->body).type), ex->failure);
      return Destroy(sa.id, "");
    }
    if (h.exchange == ExchangeType::kIkeAuth) {
      if (ex->fatal_notify) {
        Emit(Event{EventType::kIkeFailed, sa.peer->cfg.name, sa.id, 0, ex->failure});
        return Destroy(sa.id, "");
      }
      Established(sa);
    }
    if (ex->delete_ike) {
      spdlog::info("ike_sa_deleted {} by=peer", sa.log_prefix());
      Emit(Event{EventType::kIkeDeleted, sa.peer->cfg.name, sa.id, 0, "deleted_by_peer"});
      return Destroy(sa.id, "deleted_by_peer");
    }
  }

  void HandleResponse(IkeSa& sa, const Message& msg, ByteView data, const Endpoint& local, const Endpoint& remote,
                      const std::vector<Payload>* opened = nullptr) {
    const Header& h = msg.header;
    if (!sa.outstanding || h.message_id != sa.outstanding->mid || h.exchange != sa.outstanding->ex->type)
      return Drop(sa.remote, "response to no outstanding request");
    if (h.exchange == ExchangeType::kIkeSaInit && h.spi_r) sa.spi_r = h.spi_r;
    auto in = opened ? absl::StatusOr<std::vector<Payload>>(*opened) : sa.Open(msg, data);
    if (!in.ok()) {
      spdlog::debug("response_rejected {} reason=\"{}\"", sa.log_prefix(), Msg(in.status()));
      return Drop(sa.remote, "response failed verification");
    }
    sa.last_heard = now();
    if (h.exchange == ExchangeType::kIkeSaInit) sa.init_response.assign(data.begin(), data.end());
    if (h.exchange == ExchangeType::kIkeSaInit && FindNotify(*in, NotifyType::kCookie)) return RetryWithCookie(sa, *in);
    if (h.exchange != ExchangeType::kIkeSaInit) FollowPeer(sa, local, remote, false);
    std::unique_ptr<Exchange> ex = std::move(sa.outstanding->ex);
    sa.outstanding.reset();
    ++sa.my_next_mid;
    absl::Status st;
    for (auto& t : ex->tasks) {
      st = t->Process(sa, *ex, *in);
      if (!st.ok()) break;
    }
    if (h.exchange == ExchangeType::kIkeSaInit) {
      if (!st.ok() && ex->retry_group) {
        spdlog::info("ike_sa_init_retry {} group={}", sa.log_prefix(), ex->retry_group);
        sa.spi_r = 0;
        sa.my_next_mid = 0;
        auto again = NewExchange(ExchangeType::kIkeSaInit);
        again->retry_group = ex->retry_group;
        again->tasks.push_back(NewIkeInit(true));
        again->tasks.push_back(NewIkeNatd(true));
        again->tasks.push_back(NewIkeSigHash(true));
        again->tasks.push_back(NewIkeFrag(true, config_.fragmentation));
        again->tasks.push_back(NewIkeCookie(true));
        sa.queue.push_front(std::move(again));
        return Kick(sa);
      }
      if (!st.ok()) return Fail(sa, Msg(st));
      spdlog::debug("ike_sa_init_done {} suite={}", sa.log_prefix(), sa.suite());
      if (sa.nat_detected) SwitchToNatT(sa);
    } else if (h.exchange == ExchangeType::kIkeAuth) {
      if (!st.ok()) {
        SendDeleteOnce(sa);
        return Fail(sa, Msg(st));
      }
      Established(sa);
    } else if (!st.ok()) {
      spdlog::warn("exchange_failed {} exchange={} reason=\"{}\"", sa.log_prefix(), ExchangeName(h.exchange), Msg(st));
    }
    if (ex->delete_ike) {
      spdlog::info("ike_sa_deleted {} by=us", sa.log_prefix());
      Emit(Event{EventType::kIkeDeleted, sa.peer->cfg.name, sa.id, 0, "deleted_by_us"});
      return Destroy(sa.id, "deleted_by_us");
    }
    Kick(sa);
  }

  void Established(IkeSa& sa) {
    sa.state = IkeState::kEstablished;
    sa.established_at = now();
    // The IKE_SA_INIT messages are signed in IKE_AUTH and needed for nothing after it.
    Bytes().swap(sa.init_request);
    Bytes().swap(sa.init_response);
    std::erase_if(half_open_, [&](const auto& kv) { return kv.second == sa.id; });
    spdlog::info("ike_sa_established {} role={} local_id=\"{}\" remote_id=\"{}\" suite={}", sa.log_prefix(),
                 sa.initiator ? "initiator" : "responder", sa.my_id.ToString(), sa.peer_id.ToString(), sa.suite());
    Emit(Event{EventType::kIkeEstablished, sa.peer->cfg.name, sa.id, 0, sa.suite()});
    // Both ends started this tunnel at once (mesh start): keep one IKE_SA (rekey.h).
    if (ResolveDuplicates(sa))
      for (auto& [oid, o] : sas_)
        if (o.get() != &sa && !o->outstanding && !o->queue.empty()) Kick(*o);
  }

  void Fail(IkeSa& sa, const std::string& why) {
    spdlog::warn("ike_sa_failed {} reason=\"{}\"", sa.log_prefix(), why);
    Emit(Event{EventType::kIkeFailed, sa.peer->cfg.name, sa.id, 0, why});
    Destroy(sa.id, "failed");
  }

  // ---- NAT-T keepalives, fragments, cookies (nat.cc, fragments.cc, cookies.cc) ----
  void NatFragTick(IkeSa& sa, TimePoint t) {
    ExpireReassembly(sa, t, config_.reassembly_timeout);
    if (auto due = NextKeepalive(sa, config_.nat_keepalive); due && t >= *due) {
      sa.last_sent = t;
      ++stats_.datagrams_out;
      spdlog::debug("nat_keepalive {}", sa.log_prefix());
      net_.Send(sa.local, sa.remote, NatKeepalive());
    }
  }
  void OnFragment(IkeSa& sa, const Message& msg, ByteView data, const Endpoint& local, const Endpoint& remote) {
    FragmentResult r = AcceptFragment(sa, msg, data, now());
    switch (r.kind) {
      case FragmentResult::kDropped: return Drop(remote, r.why.c_str());
      case FragmentResult::kStored: return;
      case FragmentResult::kRetransmittedRequest:
        ++stats_.retransmits_answered;
        return Send(sa, sa.cached_response);
      case FragmentResult::kComplete:
        if (msg.header.is_response()) return HandleResponse(sa, msg, data, local, remote, &r.payloads);
        return HandleRequest(sa, msg, data, local, remote, &r.payloads);
    }
  }
  void RetryWithCookie(IkeSa& sa, const std::vector<Payload>& in) {
    // RFC 7296 2.6: the same IKE_SA_INIT again (same SPIi, message ID 0), the cookie first.
    if (!TakeCookie(sa, in)) return Fail(sa, "responder's COOKIE unusable or asked for too often");
    std::unique_ptr<Exchange> ex = std::move(sa.outstanding->ex);
    sa.outstanding.reset();
    sa.spi_r = 0;
    sa.queue.push_front(std::move(ex));
    Kick(sa);
  }

  // Tells the peer we give up on an IKE_SA we could not authenticate (RFC 7296 2.21.2), without
  // waiting for an answer.
  void SendDeleteOnce(IkeSa& sa) {
    std::vector<Payload> p = {{PayloadType::kDelete, false, DeletePayload{ProtocolId::kIke, 0, {}}}};
    auto packet = sa.Seal(ExchangeType::kInformational, sa.my_next_mid, false, p);
    if (packet.ok()) Send(sa, *packet);
  }

  void Timeout(IkeSa& sa) {
    ExchangeType type = sa.outstanding->ex->type;
    sa.outstanding.reset();
    std::string tunnel = sa.peer->cfg.name;
    if (sa.state == IkeState::kEstablished) {
      spdlog::warn("liveness_failed {} exchange={} tries={}", sa.log_prefix(), ExchangeName(type), config_.retransmit_tries);
      Emit(Event{EventType::kLivenessFailed, tunnel, sa.id, 0, "peer did not answer"});
      bool restart = sa.peer->cfg.dpd_action == DpdAction::kRestart;
      Destroy(sa.id, "liveness_failed");
      if (restart) (void)Initiate(tunnel);
    } else if (sa.state == IkeState::kDeleting) {
      Emit(Event{EventType::kIkeDeleted, tunnel, sa.id, 0, "delete_unanswered"});
      Destroy(sa.id, "delete_unanswered");
    } else {
      Fail(sa, absl::StrCat(ExchangeName(type), " unanswered after ", config_.retransmit_tries, " retransmissions"));
    }
  }

  void Destroy(uint64_t id, const char* why) {
    auto it = sas_.find(id);
    if (it == sas_.end()) return;
    IkeSa& sa = *it->second;
    HandOverBeforeDestroy(sa);  // a rekeyed IKE_SA's children live on in its successor
    for (auto& c : sa.children) {
      bool was_installed = c->sas_installed;
      UninstallChild(sa, *c);
      if (was_installed) Emit(Event{EventType::kChildDeleted, sa.peer->cfg.name, sa.id, c->id, why});
    }
    sa.children.clear();
    if (auto b = by_spi_.find(sa.my_spi()); b != by_spi_.end() && b->second == id) by_spi_.erase(b);
    std::erase_if(half_open_, [&](const auto& kv) { return kv.second == id; });
    if (*why) spdlog::debug("ike_sa_destroyed {} reason={}", sa.log_prefix(), why);
    sas_.erase(it);
  }

  void SendInvalidIkeSpi(const Endpoint& local, const Endpoint& remote, const Header& req) {
    // RFC 7296 2.21.4: unprotected response, same SPIs and message ID; rate-limited so we
    // cannot be used as a reflector.
    TimePoint t = now();
    if (t - invalid_spi_window_ > std::chrono::seconds(1)) {
      invalid_spi_window_ = t;
      invalid_spi_count_ = 0;
    }
    if (++invalid_spi_count_ > 10) return;
    Message m;
    m.header = req;
    m.header.exchange = ExchangeType::kInformational;
    m.header.flags = kFlagResponse | (req.is_initiator() ? 0 : kFlagInitiator);
    m.payloads.push_back(MakeNotify(NotifyType::kInvalidIkeSpi));
    ++stats_.invalid_spi_replies;
    ++stats_.datagrams_out;
    net_.Send(local, remote, EncodeMessage(m));
  }

  void MaybeAnswerUndecodable(const Endpoint& local, const Endpoint& remote, ByteView data, const absl::Status& why) {
    // Only an IKE_SA_INIT request can be answered without keys (RFC 7296 2.5).
    auto h = DecodeHeader(data);
    if (!h.ok() || h->exchange != ExchangeType::kIkeSaInit || h->is_response() || h->spi_r != 0) return;
    auto crit = UnsupportedCriticalType(why);
    if (!crit) return;
    Message m;
    m.header = *h;
    m.header.flags = kFlagResponse;
    m.payloads.push_back(MakeNotify(NotifyType::kUnsupportedCriticalPayload, Bytes{*crit}));
    ++stats_.datagrams_out;
    net_.Send(local, remote, EncodeMessage(m));
  }

  Clock& clock_;
  Network& net_;
  kernel::Xfrm& xfrm_;
  IkeConfig config_;
  std::vector<std::shared_ptr<const PeerRuntime>> peers_;
  // Trap policies of the current config, each with a digest of what was installed (to see changes).
  std::map<kernel::PolicyId, uint64_t> traps_;
  CredentialsCache creds_cache_;
  std::map<uint64_t, std::unique_ptr<IkeSa>> sas_;
  std::map<uint64_t, uint64_t> by_spi_;  // our SPI -> IKE_SA id
  std::map<std::pair<uint64_t, Endpoint>, uint64_t> half_open_;
  std::function<void(const Event&)> cb_;
  EngineStats stats_;
  uint64_t next_id_ = 1;
  TimePoint invalid_spi_window_{};
  int invalid_spi_count_ = 0;
  Admission admission_;
};

}  // namespace
}  // namespace internal

std::unique_ptr<Engine> Engine::Create(Clock& clock, Network& network, kernel::Xfrm& xfrm) {
  return std::make_unique<internal::EngineImpl>(clock, network, xfrm);
}

}  // namespace ipfleet::ike
