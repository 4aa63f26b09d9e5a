#include "ipfleet/controller/api/agent_service.h"

#include <absl/strings/str_cat.h>
#include <spdlog/spdlog.h>

#include <list>
#include <memory>
#include <mutex>

#include "ipfleet/ca/cert.h"
#include "ipfleet/common/metrics.h"
#include "ipfleet/controller/api/enrollment.h"
#include "ipfleet/controller/api/peer_auth.h"
#include "ipfleet/controller/api/pki.h"
#include "ipfleet/controller/api/session_registry.h"
#include "ipfleet/controller/inventory/store.h"
#include "session_writer.h"
#include "status_convert.h"

namespace ipfleet::controller {
namespace {

// Milliseconds the session writer gathers agents' reports before committing them, on a shared
// (PostgreSQL) inventory: one transaction per report made acknowledgements the bottleneck of a
// 10,000-host rollout there (each costs round trips and the write lock all replicas share).
constexpr int kSharedInventoryLinger = 3;

using Reactor = grpc::ServerBidiReactor<v1::AgentMessage, v1::ControllerMessage>;

// Owns the outbound queue of one stream; outlives the reactor when the registry still holds it.
// At most one write is in flight (a gRPC rule); Send queues the rest.
class StreamSink final : public SessionSink {
 public:
  StreamSink(Reactor* r, std::atomic<int64_t>& queued) : reactor_(r), queued_(queued) {}
  ~StreamSink() override { queued_.fetch_sub(static_cast<int64_t>(queue_.size()), std::memory_order_relaxed); }

  bool Send(v1::ControllerMessage msg) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!reactor_ || finished_) return false;
    queue_.push_back(std::move(msg));
    queued_.fetch_add(1, std::memory_order_relaxed);
    if (!writing_) {
      writing_ = true;
      reactor_->StartWrite(&queue_.front());
    }
    return true;
  }

  void Close(int code, const std::string& message) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!reactor_ || finished_) return;
    finished_ = true;
    reactor_->Finish(grpc::Status(static_cast<grpc::StatusCode>(code), message));
  }

  void WriteDone(bool ok) {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.pop_front();
    queued_.fetch_sub(1, std::memory_order_relaxed);
    if (ok && !finished_ && reactor_ && !queue_.empty()) {
      reactor_->StartWrite(&queue_.front());
    } else {
      writing_ = false;
    }
  }

  void Detach() {
    std::lock_guard<std::mutex> lock(mu_);
    reactor_ = nullptr;
  }

  bool finished() {
    std::lock_guard<std::mutex> lock(mu_);
    return finished_;
  }

 private:
  std::mutex mu_;
  Reactor* reactor_;
  // Front is the message being written (gRPC holds its address, so no container that moves
  // elements). A list, not a deque: an empty deque still allocates ~600 bytes, once per session.
  std::list<v1::ControllerMessage> queue_;
  std::atomic<int64_t>& queued_;            // SessionRegistry::OutboundQueued
  bool writing_ = false;
  bool finished_ = false;
};

class SessionReactor final : public Reactor {
 public:
  SessionReactor(ControllerContext& ctx, SessionWriter& writer, grpc::CallbackServerContext* sctx)
      : ctx_(ctx), writer_(writer), sink_(std::make_shared<StreamSink>(this, ctx.sessions->outbound_queued_counter())) {
    absl::StatusOr<PeerIdentity> peer = VerifyPeer(*sctx, *ctx_.pki, *ctx_.store, "host");
    if (!peer.ok()) {
      spdlog::warn("event=session_refused peer={} error=\"{}\"", sctx->peer(), std::string(peer.status().message()));
      sink_->Close(static_cast<int>(peer.status().code()), std::string(peer.status().message()));
      return;
    }
    peer_ = std::move(*peer);
    // The certificate text is in the inventory (VerifyPeer checked that); a renewal reads it there
    // instead of every idle session keeping ~1 KiB of PEM.
    std::string().swap(peer_.pem);
    // Bundles repeat the proposal and selectors per tunnel and compress ~4x. Fewer bytes on the
    // wire means fewer pages of gRPC's per-connection TLS buffers ever touched: measured with
    // bench/rollout at 10,000 agents, the rollout's peak RSS rose 29 MiB over apply's instead of
    // 54 MiB. gRPC clients accept gzip unless configured otherwise; the agent's do.
    sctx->set_compression_algorithm(GRPC_COMPRESS_GZIP);
    StartRead(&in_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the agent closed its side, or the call is gone
      sink_->Close(grpc::StatusCode::OK, "");
      return;
    }
    grpc::Status st = Handle(in_);
    if (!st.ok()) {
      spdlog::warn("event=session_error host={} error=\"{}\"", peer_.common_name, st.error_message());
      sink_->Close(st.error_code(), st.error_message());
      return;
    }
    in_.Clear();
    // Another thread may have finished the stream meanwhile (replaced, kicked, shutdown): then
    // no new read, so OnDone follows once the finish completes.
    if (!sink_->finished()) StartRead(&in_);
  }

  void OnWriteDone(bool ok) override { sink_->WriteDone(ok); }

  void OnCancel() override { sink_->Close(grpc::StatusCode::CANCELLED, "session cancelled"); }

  void OnDone() override {
    if (attached_ && ctx_.sessions->Detach(host_, sink_.get())) {
      int64_t now = ctx_.clock();
      absl::Status st = ctx_.store->Transact([&](inventory::Tx& tx) { return tx.SetHostSeen(host_, now, ""); });
      if (!st.ok() && !absl::IsNotFound(st)) {
        spdlog::error("event=store_last_seen_failed host={} error=\"{}\"", host_, std::string(st.message()));
      }
      spdlog::info("event=session_closed host={}", host_);
    }
    sink_->Detach();
    delete this;
  }

 private:
  grpc::Status Handle(const v1::AgentMessage& m) {
    int64_t now = ctx_.clock();
    if (!attached_) {
      if (m.msg_case() != v1::AgentMessage::kHello) {
        return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "the first session message must be Hello");
      }
      return HandleHello(m.hello(), now);
    }
    ctx_.sessions->Touch(host_, now);
    switch (m.msg_case()) {
      case v1::AgentMessage::kHello:
        return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "Hello sent twice on one session");
      case v1::AgentMessage::kHealth:
        return HandleHealth(m.health(), now);
      case v1::AgentMessage::kBundleAck:
        return HandleAck(m.bundle_ack());
      case v1::AgentMessage::kRenewal:
        HandleRenewal(m.renewal(), now);
        return grpc::Status::OK;
      case v1::AgentMessage::kCommandResult:
        return HandleCommandResult(m.command_result(), now);
      case v1::AgentMessage::MSG_NOT_SET:
        return grpc::Status::OK;  // a newer agent's message type: ignore
    }
    return grpc::Status::OK;
  }

  grpc::Status HandleHello(const v1::Hello& h, int64_t now) {
    if (!h.host().empty() && h.host() != peer_.common_name) {
      return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                          absl::StrCat("Hello names host '", h.host(), "' but the certificate is for '",
                                       peer_.common_name, "'"));
    }
    host_ = peer_.common_name;
    absl::Status st = ctx_.store->Transact([&](inventory::Tx& tx) -> absl::Status {
      IPFLEET_RETURN_IF_ERROR(tx.SetHostSeen(host_, now, h.agent_version()));
      return tx.SetAppliedBundleVersion(host_, h.bundle_version());
    });
    if (!st.ok()) return ToGrpc(st);
    attached_ = true;
    ctx_.sessions->Attach(host_, sink_, now);
    spdlog::info("event=session_open host={} agent_version={} bundle_version={} serial={}", host_,
                 h.agent_version(), h.bundle_version(), peer_.serial);
    ctx_.sessions->DispatchHello(host_, h);
    return grpc::Status::OK;
  }

  grpc::Status HandleHealth(const v1::HealthReport& report, int64_t now) {
    inventory::HealthRecord rec;
    rec.host = host_;
    rec.at_unix = now;
    rec.bundle_version = report.bundle_version();
    rec.tunnels_total = static_cast<uint32_t>(report.tunnels_size());
    for (const auto& t : report.tunnels()) rec.tunnels_up += t.up() ? 1 : 0;
    rec.stale_sas = report.stale_sas();
    rec.forced_renegotiations = report.forced_renegotiations_total();
    v1::HealthReport stored = report;
    stored.set_host(host_);
    if (stored.at_unix() == 0) stored.set_at_unix(now);
    RememberForced(report, &stored);
    rec.report = stored.SerializeAsString();
    writer_.Submit({[rec = std::move(rec), now](inventory::Tx& tx) -> absl::Status {
                      IPFLEET_RETURN_IF_ERROR(tx.PutHealth(rec));
                      return tx.SetHostSeen(rec.host, now, "");
                    },
                    [ctx = &ctx_, sink = sink_, host = host_, stored = std::move(stored)](const absl::Status& st) {
                      if (!st.ok()) return CloseOnStoreError(sink, host, st);
                      ctx->sessions->DispatchHealth(host, stored);
                    }});
    return grpc::Status::OK;
  }

  grpc::Status HandleAck(const v1::BundleAck& ack) {
    SessionWriter::Item item;
    if (ack.applied()) {
      item.write = [host = host_, version = ack.version()](inventory::Tx& tx) {
        return tx.SetAppliedBundleVersion(host, version);
      };
    } else {
      spdlog::warn("event=bundle_refused host={} version={} error=\"{}\"", host_, ack.version(), ack.error());
    }
    // A refusal has nothing to write but still goes through the writer, so the engine sees this
    // host's acks and health in the order the agent sent them.
    item.done = [ctx = &ctx_, sink = sink_, host = host_, ack](const absl::Status& st) {
      if (!st.ok()) return CloseOnStoreError(sink, host, st);
      ctx->sessions->DispatchAck(host, ack);
    };
    writer_.Submit(std::move(item));
    return grpc::Status::OK;
  }

  // The stored report keeps the most recent forced renegotiations across reports (the host
  // page and `ipfleet sas` show them), not only those since the agent's previous report. The
  // history is read back from the inventory once per session, at its first report.
  void RememberForced(const v1::HealthReport& report, v1::HealthReport* stored) {
    constexpr int kKeep = 16;
    if (!forced_seeded_) {
      forced_seeded_ = true;
      absl::StatusOr<inventory::HealthRecord> prev = ctx_.store->GetHealth(host_);
      v1::HealthReport old;
      if (prev.ok() && old.ParseFromString(prev->report)) recent_forced_.assign(old.forced().begin(), old.forced().end());
    }
    recent_forced_.insert(recent_forced_.end(), report.forced().begin(), report.forced().end());
    if (recent_forced_.size() > kKeep) recent_forced_.erase(recent_forced_.begin(), recent_forced_.end() - kKeep);
    stored->clear_forced();
    for (const auto& f : recent_forced_) *stored->add_forced() = f;
  }

  static void CloseOnStoreError(const std::shared_ptr<StreamSink>& sink, const std::string& host,
                                const absl::Status& st) {
    spdlog::warn("event=session_error host={} error=\"{}\"", host, std::string(st.message()));
    grpc::Status g = ToGrpc(st);
    sink->Close(g.error_code(), g.error_message());
  }

  // A renewal failure is reported to the agent in CertificateRenewal.error; the session stays.
  void HandleRenewal(const v1::RenewalRequest& r, int64_t now) {
    v1::ControllerMessage out;
    v1::CertificateRenewal* ren = out.mutable_renewal();
    absl::StatusOr<inventory::Certificate> current = ctx_.store->GetCertificate(peer_.serial);
    absl::StatusOr<ca::IssuedCert> issued =
        current.ok() ? ctx_.pki->Renew(r.csr_pem(), current->pem) : absl::StatusOr<ca::IssuedCert>(current.status());
    absl::Status st = issued.status();
    if (st.ok()) {
      absl::StatusOr<ca::CertInfo> info = ca::InspectCertificatePem(issued->pem);
      ca::IssueRequest req;
      if (info.ok()) {
        req.ips = info->ips;
        req.dns = info->dns;
      }
      inventory::Certificate cert = Pki::ToRecord(*issued, req, "host");
      st = ctx_.store->Transact([&](inventory::Tx& tx) -> absl::Status {
        IPFLEET_RETURN_IF_ERROR(tx.PutCertificate(cert));
        IPFLEET_RETURN_IF_ERROR(tx.SetHostCertificate(host_, cert.serial, cert.not_after_unix));
        return tx.AppendAudit({0, now, "agent:" + host_, "cert.renew", host_,
                               absl::StrCat("old=", peer_.serial, " new=", cert.serial), true});
      });
      if (st.ok()) {
        ren->set_certificate_pem(issued->pem);
        ren->add_ca_chain(ctx_.pki->CaPem());
        spdlog::info("event=certificate_renewed host={} old_serial={} serial={}", host_, peer_.serial, cert.serial);
      }
    }
    if (!st.ok()) {
      ren->set_error(absl::StrCat("renewal refused: ", std::string(st.message())));
      spdlog::warn("event=renewal_refused host={} error=\"{}\"", host_, std::string(st.message()));
    }
    sink_->Send(out);
  }

  grpc::Status HandleCommandResult(const v1::CommandResult& r, int64_t now) {
    absl::Status st = ctx_.store->Transact([&](inventory::Tx& tx) -> absl::Status {
      absl::StatusOr<inventory::CommandRecord> cmd = tx.GetCommand(r.id());
      if (!cmd.ok() || cmd->host != host_) {
        spdlog::warn("event=command_result_ignored host={} id={} reason=unknown-command", host_, r.id());
        return absl::OkStatus();
      }
      cmd->state = r.ok() ? inventory::CommandState::kSucceeded : inventory::CommandState::kFailed;
      cmd->finished_unix = r.finished_unix() ? r.finished_unix() : now;
      cmd->result = r.SerializeAsString();
      return tx.UpdateCommand(*cmd);
    });
    if (!st.ok()) return ToGrpc(st);
    ctx_.sessions->DispatchCommandResult(host_, r);
    return grpc::Status::OK;
  }

  ControllerContext& ctx_;
  SessionWriter& writer_;
  std::shared_ptr<StreamSink> sink_;
  PeerIdentity peer_;
  std::string host_;
  bool attached_ = false;
  bool forced_seeded_ = false;
  std::vector<v1::ForcedRenegotiation> recent_forced_;
  v1::AgentMessage in_;
};

}  // namespace

AgentServiceImpl::AgentServiceImpl(ControllerContext& ctx)
    : ctx_(ctx), writer_(std::make_unique<SessionWriter>(
          *ctx.store, 4096, std::chrono::milliseconds(ctx.store->Shared() ? kSharedInventoryLinger : 0))) {}

AgentServiceImpl::~AgentServiceImpl() = default;

grpc::ServerUnaryReactor* AgentServiceImpl::Enroll(grpc::CallbackServerContext* context,
                                                   const v1::EnrollRequest* request,
                                                   v1::EnrollResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<Enrolled> e = EnrollHost(ctx_, request->host(), request->token(), request->csr_pem());
  if (!e.ok()) {
    spdlog::warn("event=enroll_refused host={} peer={} error=\"{}\"", request->host(), context->peer(),
                 std::string(e.status().message()));
    if (ctx_.metrics) {
      ctx_.metrics->Add("ipfleet_controller_enrollment_failures_total",
                        {{"reason", absl::StatusCodeToString(e.status().code())}}, 1);
    }
    reactor->Finish(ToGrpc(e.status()));
    return reactor;
  }
  response->set_certificate_pem(e->certificate_pem);
  response->add_ca_chain(ctx_.pki->CaPem());
  response->set_crl(ctx_.pki->CurrentCrl());
  for (const std::string& c : e->controllers) response->add_controllers(c);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerBidiReactor<v1::AgentMessage, v1::ControllerMessage>* AgentServiceImpl::Session(
    grpc::CallbackServerContext* context) {
  return new SessionReactor(ctx_, *writer_, context);
}

}  // namespace ipfleet::controller
