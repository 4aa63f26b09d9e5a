#include "ipfleet/agent/sync/ike_adapter.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <absl/strings/str_cat.h>
#include <absl/strings/str_join.h>
#include <spdlog/spdlog.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "ipfleet/agent/sync/ike_socket.h"
#include "ipfleet/agent/sync/kernel_plan.h"
#include "ipfleet/common/openssl.h"

namespace ipfleet::agent {
namespace {

// "fqdn:host-a" / "ip:192.0.2.1" / "dn:CN=x" -> the engine's Identity::Parse syntax.
std::string EngineIdentity(const std::string& id) {
  for (const char* p : {"fqdn:", "ip:", "dn:"}) {
    if (id.rfind(p, 0) == 0) return id.substr(std::strlen(p));
  }
  return id;
}

std::string TsText(const Selector& s) {
  std::string t = s.prefix.ToString();
  if (s.protocol) {
    if (s.port_from == s.port_to) absl::StrAppend(&t, "[", s.protocol, "/", s.port_from, "]");
    else absl::StrAppend(&t, "[", s.protocol, "]");
  }
  return t;
}

sockaddr_storage ToSockaddr(const kernel::IpAddress& a, uint16_t port, socklen_t* len) {
  sockaddr_storage ss{};
  if (a.is_v6()) {
    auto* s = reinterpret_cast<sockaddr_in6*>(&ss);
    s->sin6_family = AF_INET6;
    s->sin6_port = htons(port);
    std::memcpy(&s->sin6_addr, a.bytes.data(), 16);
    *len = sizeof(sockaddr_in6);
  } else {
    auto* s = reinterpret_cast<sockaddr_in*>(&ss);
    s->sin_family = AF_INET;
    s->sin_port = htons(port);
    std::memcpy(&s->sin_addr, a.bytes.data(), 4);
    *len = sizeof(sockaddr_in);
  }
  return ss;
}

SaPhase Phase(ike::IkeState s) {
  switch (s) {
    case ike::IkeState::kConnecting: return SaPhase::kConnecting;
    case ike::IkeState::kEstablished: return SaPhase::kEstablished;
    case ike::IkeState::kDeleting: return SaPhase::kDeleting;
  }
  return SaPhase::kDown;
}

SaPhase Phase(ike::ChildState s) {
  switch (s) {
    case ike::ChildState::kInstalling: return SaPhase::kConnecting;
    case ike::ChildState::kInstalled: return SaPhase::kEstablished;
    case ike::ChildState::kDeleting: return SaPhase::kDeleting;
  }
  return SaPhase::kDown;
}

// Serial numbers (hex) revoked by the CRLs in `pem` (several concatenated CRLs allowed).
std::set<std::string> RevokedSerials(const std::string& pem) {
  std::set<std::string> out;
  if (pem.empty()) return out;
  ossl::Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return out;
  while (X509_CRL* raw = PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr)) {
    ossl::X509Crl crl(raw);
    STACK_OF(X509_REVOKED)* revoked = X509_CRL_get_REVOKED(crl.get());
    for (int i = 0; revoked && i < sk_X509_REVOKED_num(revoked); ++i) {
      BIGNUM* bn = ASN1_INTEGER_to_BN(X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(revoked, i)), nullptr);
      if (!bn) continue;
      if (char* hex = BN_bn2hex(bn)) {
        out.insert(hex);
        OPENSSL_free(hex);
      }
      BN_free(bn);
    }
  }
  ERR_clear_error();  // the loop ends on "no start line"
  return out;
}

int64_t NowUnix() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

// UDP sockets, one per local address, bound to the IKE port.
class EngineAdapter::UdpNetwork : public ike::Network {
 public:
  explicit UdpNetwork(uint16_t port) : port_(port) {}
  ~UdpNetwork() override {
    for (auto& [a, fd] : fds_) close(fd);
  }
  absl::Status Ensure(const kernel::IpAddress& addr) {
    if (fds_.count(addr)) return absl::OkStatus();
    socklen_t len;
    auto ss = ToSockaddr(addr, port_, &len);
    absl::StatusOr<IkeSocket> s = OpenIkeSocket(reinterpret_cast<sockaddr*>(&ss), len);
    if (!s.ok()) {
      return absl::Status(s.status().code(),
                          absl::StrCat("bind ", addr.ToString(), ":", port_, ": ", s.status().message()));
    }
    if (s->receive_buffer < kIkeReceiveBuffer) {
      spdlog::warn("event=ike_socket_small_buffer local={} receive_buffer={} wanted={} hint=\"run as root, or raise "
                   "net.core.rmem_max\"", addr.ToString(), s->receive_buffer, kIkeReceiveBuffer);
    }
    fds_[addr] = s->fd;
    return absl::OkStatus();
  }
  void Send(const ike::Endpoint& local, const ike::Endpoint& remote, ike::Bytes datagram) override {
    auto it = fds_.find(local.addr);
    if (it == fds_.end()) {
      spdlog::warn("event=ike_send_no_socket local={}", local.addr.ToString());
      return;
    }
    socklen_t len;
    auto ss = ToSockaddr(remote.addr, remote.port, &len);
    if (sendto(it->second, datagram.data(), datagram.size(), 0, reinterpret_cast<sockaddr*>(&ss), len) < 0) {
      spdlog::warn("event=ike_send_failed remote={} error=\"{}\"", remote.ToString(), std::strerror(errno));
    }
  }
  const std::map<kernel::IpAddress, int>& fds() const { return fds_; }
  uint16_t port() const { return port_; }

 private:
  uint16_t port_;
  std::map<kernel::IpAddress, int> fds_;
};

absl::StatusOr<ike::PeerConfig> ToPeerConfig(const TunnelConfig& t, const ConnectionOptions& o,
                                             const HostCredentials& creds) {
  ike::PeerConfig p;
  p.name = t.name;
  p.local_addr = ToKernel(t.local_address);
  p.remote_addr = ToKernel(t.remote_address);
  p.local_id = EngineIdentity(t.local_identity);
  p.remote_id = EngineIdentity(t.remote_identity);
  if (t.auth == AuthKind::kPsk) {
    p.auth = ike::AuthKind::kPsk;
    p.psk = t.psk;
  } else {
    p.auth = ike::AuthKind::kPubkey;
    p.cert_pem = creds.cert_pem;
    p.key_pem = creds.key_pem;
  }
  p.ca_pems = o.ca_chain_pem;
  if (!o.crl_pem.empty()) p.crl_pems = {o.crl_pem};
  std::vector<std::string> ike;
  for (const auto* v : {&t.proposal.ike_encryption, &t.proposal.ike_integrity, &t.proposal.ike_prf, &t.proposal.ike_dh_groups}) {
    ike.insert(ike.end(), v->begin(), v->end());
  }
  if (!ike.empty()) p.ike_proposals = {absl::StrJoin(ike, "-")};
  p.dpd_interval = ike::Duration(int64_t{t.dpd_interval_seconds} * 1000);
  p.dpd_action = ike::DpdAction::kClear;  // the agent's health loop decides about renegotiation
  ike::ChildConfig c;
  c.name = t.name;
  for (const auto& s : t.local_subnets) {
    IPFLEET_ASSIGN_OR_RETURN(auto ts, ike::TsConfig::Parse(TsText(s)));
    c.local_ts.push_back(ts);
  }
  for (const auto& s : t.remote_subnets) {
    IPFLEET_ASSIGN_OR_RETURN(auto ts, ike::TsConfig::Parse(TsText(s)));
    c.remote_ts.push_back(ts);
  }
  c.mode = t.transport ? kernel::Mode::kTransport : kernel::Mode::kTunnel;
  std::vector<std::string> esp;
  esp.insert(esp.end(), t.proposal.esp_encryption.begin(), t.proposal.esp_encryption.end());
  esp.insert(esp.end(), t.proposal.esp_integrity.begin(), t.proposal.esp_integrity.end());
  if (!esp.empty()) c.esp_proposals = {absl::StrJoin(esp, "-")};
  c.reqid = OwnedReqid(t);
  // Start is driven by the agent (initiator only). The engine traps the traffic of every tunnel
  // that starts or traps: its policies stay while no CHILD_SA is installed (flush, repair, a lost
  // peer), so that traffic is dropped instead of leaving in the clear, and either end's traffic
  // brings the CHILD_SA back through the kernel's ACQUIRE.
  c.start_action = t.start != StartKind::kNone ? ike::StartAction::kTrap : ike::StartAction::kNone;
  p.children.push_back(std::move(c));
  return p;
}

EngineAdapter::EngineAdapter(kernel::Xfrm& xfrm, std::function<HostCredentials()> credentials, uint16_t ike_port)
    : xfrm_(xfrm), credentials_(std::move(credentials)), port_(ike_port) {}

EngineAdapter::~EngineAdapter() { Stop(); }

absl::Status EngineAdapter::Start() {
  net_ = std::make_unique<UdpNetwork>(port_);
  engine_ = ike::Engine::Create(clock_, *net_, xfrm_);
  engine_->SetEventCallback([this](const ike::Event& e) { OnEvent(e); });
  IPFLEET_RETURN_IF_ERROR(engine_->Load(ike::IkeConfig{}));
  IPFLEET_RETURN_IF_ERROR(xfrm_.Subscribe([this](const kernel::XfrmEvent& ev) { engine_->OnKernelEvent(ev); }));
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  thread_ = std::thread([this] { Loop(); });
  return absl::OkStatus();
}

void EngineAdapter::Stop() {
  if (!thread_.joinable()) return;
  stop_ = true;
  uint64_t one = 1;
  [[maybe_unused]] auto n = write(wake_fd_, &one, sizeof(one));
  thread_.join();
  close(wake_fd_);
}

void EngineAdapter::OnEvent(const ike::Event& e) {
  // Called from engine calls, i.e. with mu_ held.
  switch (e.type) {
    case ike::EventType::kLivenessFailed:
      liveness_failed_.insert(e.tunnel);
      last_error_[e.tunnel] = "liveness checks unanswered";
      break;
    case ike::EventType::kIkeFailed:
    case ike::EventType::kChildFailed:
    case ike::EventType::kProposalMismatch:
      last_error_[e.tunnel] = absl::StrCat(ike::ToString(e.type), ": ", e.detail);
      break;
    case ike::EventType::kIkeEstablished:
    case ike::EventType::kChildInstalled:
      last_error_.erase(e.tunnel);
      break;
    case ike::EventType::kChildDeleted:
      if (e.detail == "initial_contact") ++dropped_by_initial_contact_[e.tunnel];
      break;
    default:
      break;
  }
  spdlog::info("event=ike_{} tunnel={} ike_id={} child_id={} detail=\"{}\"", ike::ToString(e.type), e.tunnel, e.ike_id,
               e.child_id, e.detail);
}

absl::Status EngineAdapter::EnsureSocketLocked(const kernel::IpAddress& addr) {
  absl::Status s = net_->Ensure(addr);
  uint64_t one = 1;
  [[maybe_unused]] auto n = write(wake_fd_, &one, sizeof(one));
  return s;
}

absl::Status EngineAdapter::ReloadLocked() {
  ike::IkeConfig cfg;
  cfg.retransmit_timeout = ike::Duration(500);
  cfg.retransmit_tries = 3;
  HostCredentials creds = credentials_();
  for (const auto& [name, c] : conns_) {
    IPFLEET_ASSIGN_OR_RETURN(auto p, ToPeerConfig(c.tunnel, *c.options, creds));
    cfg.peers.push_back(std::move(p));
  }
  return engine_->Load(cfg);
}

absl::Status EngineAdapter::AddConnection(const TunnelConfig& t, const ConnectionOptions& o) {
  std::lock_guard lock(mu_);
  IPFLEET_RETURN_IF_ERROR(EnsureSocketLocked(ToKernel(t.local_address)));
  conns_[t.name] = Conn{t, InternLocked(o)};
  return LoadAndStartLocked(t.name, t.start == StartKind::kStart && t.initiator);
}

absl::Status EngineAdapter::LoadAndStartLocked(const std::string& tunnel, bool start) {
  if (batching_) {
    if (start) batch_initiate_.push_back(tunnel);
    return absl::OkStatus();
  }
  IPFLEET_RETURN_IF_ERROR(ReloadLocked());
  if (start) {
    auto id = engine_->Initiate(tunnel);
    if (!id.ok()) return id.status();
  }
  return absl::OkStatus();
}

void EngineAdapter::BeginBatch() {
  std::lock_guard lock(mu_);
  batching_ = true;
}

absl::Status EngineAdapter::EndBatch() {
  std::lock_guard lock(mu_);
  batching_ = false;
  std::vector<std::string> start;
  start.swap(batch_initiate_);
  IPFLEET_RETURN_IF_ERROR(ReloadLocked());
  absl::Status first;
  for (const auto& name : start) {
    auto id = engine_->Initiate(name);
    if (!id.ok() && first.ok()) first = absl::Status(id.status().code(), absl::StrCat(name, ": ", id.status().message()));
  }
  return first;
}

absl::Status EngineAdapter::ReplaceConnection(const TunnelConfig& t, const ConnectionOptions& o) {
  std::lock_guard lock(mu_);
  IPFLEET_RETURN_IF_ERROR(EnsureSocketLocked(ToKernel(t.local_address)));
  conns_[t.name] = Conn{t, InternLocked(o)};
  // New SAs with the new config first; the old ones go once a newer child is installed.
  for (const auto& sa : engine_->ListSas(t.name)) {
    retire_[t.name].insert(sa.id | (uint64_t{1} << 63));  // whole IKE_SA marker
  }
  return LoadAndStartLocked(t.name, t.initiator && t.start != StartKind::kNone);
}

absl::Status EngineAdapter::RemoveConnection(const std::string& tunnel) {
  std::lock_guard lock(mu_);
  (void)engine_->Flush(tunnel);
  conns_.erase(tunnel);
  retire_.erase(tunnel);
  reauth_.erase(tunnel);
  dropped_by_initial_contact_.erase(tunnel);
  std::erase(batch_initiate_, tunnel);
  return batching_ ? absl::OkStatus() : ReloadLocked();
}

absl::Status EngineAdapter::Initiate(const std::string& tunnel) {
  std::lock_guard lock(mu_);
  liveness_failed_.erase(tunnel);
  // The seam's contract: a working IKE_SA is kept and only the missing CHILD_SAs negotiated.
  return engine_->InitiateChildren(tunnel);
}

absl::Status EngineAdapter::DeleteChildSas(const std::string& tunnel, uint32_t spi_in) {
  std::lock_guard lock(mu_);
  for (const auto& sa : engine_->ListSas(tunnel)) {
    for (const auto& c : sa.children) {
      if (c.state != ike::ChildState::kInstalled) continue;  // already on its way out
      if (spi_in == 0 || c.spi_in == spi_in) IPFLEET_RETURN_IF_ERROR(engine_->DeleteChild(c.id));
    }
  }
  return absl::OkStatus();
}

absl::Status EngineAdapter::DeleteIkeSa(const std::string& tunnel) {
  std::lock_guard lock(mu_);
  liveness_failed_.erase(tunnel);
  auto n = engine_->Flush(tunnel);
  return n.ok() ? absl::OkStatus() : n.status();
}

absl::Status EngineAdapter::Rekey(const std::string& tunnel) {
  // CREATE_CHILD_SA with REKEY_SA for every installed CHILD_SA (make-before-break inside the
  // engine); a tunnel with none gets its CHILD_SAs negotiated instead.
  std::lock_guard lock(mu_);
  size_t rekeyed = 0;
  for (const auto& sa : engine_->ListSas(tunnel)) {
    if (sa.state != ike::IkeState::kEstablished) continue;
    for (const auto& c : sa.children) {
      if (c.state != ike::ChildState::kInstalled) continue;
      // FailedPrecondition: a rekey of this child is already under way, which is what we want.
      if (absl::Status s = engine_->RekeyChild(c.id); !s.ok() && !absl::IsFailedPrecondition(s)) return s;
      ++rekeyed;
    }
  }
  return rekeyed ? absl::OkStatus() : engine_->InitiateChildren(tunnel);
}

void EngineAdapter::RetireOldChildrenLocked() {
  if (retire_.empty()) return;
  auto sas = engine_->ListSas();
  for (auto it = retire_.begin(); it != retire_.end();) {
    bool newer = false;
    for (const auto& sa : sas) {
      if (sa.tunnel != it->first || it->second.count(sa.id | (uint64_t{1} << 63))) continue;
      for (const auto& c : sa.children) {
        if (c.state == ike::ChildState::kInstalled && !it->second.count(c.id)) newer = true;
      }
    }
    if (!newer) {
      ++it;
      continue;
    }
    for (const auto& sa : sas) {
      if (sa.tunnel != it->first) continue;
      if (it->second.count(sa.id | (uint64_t{1} << 63))) {
        (void)engine_->DeleteIke(sa.id);
        continue;
      }
      for (const auto& c : sa.children) {
        if (it->second.count(c.id)) (void)engine_->DeleteChild(c.id);
      }
    }
    it = retire_.erase(it);
  }
}

void EngineAdapter::ReauthLocked() {
  if (reauth_.empty()) return;
  const auto now = std::chrono::steady_clock::now();
  const auto sas = engine_->ListSas();
  auto find = [&](uint64_t id) -> const ike::IkeSaInfo* {
    for (const auto& sa : sas) {
      if (sa.id == id) return &sa;
    }
    return nullptr;
  };
  auto delete_old = [&](const Reauth& r) {
    for (uint64_t id : r.old_ike) {
      if (const auto* sa = find(id); sa && sa->state != ike::IkeState::kDeleting) (void)engine_->DeleteIke(id);
    }
  };
  for (auto it = reauth_.begin(); it != reauth_.end();) {
    const std::string& tunnel = it->first;
    Reauth& r = it->second;
    bool old_alive = false;
    for (uint64_t id : r.old_ike) {
      if (const auto* sa = find(id); sa && sa->state == ike::IkeState::kEstablished) old_alive = true;
    }
    if (!old_alive) {  // replaced or deleted by the peer meanwhile
      it = reauth_.erase(it);
      continue;
    }
    if (r.new_ike == 0) {
      if (now < r.start_at) {
        ++it;
        continue;
      }
      auto id = engine_->Initiate(tunnel);
      if (!id.ok()) {
        spdlog::warn("event=reauth_failed tunnel={} error=\"{}\"", tunnel, std::string(id.status().message()));
        delete_old(r);
        it = reauth_.erase(it);
        continue;
      }
      r.new_ike = *id;
      spdlog::info("event=reauth_started tunnel={} ike_id={}", tunnel, r.new_ike);
      ++it;
      continue;
    }
    const auto* fresh = find(r.new_ike);
    bool up = false;
    if (fresh && fresh->state == ike::IkeState::kEstablished) {
      for (const auto& c : fresh->children) up = up || c.state == ike::ChildState::kInstalled;
    }
    if (up) {
      spdlog::info("event=reauth_done tunnel={} ike_id={}", tunnel, r.new_ike);
      delete_old(r);
      it = reauth_.erase(it);
    } else if (!fresh || now >= r.deadline) {
      // The peer could not authenticate under the new trust (revoked) or did not answer: the
      // tunnel goes down rather than keep an SA authenticated under revoked credentials.
      spdlog::warn("event=reauth_failed tunnel={} reason=\"no IKE_SA under the new trust, old one deleted\" last_error=\"{}\"",
                   tunnel, last_error_.count(tunnel) ? last_error_[tunnel] : std::string());
      if (fresh) (void)engine_->DeleteIke(r.new_ike);
      delete_old(r);
      it = reauth_.erase(it);
    } else {
      ++it;
    }
  }
}

std::optional<IkeSaView> EngineAdapter::Query(const std::string& tunnel) {
  std::lock_guard lock(mu_);
  const int64_t now = NowUnix();
  std::optional<IkeSaView> best;
  for (const auto& sa : engine_->ListSas(tunnel)) {
    IkeSaView v;
    v.spi_i = sa.spi_i;
    v.spi_r = sa.spi_r;
    v.phase = Phase(sa.state);
    v.initiator = sa.initiator;
    v.established_unix = now - sa.age.count();
    v.last_heard_unix = now - sa.last_heard.count();
    v.suite = sa.suite;
    v.remote_identity = sa.remote_id;
    for (const auto& c : sa.children) {
      ChildSaView cv;
      cv.spi_in = c.spi_in;
      cv.spi_out = c.spi_out;
      cv.phase = Phase(c.state);
      cv.established_unix = now - c.age.count();
      cv.suite = c.suite;
      cv.local_ts = absl::StrJoin(c.local_ts, ",");
      cv.remote_ts = absl::StrJoin(c.remote_ts, ",");
      v.children.push_back(cv);
    }
    // Prefer an established IKE_SA (there may be a connecting one beside it).
    if (!best || (best->phase != SaPhase::kEstablished && v.phase == SaPhase::kEstablished)) {
      best = std::move(v);
    } else if (v.phase == SaPhase::kEstablished) {
      best->children.insert(best->children.end(), v.children.begin(), v.children.end());
    }
  }
  if (best) {
    auto it = dropped_by_initial_contact_.find(tunnel);
    best->dropped_by_initial_contact = it == dropped_by_initial_contact_.end() ? 0 : it->second;
  }
  if (liveness_failed_.count(tunnel)) {
    if (!best) best = IkeSaView{};
    best->liveness_failed = true;
  }
  if (best) {
    if (auto it = last_error_.find(tunnel); it != last_error_.end()) best->last_error = it->second;
  }
  return best;
}

absl::Status EngineAdapter::SetTrust(const std::vector<std::string>& chain, const std::string& crl) {
  std::lock_guard lock(mu_);
  // Only a newly revoked serial (or another CA) can invalidate an authenticated peer; a CRL merely
  // re-signed with new dates must not churn every IKE_SA.
  bool newly_revoked = false;
  if (crl != crl_) {
    const std::set<std::string> before = RevokedSerials(crl_);
    for (const auto& serial : RevokedSerials(crl)) newly_revoked = newly_revoked || !before.count(serial);
  }
  if (newly_revoked || (!ca_chain_.empty() && chain != ca_chain_)) {
    // The initiator re-authenticates at once; the responder waits a little for the initiator to
    // do it, and steps in when it does not (e.g. the revoked peer is the initiator).
    const auto now = std::chrono::steady_clock::now();
    for (const auto& sa : engine_->ListSas()) {
      if (sa.state != ike::IkeState::kEstablished) continue;
      auto c = conns_.find(sa.tunnel);
      if (c == conns_.end()) continue;
      Reauth& r = reauth_[sa.tunnel];
      r.old_ike.insert(sa.id);
      r.new_ike = 0;
      r.start_at = now + (c->second.tunnel.initiator ? std::chrono::milliseconds(0) : std::chrono::milliseconds(3000));
      r.deadline = r.start_at + std::chrono::seconds(10);
    }
    if (!reauth_.empty()) spdlog::info("event=reauth_scheduled tunnels={} reason=\"trust changed (CA chain or CRL)\"", reauth_.size());
  }
  ca_chain_ = chain;
  crl_ = crl;
  for (auto& [n, c] : conns_) {
    ConnectionOptions o = *c.options;
    o.ca_chain_pem = chain;
    o.crl_pem = crl;
    c.options = InternLocked(o);
  }
  return ReloadLocked();
}

std::shared_ptr<const ConnectionOptions> EngineAdapter::InternLocked(const ConnectionOptions& o) {
  for (const auto& [n, c] : conns_)
    if (c.options && *c.options == o) return c.options;
  return std::make_shared<const ConnectionOptions>(o);
}

void EngineAdapter::Loop() {
  std::vector<pollfd> fds;
  std::vector<kernel::IpAddress> addrs;
  uint8_t buf[65536];
  while (!stop_) {
    int timeout_ms = 200;
    {
      std::lock_guard lock(mu_);
      fds.clear();
      addrs.clear();
      fds.push_back({wake_fd_, POLLIN, 0});
      if (xfrm_.event_fd() >= 0) fds.push_back({xfrm_.event_fd(), POLLIN, 0});
      for (const auto& [a, fd] : net_->fds()) {
        fds.push_back({fd, POLLIN, 0});
        addrs.push_back(a);
      }
      if (auto d = engine_->NextDeadline()) {
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(*d - clock_.Now()).count();
        timeout_ms = static_cast<int>(std::clamp<int64_t>(ms, 0, 200));
      }
    }
    int n = poll(fds.data(), fds.size(), timeout_ms);
    if (n < 0 && errno != EINTR) break;
    std::lock_guard lock(mu_);
    if (fds[0].revents) {
      uint64_t v;
      [[maybe_unused]] auto r = read(wake_fd_, &v, sizeof(v));
    }
    size_t first_sock = xfrm_.event_fd() >= 0 ? 2 : 1;
    if (first_sock == 2 && fds[1].revents) (void)xfrm_.Dispatch();
    for (size_t i = first_sock; i < fds.size(); ++i) {
      if (!(fds[i].revents & POLLIN)) continue;
      for (;;) {
        sockaddr_storage from{};
        socklen_t len = sizeof(from);
        ssize_t got = recvfrom(fds[i].fd, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &len);
        if (got <= 0) break;
        ike::Endpoint remote;
        if (from.ss_family == AF_INET6) {
          auto* s = reinterpret_cast<sockaddr_in6*>(&from);
          remote.addr.family = kernel::IpAddress::Family::kV6;
          std::memcpy(remote.addr.bytes.data(), &s->sin6_addr, 16);
          remote.port = ntohs(s->sin6_port);
        } else {
          auto* s = reinterpret_cast<sockaddr_in*>(&from);
          remote.addr.family = kernel::IpAddress::Family::kV4;
          std::memcpy(remote.addr.bytes.data(), &s->sin_addr, 4);
          remote.port = ntohs(s->sin_port);
        }
        ike::Endpoint local{addrs[i - first_sock], net_->port()};
        engine_->OnDatagram(local, remote, ike::ByteView(buf, static_cast<size_t>(got)));
      }
    }
    engine_->Tick();
    RetireOldChildrenLocked();
    ReauthLocked();
  }
}

}  // namespace ipfleet::agent
