// Engine internals shared by the SA manager and the tasks: IKE_SA / CHILD_SA state, the Task
// interface (strongSwan-style build/process with the role fixed at construction), and the
// services a task may use from the manager. Not installed; not part of the public API.
#pragma once

#include <spdlog/spdlog.h>

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ipfleet/ike/auth.h"
#include "ipfleet/ike/codec.h"
#include "ipfleet/ike/config.h"
#include "ipfleet/ike/crypto.h"
#include "ipfleet/ike/engine.h"

namespace ipfleet::ike::internal {

// A tunnel's config with everything parsed once at Load().
struct PeerRuntime {
  PeerConfig cfg;
  std::shared_ptr<Credentials> creds;
  std::vector<Proposal> ike_proposals;
  Identity local_id;
  std::optional<Identity> remote_id;
  struct Child {
    ChildConfig cfg;
    std::vector<Proposal> esp_proposals;  // without DH (IKE_AUTH never carries one)
    uint32_t reqid = 0;
  };
  std::vector<Child> children;
  const Child* FindChild(const std::string& name) const;
  const Child* FindChildByReqid(uint32_t reqid) const;
};

struct ChildSa {
  uint64_t id = 0;
  const PeerRuntime::Child* cfg = nullptr;  // owned by IkeSa::peer
  ChildState state = ChildState::kInstalling;
  uint32_t spi_in = 0, spi_out = 0;
  kernel::Mode mode = kernel::Mode::kTunnel;
  std::vector<TrafficSelector> ts_local, ts_remote;
  Proposal proposal;
  TimePoint created{};
  bool spi_allocated = false;
  bool sas_installed = false;
  std::vector<kernel::PolicyId> policies;
  // Rekeying (rekey.h, RFC 7296 1.3.3 / 2.8). TimePoint::max() = never.
  TimePoint rekey_at = TimePoint::max(), expire_at = TimePoint::max();
  bool rekey_queued = false;      // our CREATE_CHILD_SA rekeying this child is queued or in flight
  uint64_t replaces = 0;          // the child this one rekeyed
  uint64_t replaced_by = 0;       // our own rekey of this child completed (we delete it)
  uint64_t peer_replaced_by = 0;  // the peer rekeyed this child (we answered; the peer deletes it)
  bool created_by_us = false;     // we initiated the exchange that created this child
  bool redundant = false;         // lost a simultaneous rekey (2.8.1); its creator deletes it
  Bytes ex_ni, ex_nr;             // nonces of the creating CREATE_CHILD_SA (collision rule)
  std::optional<kernel::SaParams> pending_out;  // responder: outbound SA held back (make-before-break)
  TimePoint activate_at = TimePoint::max();     // fallback for pending_out when no DELETE comes
  TimePoint remove_at = TimePoint::max();       // retired after a rekey: inbound kept until then
  bool armed = false;                           // rekey_at/expire_at computed from the config
  ~ChildSa();
};

class IkeSa;

// What tasks may ask of the SA manager.
class Services {
 public:
  virtual ~Services() = default;
  virtual kernel::Xfrm& xfrm() = 0;
  virtual TimePoint now() const = 0;
  virtual uint64_t NextId() = 0;
  virtual void Emit(const Event& e) = 0;
  // Tunnels whose addresses accept this IKE_SA (responder config selection).
  virtual std::vector<std::shared_ptr<const PeerRuntime>> PeersFor(const Endpoint& local, const Endpoint& remote) = 0;
  // True when we hold another IKE_SA, in any state, with the peer `sa` is for (same tunnel, same
  // remote address or same authenticated peer ID). INITIAL_CONTACT is sent only when false
  // (RFC 7296 2.4: "this is the only IKE_SA currently active between the authenticated identities").
  virtual bool HasOtherSa(const IkeSa& sa) = 0;
  // The peer sent INITIAL_CONTACT: silently drop the IKE_SAs older than `sa` with the same
  // authenticated identities (ours and the peer's); younger or still-connecting ones stay.
  virtual void InitialContact(IkeSa& sa) = 0;
  // Rekeying (rekey.h): IKE_SA registry access and kernel policy sharing across IKE_SAs.
  virtual IkeSa* FindIke(uint64_t id) = 0;
  virtual uint64_t NewIkeSpi() = 0;
  virtual IkeSa& AdoptIkeSa(std::unique_ptr<IkeSa> sa) = 0;  // a rekeyed IKE_SA joins the manager
  virtual const IkeConfig& config() const = 0;
  // True when a child of any IKE_SA other than `except` uses the same policies (same reqid).
  virtual bool PoliciesInUse(const ChildSa& except) = 0;
  // True when the current config keeps this policy as a trap (it outlives every CHILD_SA).
  virtual bool Trapped(const kernel::PolicyId& id) const = 0;
  virtual std::vector<IkeSa*> AllIke() = 0;
};

// One exchange in flight, in either role.
struct Exchange;

class Task {
 public:
  explicit Task(bool initiator) : initiator_(initiator) {}
  virtual ~Task() = default;
  virtual const char* name() const = 0;
  // Initiator: Build(request) then Process(response). Responder: Process(request) then
  // Build(response). An error from Process fails the exchange (see Exchange::fatal_notify).
  virtual absl::Status Build(IkeSa& sa, Exchange& ex, std::vector<Payload>& out) = 0;
  virtual absl::Status Process(IkeSa& sa, Exchange& ex, const std::vector<Payload>& in) = 0;
  bool initiator() const { return initiator_; }
  // True for an initiator task that will create a CHILD_SA of this config (lets a queue be
  // checked before another one is added for the same child).
  virtual bool CreatesChild(const std::string& /*child_name*/) const { return false; }

 protected:
  bool initiator_;
};

// The common request/response task: the initiator builds the request and processes the response (which can
// only be logged, never refused), the responder processes the request and builds the response.
class RequestResponseTask : public Task {
 public:
  using Task::Task;
  absl::Status Build(IkeSa& sa, Exchange& ex, std::vector<Payload>& out) final {
    return initiator_ ? BuildRequest(sa, ex, out) : BuildResponse(sa, ex, out);
  }
  absl::Status Process(IkeSa& sa, Exchange& ex, const std::vector<Payload>& in) final {
    if (!initiator_) return ProcessRequest(sa, ex, in);
    ProcessResponse(sa, ex, in);
    return absl::OkStatus();
  }

 private:
  virtual absl::Status BuildRequest(IkeSa& sa, Exchange& ex, std::vector<Payload>& out) = 0;
  virtual void ProcessResponse(IkeSa& sa, Exchange& ex, const std::vector<Payload>& in) = 0;
  virtual absl::Status ProcessRequest(IkeSa& sa, Exchange& ex, const std::vector<Payload>& in) = 0;
  virtual absl::Status BuildResponse(IkeSa& sa, Exchange& ex, std::vector<Payload>& out) = 0;
};

struct Exchange {
  ExchangeType type = ExchangeType::kInformational;
  bool initiator = true;  // our role in this exchange
  std::vector<std::unique_ptr<Task>> tasks;
  // Responder: when set, the response carries only this notify and the IKE_SA is not created
  // (IKE_SA_INIT) or is torn down (IKE_AUTH).
  std::optional<Payload> fatal_notify;
  std::string failure;
  // IKE_SA_INIT initiator: the responder asked for another DH group.
  uint16_t retry_group = 0;
  // INFORMATIONAL: the IKE_SA goes away once the exchange completes.
  bool delete_ike = false;
  // CREATE_CHILD_SA nonces.
  Bytes ni, nr;
};

// Finds payloads in a decoded (inner) chain.
const Payload* FindPayload(const std::vector<Payload>& in, PayloadType t);
template <typename T>
const T* Get(const std::vector<Payload>& in, PayloadType t) {
  const Payload* p = FindPayload(in, t);
  return p ? std::get_if<T>(&p->body) : nullptr;
}
const NotifyPayload* FindNotify(const std::vector<Payload>& in, NotifyType t);
// First error notify (type < 16384), if any.
const NotifyPayload* FindErrorNotify(const std::vector<Payload>& in);

// Outside IkeSa: clang decides std::optional<T>'s constructibility for a nested struct with default member
// initializers before the enclosing class is complete, and then refuses optional::emplace().
struct FragmentReassembly {  // RFC 7383 2.6: one message being reassembled
  uint32_t mid = 0;
  bool response = false;
  uint16_t total = 0;
  PayloadType first = PayloadType::kNone;
  std::vector<Bytes> parts;  // decrypted chunks, index = fragment number - 1
  size_t have = 0, bytes = 0;
  TimePoint started{};
};

class IkeSa {
 public:
  IkeSa(Services& svc, uint64_t id, std::shared_ptr<const PeerRuntime> peer, bool initiator, Endpoint local,
        Endpoint remote);

  Services& svc;
  const uint64_t id;
  std::shared_ptr<const PeerRuntime> peer;
  const bool initiator;  // original initiator of the IKE_SA
  IkeState state = IkeState::kConnecting;
  uint64_t spi_i = 0, spi_r = 0;
  Endpoint local, remote;

  // IKE_SA_INIT results.
  std::optional<Proposal> proposal;
  std::optional<Prf> prf;
  std::optional<SkCipher> cipher;
  std::unique_ptr<IkeKeys> keys;
  Bytes ni, nr;
  Bytes init_request, init_response;  // raw IKE_SA_INIT messages (signed in IKE_AUTH)
  std::optional<DhKey> dh;
  uint16_t ke_group = 0;
  std::vector<uint16_t> peer_sig_hashes;
  bool nat_detected = false;
  bool nat_local = false, nat_remote = false;  // which side's address is translated (NAT-D)
  bool frag_supported = false;                 // both sent IKEV2_FRAGMENTATION_SUPPORTED
  Bytes cookie;                                // initiator: COOKIE to echo in IKE_SA_INIT (RFC 7296 2.6)
  int cookie_rounds = 0;
  TimePoint last_sent{};                       // NAT keepalives go out after nat_keepalive of silence
  using Reassembly = FragmentReassembly;
  std::optional<Reassembly> reassembly;

  // Rekeying of the IKE_SA itself (rekey.h, RFC 7296 1.3.2 / 2.18). TimePoint::max() = never.
  TimePoint rekey_at = TimePoint::max();
  bool rekey_queued = false;      // our IKE rekey is queued or in flight
  uint64_t replaced_by = 0;       // our rekey completed: the new IKE_SA (we delete this one)
  uint64_t peer_replaced_by = 0;  // the peer's rekey completed (it deletes this one)
  bool redundant = false;         // lost a simultaneous rekey or a duplicate start; deleted by its creator
  bool armed = false;             // rekey_at computed from the config

  // IKE_AUTH results.
  Identity peer_id;
  Identity my_id;

  std::vector<std::unique_ptr<ChildSa>> children;
  TimePoint created{}, established_at{}, last_heard{};

  // Message IDs (window size 1).
  uint32_t my_next_mid = 0;    // next request we send
  uint32_t peer_next_mid = 0;  // next request we expect
  struct Outstanding {
    std::unique_ptr<Exchange> ex;
    uint32_t mid = 0;
    Bytes packet;
    int tries = 0;
    TimePoint next{};
  };
  std::optional<Outstanding> outstanding;
  std::deque<std::unique_ptr<Exchange>> queue;  // requests waiting for the window
  // Responder cache: the last response and a fingerprint of the request it answered.
  std::optional<uint32_t> cached_mid;
  Bytes cached_response;
  size_t cached_digest = 0;

  uint64_t my_spi() const { return initiator ? spi_i : spi_r; }
  std::string log_prefix() const;
  std::string suite() const;
  ChildSa* FindChild(uint64_t id);
  ChildSa* FindChildBySpiOut(uint32_t spi);
  // Derives SK_* from the negotiated proposal and the DH shared secret (RFC 7296 2.14).
  absl::Status DeriveKeys(ByteView shared);
  // Encodes (and for everything but IKE_SA_INIT protects) one message of this SA.
  absl::StatusOr<Bytes> Seal(ExchangeType type, uint32_t mid, bool response, const std::vector<Payload>& payloads);
  // Verifies/decrypts the SK payload of a decoded message; returns the inner payloads.
  absl::StatusOr<std::vector<Payload>> Open(const Message& msg, ByteView datagram);
};

// ---- Proposal selection (shared by IKE and ESP) -------------------------------------------------
// Picks the first offered proposal that every transform type of one of ours can satisfy.
std::optional<Proposal> SelectProposal(const std::vector<Proposal>& offered, const std::vector<Proposal>& ours);
// Human-readable reason no proposal matched: the transform types without any common value.
std::string DescribeMismatch(const std::vector<Proposal>& offered, const std::vector<Proposal>& ours);
// True when `chosen` (one transform per type) is acceptable under one of `ours`.
bool ProposalAcceptable(const Proposal& chosen, const std::vector<Proposal>& ours);
std::optional<uint16_t> TransformId(const Proposal& p, TransformType t, uint16_t* key_bits = nullptr);

// ---- Traffic selectors --------------------------------------------------------------------------
TrafficSelector ToTs(const TsConfig& c);
std::vector<TrafficSelector> ConfiguredTs(const std::vector<TsConfig>& cfg, const kernel::IpAddress& host);
// Intersection of two selector lists (RFC 7296 2.9 narrowing); empty when disjoint.
std::vector<TrafficSelector> NarrowTs(const std::vector<TrafficSelector>& offered, const std::vector<TrafficSelector>& allowed);
// True when every selector of `sub` lies inside some selector of `super`.
bool TsSubset(const std::vector<TrafficSelector>& sub, const std::vector<TrafficSelector>& super);
std::string TsToString(const TrafficSelector& ts);

// ---- Kernel (child_kernel.cc) --------------------------------------------------------------------
absl::Status AllocInboundSpi(IkeSa& sa, ChildSa& child);
// Installs both SAs and the policies of an established CHILD_SA. keymat = i->r encr|integ, r->i encr|integ.
// With `defer_out`, the outbound SA is not installed but returned there (a rekey responder adds
// it only once the old SA is deleted: make-before-break).
absl::Status InstallChild(IkeSa& sa, ChildSa& child, ByteView keymat, kernel::SaParams* defer_out = nullptr);
// Removes the SAs, and the policies unless the current config traps them (fail-closed) or
// another CHILD_SA still uses them.
void UninstallChild(IkeSa& sa, ChildSa& child);
absl::StatusOr<size_t> EspKeymatLen(const Proposal& p);
// The kernel lifetimes of a CHILD_SA's SAs (byte/packet soft+hard limits, hard time limit).
kernel::Lifetime KernelLifetime(const ChildConfig& c);
// Trap policies for a child config (start_action trap): the policies a CHILD_SA of it would
// install, present without any SA so the kernel drops the traffic and raises ACQUIRE.
std::vector<kernel::PolicyParams> TrapPolicies(const PeerRuntime& peer, const PeerRuntime::Child& child);

// ---- Task factories (tasks/*.cc) ------------------------------------------------------------------
std::unique_ptr<Task> NewIkeInit(bool initiator);
std::unique_ptr<Task> NewIkeNatd(bool initiator);
std::unique_ptr<Task> NewIkeSigHash(bool initiator);
std::unique_ptr<Task> NewIkeAuth(bool initiator);
// `child` is the config to negotiate (initiator); responders pick it from the request.
std::unique_ptr<Task> NewChildCreate(bool initiator, const PeerRuntime::Child* child, bool in_ike_auth);
std::unique_ptr<Task> NewChildDelete(bool initiator, uint64_t child_id);
std::unique_ptr<Task> NewIkeDelete(bool initiator);
std::unique_ptr<Task> NewInfoNotify(bool initiator);  // DPD / error notifies / empty INFORMATIONAL
// IKE_SA_INIT: IKEV2_FRAGMENTATION_SUPPORTED (fragments.cc) and the COOKIE echo (cookies.cc).
std::unique_ptr<Task> NewIkeFrag(bool initiator, bool enabled);
std::unique_ptr<Task> NewIkeCookie(bool initiator);

inline std::string Msg(const absl::Status& s) { return std::string(s.message()); }
Bytes RandomBytes(size_t n);
uint32_t ReadBe32(const Bytes& b);
Bytes Be32(uint32_t v);

}  // namespace ipfleet::ike::internal
