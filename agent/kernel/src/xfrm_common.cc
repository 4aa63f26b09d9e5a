// Behaviour both implementations share: one-by-one batch fallback, flush-owned and reconcile.
#include <map>
#include <string>

#include <absl/strings/str_cat.h>
#include <absl/strings/match.h>

#include "internal.h"
#include "ipfleet/kernel/xfrm.h"

namespace ipfleet::kernel {
namespace internal {

namespace {
bool Has(std::string_view s, std::string_view part) { return s.find(part) != s.npos; }
}  // namespace

uint32_t DefaultTruncBits(std::string_view name) {
  if (Has(name, "sha512")) return 256;
  if (Has(name, "sha384")) return 192;
  if (Has(name, "sha256")) return 128;
  return 96;  // hmac(sha1), hmac(md5), xcbc(aes)
}

namespace {
uint32_t Trunc(const AuthAlgo& a) {
  return a.trunc_bits != 0 ? a.trunc_bits : DefaultTruncBits(a.name);
}
}  // namespace

bool SameSa(const SaParams& a, const SaParams& b) {
  if (a.id() != b.id() || a.src != b.src || a.mode != b.mode || a.reqid != b.reqid ||
      a.crypt != b.crypt || a.aead != b.aead || a.encap != b.encap) {
    return false;
  }
  if (a.auth.has_value() != b.auth.has_value()) return false;
  if (a.auth && (a.auth->name != b.auth->name || a.auth->key != b.auth->key ||
                 Trunc(*a.auth) != Trunc(*b.auth))) {
    return false;
  }
  return true;
}

bool SamePolicy(const PolicyParams& a, const PolicyParams& b) {
  return a.id() == b.id() && a.action == b.action && a.priority == b.priority &&
         a.templates == b.templates && a.lifetime == b.lifetime;
}

absl::Status ValidateSa(const SaParams& sa, const char* op) {
  auto bad = [&](const char* why) {
    return absl::InvalidArgumentError(absl::StrCat(op, " ", sa.id().ToString(), ": ", why));
  };
  if (sa.src.family == IpAddress::Family::kUnspec || sa.src.family != sa.dst.family) {
    return bad("src and dst must be addresses of the same family");
  }
  if (sa.spi == 0) return bad("spi 0 is reserved");
  if (sa.aead && (sa.crypt || sa.auth)) return bad("aead excludes crypt/auth");
  if (!sa.aead && !sa.crypt && sa.proto == IpsecProto::kEsp) {
    return bad("ESP needs an aead or a crypt algorithm");
  }
  if (sa.selector && sa.selector->src.address.family != sa.selector->dst.address.family) {
    return bad("selector src and dst must be of the same family");
  }
  return absl::OkStatus();
}

absl::Status ValidatePolicy(const PolicyParams& p, const char* op) {
  auto bad = [&](const char* why) {
    return absl::InvalidArgumentError(absl::StrCat(op, " ", p.id().ToString(), ": ", why));
  };
  const auto& s = p.selector;
  if (s.src.address.family == IpAddress::Family::kUnspec ||
      s.src.address.family != s.dst.address.family) {
    return bad("selector src and dst must be prefixes of the same family");
  }
  if (s.src.length > s.src.address.max_prefix() || s.dst.length > s.dst.address.max_prefix()) {
    return bad("prefix length too long");
  }
  if (p.index != 0 && (p.index & 7) != static_cast<uint32_t>(p.dir)) {
    return bad("index low three bits must equal the direction");
  }
  if (p.action == PolicyAction::kBlock && !p.templates.empty()) {
    return bad("a block policy takes no templates");
  }
  for (const auto& t : p.templates) {
    if (t.mode == Mode::kTunnel && (t.src.family == IpAddress::Family::kUnspec ||
                                    t.src.family != t.dst.family)) {
      return bad("a tunnel template needs src and dst endpoints of one family");
    }
  }
  return absl::OkStatus();
}

uint32_t OwnedPolicyIndex(uint32_t n, Direction dir) {
  constexpr uint32_t kSpan = (kOwnedPolicyIndexLast - kOwnedPolicyIndexFirst + 1) >> 3;
  return kOwnedPolicyIndexFirst + ((n % kSpan) << 3) + static_cast<uint32_t>(dir);
}

uint32_t OwnedPolicyIndexSerial(uint32_t index) {
  return (index - kOwnedPolicyIndexFirst) >> 3;
}

}  // namespace internal

std::vector<absl::Status> ApplyOneByOne(Xfrm& x, std::span<const BatchOp> ops) {
  std::vector<absl::Status> out;
  out.reserve(ops.size());
  for (const auto& op : ops) {
    out.push_back(std::visit(
        [&](const auto& o) -> absl::Status {
          using T = std::decay_t<decltype(o)>;
          if constexpr (std::is_same_v<T, AddSa>) return x.AddSa(o.sa);
          if constexpr (std::is_same_v<T, UpdateSa>) return x.UpdateSa(o.sa);
          if constexpr (std::is_same_v<T, DeleteSa>) return x.DeleteSa(o.id);
          if constexpr (std::is_same_v<T, AddPolicy>) return x.AddPolicy(o.policy);
          if constexpr (std::is_same_v<T, UpdatePolicy>) return x.UpdatePolicy(o.policy);
          if constexpr (std::is_same_v<T, DeletePolicy>) return x.DeletePolicy(o.id);
        },
        op));
  }
  return out;
}

namespace {

// Runs ops as one batch; returns the first error with a count, or OK.
absl::Status RunAll(Xfrm& x, const std::vector<BatchOp>& ops, const char* what) {
  if (ops.empty()) return absl::OkStatus();
  auto results = x.Apply(ops);
  size_t failed = 0;
  absl::Status first;
  for (const auto& r : results) {
    if (!r.ok()) {
      if (failed++ == 0) first = r;
    }
  }
  if (failed == 0) return absl::OkStatus();
  return absl::Status(first.code(), absl::StrCat(what, ": ", failed, " of ", ops.size(),
                                                 " operations failed, first: ", first.message()));
}

}  // namespace

absl::StatusOr<FlushReport> FlushOwnedWith(Xfrm& x) {
  FlushReport report;
  std::vector<BatchOp> ops;
  // Policies first so no packet meets a policy whose SA just vanished (it would trigger ACQUIREs).
  auto policies = x.DumpPolicies();
  if (!policies.ok()) return policies.status();
  for (const auto& p : *policies) {
    if (IsOwned(p.params)) {
      ops.push_back(DeletePolicy{p.params.id()});
      ++report.policies_deleted;
    } else {
      ++report.foreign_policies_kept;
    }
  }
  auto sas = x.DumpSas();
  if (!sas.ok()) return sas.status();
  for (const auto& s : *sas) {
    if (IsOwned(s.params)) {
      ops.push_back(DeleteSa{s.params.id()});
      ++report.sas_deleted;
    } else {
      ++report.foreign_sas_kept;
    }
  }
  auto st = RunAll(x, ops, "FlushOwned");
  if (!st.ok()) return st;
  return report;
}

absl::StatusOr<ReconcileReport> ReconcileWith(Xfrm& x, const DesiredState& desired) {
  for (const auto& sa : desired.sas) {
    if (!IsOwned(sa)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Reconcile: desired SA ", sa.id().ToString(), " has reqid ", sa.reqid,
          " outside the owned range"));
    }
  }
  ReconcileReport report;
  std::vector<BatchOp> ops;

  auto policies = x.DumpPolicies();
  if (!policies.ok()) return policies.status();
  std::map<PolicyId, const PolicyParams*> owned_policies;
  std::map<PolicyId, const PolicyParams*> foreign_policies;
  for (const auto& p : *policies) {
    (IsOwned(p.params) ? owned_policies : foreign_policies)[p.params.id()] = &p.params;
  }
  std::map<PolicyId, bool> wanted_policies;
  for (const auto& want : desired.policies) {
    wanted_policies[want.id()] = true;
    if (foreign_policies.count(want.id()) != 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "Reconcile: desired policy ", want.id().ToString(),
          " is held by a foreign policy; not touching it"));
    }
    auto it = owned_policies.find(want.id());
    if (it == owned_policies.end()) {
      ops.push_back(AddPolicy{want});
      ++report.policies_added;
    } else if (!internal::SamePolicy(*it->second, want)) {
      PolicyParams replace = want;
      replace.index = it->second->index;  // keep the kernel's index
      ops.push_back(UpdatePolicy{replace});
      ++report.policies_replaced;
    }
  }
  for (const auto& [id, p] : owned_policies) {
    if (wanted_policies.count(id) == 0) {
      ops.push_back(DeletePolicy{id});
      ++report.policies_removed;
    }
  }

  auto sas = x.DumpSas();
  if (!sas.ok()) return sas.status();
  std::map<SaId, const SaParams*> kernel_sas;
  for (const auto& s : *sas) kernel_sas[s.params.id()] = &s.params;
  std::map<SaId, bool> wanted_sas;
  for (const auto& want : desired.sas) {
    wanted_sas[want.id()] = true;
    auto it = kernel_sas.find(want.id());
    if (it == kernel_sas.end()) {
      ops.push_back(AddSa{want});
      ++report.sas_added;
    } else if (!IsOwned(*it->second)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "Reconcile: desired SA ", want.id().ToString(), " is held by a foreign SA"));
    } else if (!internal::SameSa(*it->second, want)) {
      // UPDSA cannot change keys of a valid SA: replace it.
      ops.push_back(DeleteSa{want.id()});
      ops.push_back(AddSa{want});
      ++report.sas_replaced;
    }
  }
  for (const auto& [id, sa] : kernel_sas) {
    if (IsOwned(*sa) && wanted_sas.count(id) == 0) {
      ops.push_back(DeleteSa{id});
      ++report.sas_removed;
    }
  }
  auto st = RunAll(x, ops, "Reconcile");
  if (!st.ok()) return st;
  return report;
}

}  // namespace ipfleet::kernel
