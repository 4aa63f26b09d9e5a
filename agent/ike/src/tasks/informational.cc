// INFORMATIONAL tasks: CHILD_SA deletion, IKE_SA deletion, and the empty/notify-only exchange
// used for liveness checks (RFC 7296 1.4, 2.4).
#include <absl/strings/str_cat.h>

#include "../internal.h"
#include "../rekey.h"

namespace ipfleet::ike::internal {
namespace {

void RemoveChild(IkeSa& sa, ChildSa& c, const char* why) {
  if (RetireChild(sa, c)) return;  // rekeyed: inbound SA kept for the grace period (rekey.h)
  spdlog::info("child_sa_deleted {} child={} name={} spi_in={:08x} spi_out={:08x} reason={}", sa.log_prefix(), c.id,
               c.cfg->cfg.name, c.spi_in, c.spi_out, why);
  UninstallChild(sa, c);
  sa.svc.Emit(Event{EventType::kChildDeleted, sa.peer->cfg.name, sa.id, c.id, why});
  uint64_t id = c.id;
  std::erase_if(sa.children, [&](const auto& p) { return p->id == id; });
}

class ChildDelete : public Task {
 public:
  ChildDelete(bool initiator, uint64_t child_id) : Task(initiator), child_id_(child_id) {}
  const char* name() const override { return "child_delete"; }

  absl::Status Build(IkeSa& sa, Exchange&, std::vector<Payload>& out) override {
    DeletePayload d{ProtocolId::kEsp, 4, {}};
    if (initiator_) {
      ChildSa* c = sa.FindChild(child_id_);
      if (!c) return absl::NotFoundError(absl::StrCat("child ", child_id_, " gone"));
      c->state = ChildState::kDeleting;
      d.spis.push_back(Be32(c->spi_in));
    } else {
      for (uint32_t spi : answered_) d.spis.push_back(Be32(spi));
      for (uint64_t id : to_remove_)
        if (ChildSa* c = sa.FindChild(id)) RemoveChild(sa, *c, "deleted_by_peer");
      if (d.spis.empty()) return absl::OkStatus();
    }
    out.push_back({PayloadType::kDelete, false, std::move(d)});
    return absl::OkStatus();
  }

  absl::Status Process(IkeSa& sa, Exchange&, const std::vector<Payload>& in) override {
    if (initiator_) {
      if (ChildSa* c = sa.FindChild(child_id_)) RemoveChild(sa, *c, "deleted_by_us");
      return absl::OkStatus();
    }
    for (const auto& p : in) {
      auto* d = std::get_if<DeletePayload>(&p.body);
      if (!d || d->protocol != ProtocolId::kEsp) continue;
      for (const Bytes& spi : d->spis) {
        ChildSa* c = sa.FindChildBySpiOut(ReadBe32(spi));
        if (!c) continue;  // unknown SPI: ignored (RFC 7296 1.4.1)
        // RFC 7296 1.4.1: in a simultaneous delete, do not include SPIs we are deleting ourselves.
        if (c->state != ChildState::kDeleting) answered_.push_back(c->spi_in);
        to_remove_.push_back(c->id);
      }
    }
    return absl::OkStatus();
  }

 private:
  uint64_t child_id_;
  std::vector<uint32_t> answered_;
  std::vector<uint64_t> to_remove_;
};

class IkeDelete : public Task {
 public:
  using Task::Task;
  const char* name() const override { return "ike_delete"; }
  absl::Status Build(IkeSa& sa, Exchange& ex, std::vector<Payload>& out) override {
    if (initiator_) {
      sa.state = IkeState::kDeleting;
      out.push_back({PayloadType::kDelete, false, DeletePayload{ProtocolId::kIke, 0, {}}});
    }
    ex.delete_ike = true;
    return absl::OkStatus();
  }
  absl::Status Process(IkeSa&, Exchange& ex, const std::vector<Payload>&) override {
    ex.delete_ike = true;  // any response (even an error) ends the IKE_SA
    return absl::OkStatus();
  }
};

class InfoNotify : public Task {
 public:
  using Task::Task;
  const char* name() const override { return "info_notify"; }
  absl::Status Build(IkeSa&, Exchange&, std::vector<Payload>&) override { return absl::OkStatus(); }
  absl::Status Process(IkeSa& sa, Exchange&, const std::vector<Payload>& in) override {
    for (const auto& p : in)
      if (auto* n = std::get_if<NotifyPayload>(&p.body))
        spdlog::info("notify_received {} type={} error={}", sa.log_prefix(), NotifyName(n->type), IsErrorNotify(n->type));
    return absl::OkStatus();
  }
};

}  // namespace

std::unique_ptr<Task> NewChildDelete(bool initiator, uint64_t child_id) { return std::make_unique<ChildDelete>(initiator, child_id); }
std::unique_ptr<Task> NewIkeDelete(bool initiator) { return std::make_unique<IkeDelete>(initiator); }
std::unique_ptr<Task> NewInfoNotify(bool initiator) { return std::make_unique<InfoNotify>(initiator); }

}  // namespace ipfleet::ike::internal
