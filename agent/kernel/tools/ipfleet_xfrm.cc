// ipfleet-xfrm: installs SAs and policies through the project's kernel layer (NetlinkXfrm), for the
// lab, for operators debugging a host, and as the layer's own smoke test. Never prints keys.
//
//   ipfleet-xfrm [--netns NAME] sa add --src A --dst B --spi 0x... --reqid 0x1f000001
//       --mode tunnel --aead 'rfc4106(gcm(aes))' --aead-key HEX [--icv 128] ...
//   ipfleet-xfrm sa del --dst B --spi 0x...     ipfleet-xfrm sa get --dst B --spi 0x...
//   ipfleet-xfrm sa list | sa allocspi --src A --dst B --reqid N
//   ipfleet-xfrm policy add --src P --dst P --dir out --tmpl-src A --tmpl-dst B --reqid N
//   ipfleet-xfrm policy del --src P --dst P --dir out | policy list
//   ipfleet-xfrm batch FILE      (one "sa add ..."/"policy add ..." per line, one Apply() call)
//   ipfleet-xfrm flush-owned     ipfleet-xfrm monitor [--count N] [--timeout S]
#include <poll.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <absl/strings/str_format.h>

#include "ipfleet/kernel/netlink_xfrm.h"

namespace k = ipfleet::kernel;

namespace {

// ---- small parsers -----------------------------------------------------------------------------
bool ParseHex(const std::string& hex, std::vector<uint8_t>* out) {
  std::string h = hex.rfind("0x", 0) == 0 ? hex.substr(2) : hex;
  if (h.size() % 2 != 0) return false;
  out->clear();
  for (size_t i = 0; i < h.size(); i += 2) {
    unsigned v = 0;
    if (std::sscanf(h.c_str() + i, "%2x", &v) != 1) return false;
    out->push_back(static_cast<uint8_t>(v));
  }
  return true;
}

uint32_t ParseU32(const std::string& s) { return static_cast<uint32_t>(std::stoul(s, nullptr, 0)); }

k::Mark ParseMark(const std::string& s) {
  if (s.empty()) return {};
  auto slash = s.find('/');
  k::Mark m;
  m.value = ParseU32(s.substr(0, slash));
  m.mask = slash == std::string::npos ? 0xffffffffu : ParseU32(s.substr(slash + 1));
  return m;
}

k::Direction ParseDir(const std::string& s) {
  if (s == "in") return k::Direction::kIn;
  if (s == "fwd") return k::Direction::kFwd;
  return k::Direction::kOut;
}

// ---- options shared by the command line and batch files ----------------------------------------
struct SaOpts {
  std::string src, dst, spi = "0", reqid = "0", mode = "tunnel", mark;
  std::string aead, aead_key, enc, enc_key, auth, auth_key;
  uint32_t icv = 128, trunc = 0, replay_window = 32;
  bool esn = false;
  uint16_t encap_sport = 0, encap_dport = 0;
  uint64_t soft_bytes = 0, hard_bytes = 0, soft_packets = 0, hard_packets = 0;
  uint64_t soft_seconds = 0, hard_seconds = 0, soft_use_seconds = 0, hard_use_seconds = 0;
  std::string sel_src, sel_dst;
  int sel_proto = 0;
};

struct PolicyOpts {
  std::string src, dst, dir = "out", action = "allow", tmpl_src, tmpl_dst, reqid = "0",
                        mode = "tunnel", mark, index = "0";
  int proto = 0;
  uint16_t sport = 0, dport = 0;
  uint32_t priority = 0;
  bool optional = false;
};

void DefineSaId(CLI::App* c, SaOpts& o) {
  c->add_option("--dst", o.dst, "destination address")->required();
  c->add_option("--spi", o.spi, "SPI (0x... or decimal)")->required();
  c->add_option("--mark", o.mark, "mark VALUE[/MASK]");
}

void DefineSa(CLI::App* c, SaOpts& o) {
  DefineSaId(c, o);
  c->add_option("--src", o.src, "source address")->required();
  c->add_option("--reqid", o.reqid, "reqid (owned range 0x1f000000-0x1fffffff)");
  c->add_option("--mode", o.mode, "tunnel|transport");
  c->add_option("--aead", o.aead, "AEAD algorithm, e.g. rfc4106(gcm(aes))");
  c->add_option("--aead-key", o.aead_key, "AEAD key + 4-byte salt, hex");
  c->add_option("--icv", o.icv, "ICV bits");
  c->add_option("--enc", o.enc, "cipher, e.g. cbc(aes)");
  c->add_option("--enc-key", o.enc_key, "cipher key, hex");
  c->add_option("--auth", o.auth, "integrity, e.g. hmac(sha256)");
  c->add_option("--auth-key", o.auth_key, "integrity key, hex");
  c->add_option("--trunc", o.trunc, "ICV truncation bits (0 = RFC default)");
  c->add_option("--replay-window", o.replay_window, "replay window (packets)");
  c->add_flag("--esn", o.esn, "extended sequence numbers");
  c->add_option("--encap-sport", o.encap_sport, "UDP encapsulation source port");
  c->add_option("--encap-dport", o.encap_dport, "UDP encapsulation destination port");
  c->add_option("--soft-bytes", o.soft_bytes);
  c->add_option("--hard-bytes", o.hard_bytes);
  c->add_option("--soft-packets", o.soft_packets);
  c->add_option("--hard-packets", o.hard_packets);
  c->add_option("--soft-seconds", o.soft_seconds, "soft lifetime after installation");
  c->add_option("--hard-seconds", o.hard_seconds, "hard lifetime after installation");
  c->add_option("--soft-use-seconds", o.soft_use_seconds);
  c->add_option("--hard-use-seconds", o.hard_use_seconds);
  c->add_option("--sel-src", o.sel_src, "inner selector source prefix");
  c->add_option("--sel-dst", o.sel_dst, "inner selector destination prefix");
  c->add_option("--sel-proto", o.sel_proto, "inner selector protocol");
}

void DefinePolicyId(CLI::App* c, PolicyOpts& o) {
  c->add_option("--src", o.src, "source prefix")->required();
  c->add_option("--dst", o.dst, "destination prefix")->required();
  c->add_option("--dir", o.dir, "in|out|fwd");
  c->add_option("--proto", o.proto, "IP protocol number (0 = any)");
  c->add_option("--sport", o.sport, "source port (ICMP type)");
  c->add_option("--dport", o.dport, "destination port (ICMP code)");
  c->add_option("--mark", o.mark, "mark VALUE[/MASK]");
}

void DefinePolicy(CLI::App* c, PolicyOpts& o) {
  DefinePolicyId(c, o);
  c->add_option("--action", o.action, "allow|block");
  c->add_option("--priority", o.priority, "lower wins");
  c->add_option("--tmpl-src", o.tmpl_src, "template (tunnel) source");
  c->add_option("--tmpl-dst", o.tmpl_dst, "template (tunnel) destination");
  c->add_option("--reqid", o.reqid, "template reqid; omit all template options for bypass");
  c->add_option("--mode", o.mode, "template mode tunnel|transport");
  c->add_flag("--optional", o.optional, "template level use");
  c->add_option("--index", o.index, "policy index (0 = layer assigns an owned one)");
}

absl::StatusOr<k::SaId> ToSaId(const SaOpts& o) {
  auto dst = k::IpAddress::Parse(o.dst);
  if (!dst.ok()) return dst.status();
  return k::SaId{*dst, ParseU32(o.spi), k::IpsecProto::kEsp, ParseMark(o.mark)};
}

absl::StatusOr<k::SaParams> ToSa(const SaOpts& o) {
  k::SaParams sa;
  auto src = k::IpAddress::Parse(o.src);
  if (!src.ok()) return src.status();
  auto dst = k::IpAddress::Parse(o.dst);
  if (!dst.ok()) return dst.status();
  sa.src = *src;
  sa.dst = *dst;
  sa.spi = ParseU32(o.spi);
  sa.reqid = ParseU32(o.reqid);
  sa.mode = o.mode == "transport" ? k::Mode::kTransport : k::Mode::kTunnel;
  sa.mark = ParseMark(o.mark);
  sa.replay_window = o.replay_window;
  sa.esn = o.esn;
  if (!o.aead.empty()) {
    k::AeadAlgo a{o.aead, {}, o.icv};
    if (!ParseHex(o.aead_key, &a.key)) return absl::InvalidArgumentError("--aead-key: not hex");
    sa.aead = a;
  }
  if (!o.enc.empty()) {
    k::CryptAlgo c{o.enc, {}};
    if (!ParseHex(o.enc_key, &c.key)) return absl::InvalidArgumentError("--enc-key: not hex");
    sa.crypt = c;
  }
  if (!o.auth.empty()) {
    k::AuthAlgo a{o.auth, {}, o.trunc};
    if (!ParseHex(o.auth_key, &a.key)) return absl::InvalidArgumentError("--auth-key: not hex");
    sa.auth = a;
  }
  if (o.encap_sport != 0 || o.encap_dport != 0) {
    sa.encap = k::NatTEncap{o.encap_sport ? o.encap_sport : uint16_t{4500},
                            o.encap_dport ? o.encap_dport : uint16_t{4500}};
  }
  sa.lifetime = k::Lifetime{o.soft_bytes,   o.hard_bytes,   o.soft_packets,     o.hard_packets,
                            o.soft_seconds, o.hard_seconds, o.soft_use_seconds, o.hard_use_seconds};
  if (!o.sel_src.empty() || !o.sel_dst.empty()) {
    auto s = k::IpPrefix::Parse(o.sel_src);
    if (!s.ok()) return s.status();
    auto d = k::IpPrefix::Parse(o.sel_dst);
    if (!d.ok()) return d.status();
    sa.selector = k::Selector{*s, *d, static_cast<uint8_t>(o.sel_proto), 0, 0};
  }
  return sa;
}

absl::StatusOr<k::PolicyId> ToPolicyId(const PolicyOpts& o) {
  auto s = k::IpPrefix::Parse(o.src);
  if (!s.ok()) return s.status();
  auto d = k::IpPrefix::Parse(o.dst);
  if (!d.ok()) return d.status();
  return k::PolicyId{k::Selector{*s, *d, static_cast<uint8_t>(o.proto), o.sport, o.dport},
                     ParseDir(o.dir), ParseMark(o.mark)};
}

absl::StatusOr<k::PolicyParams> ToPolicy(const PolicyOpts& o) {
  auto id = ToPolicyId(o);
  if (!id.ok()) return id.status();
  k::PolicyParams p;
  p.selector = id->selector;
  p.dir = id->dir;
  p.mark = id->mark;
  p.action = o.action == "block" ? k::PolicyAction::kBlock : k::PolicyAction::kAllow;
  p.priority = o.priority;
  p.index = ParseU32(o.index);
  if (ParseU32(o.reqid) != 0 || !o.tmpl_dst.empty()) {
    k::PolicyTemplate t;
    t.mode = o.mode == "transport" ? k::Mode::kTransport : k::Mode::kTunnel;
    t.reqid = ParseU32(o.reqid);
    t.optional = o.optional;
    if (!o.tmpl_dst.empty()) {
      auto ts = k::IpAddress::Parse(o.tmpl_src);
      if (!ts.ok()) return ts.status();
      auto td = k::IpAddress::Parse(o.tmpl_dst);
      if (!td.ok()) return td.status();
      t.src = *ts;
      t.dst = *td;
    }
    p.templates.push_back(t);
  }
  return p;
}

// One "sa add|update|del" or "policy add|update|del" command, from argv or a batch line.
struct OpCommand {
  SaOpts sa;
  PolicyOpts pol;
  CLI::App* sa_add = nullptr;
  CLI::App* sa_update = nullptr;
  CLI::App* sa_del = nullptr;
  CLI::App* pol_add = nullptr;
  CLI::App* pol_update = nullptr;
  CLI::App* pol_del = nullptr;

  void Define(CLI::App* sa_cmd, CLI::App* pol_cmd) {
    sa_add = sa_cmd->add_subcommand("add", "add an SA (XFRM_MSG_NEWSA)");
    DefineSa(sa_add, sa);
    sa_update = sa_cmd->add_subcommand("update", "update an SA (XFRM_MSG_UPDSA)");
    DefineSa(sa_update, sa);
    sa_del = sa_cmd->add_subcommand("del", "delete an SA");
    DefineSaId(sa_del, sa);
    pol_add = pol_cmd->add_subcommand("add", "add a policy");
    DefinePolicy(pol_add, pol);
    pol_update = pol_cmd->add_subcommand("update", "add or replace a policy");
    DefinePolicy(pol_update, pol);
    pol_del = pol_cmd->add_subcommand("del", "delete a policy");
    DefinePolicyId(pol_del, pol);
  }

  // The op the parsed command describes; nullopt if it is not one of the six.
  std::optional<absl::StatusOr<k::BatchOp>> Op() const {
    auto wrap = [](auto v, auto make) -> absl::StatusOr<k::BatchOp> {
      if (!v.ok()) return v.status();
      return make(*v);
    };
    if (sa_add->parsed()) return wrap(ToSa(sa), [](auto& v) { return k::BatchOp(k::AddSa{v}); });
    if (sa_update->parsed()) return wrap(ToSa(sa), [](auto& v) { return k::BatchOp(k::UpdateSa{v}); });
    if (sa_del->parsed()) return wrap(ToSaId(sa), [](auto& v) { return k::BatchOp(k::DeleteSa{v}); });
    if (pol_add->parsed()) return wrap(ToPolicy(pol), [](auto& v) { return k::BatchOp(k::AddPolicy{v}); });
    if (pol_update->parsed()) return wrap(ToPolicy(pol), [](auto& v) { return k::BatchOp(k::UpdatePolicy{v}); });
    if (pol_del->parsed()) return wrap(ToPolicyId(pol), [](auto& v) { return k::BatchOp(k::DeletePolicy{v}); });
    return std::nullopt;
  }
};

// ---- printing (never keys) ----------------------------------------------------------------------
void PrintSa(const k::SaState& s) {
  const auto& p = s.params;
  std::string algs;
  if (p.aead) algs = absl::StrFormat("aead=%s/%u", p.aead->name, p.aead->key.size() * 8);
  if (p.crypt) algs = absl::StrFormat("enc=%s/%u", p.crypt->name, p.crypt->key.size() * 8);
  if (p.auth) algs += absl::StrFormat(" auth=%s/%u", p.auth->name, p.auth->trunc_bits);
  if (algs.empty()) algs = "larval";
  std::printf("sa %s src=%s reqid=0x%08x mode=%s %s%s owned=%s bytes=%llu packets=%llu "
              "integrity_failures=%u replay_failures=%u replay_window_failures=%u\n",
              p.id().ToString().c_str(), p.src.ToString().c_str(), p.reqid, k::ToString(p.mode),
              algs.c_str(), p.encap ? " encap=espinudp" : "", k::IsOwned(p) ? "yes" : "no",
              static_cast<unsigned long long>(s.counters.bytes),
              static_cast<unsigned long long>(s.counters.packets), s.counters.integrity_failures,
              s.counters.replay_failures, s.counters.replay_window_failures);
}

void PrintPolicy(const k::PolicyState& s) {
  const auto& p = s.params;
  std::string t;
  for (const auto& tm : p.templates) {
    t += absl::StrFormat(" tmpl=%s:%s->%s/reqid=0x%08x", k::ToString(tm.mode), tm.src.ToString(),
                         tm.dst.ToString(), tm.reqid);
  }
  std::printf("policy %s action=%s priority=%u index=0x%08x owned=%s%s\n", p.id().ToString().c_str(),
              p.action == k::PolicyAction::kBlock ? "block" : "allow", p.priority, p.index,
              k::IsOwned(p) ? "yes" : "no", t.c_str());
}

void PrintEvent(const k::XfrmEvent& ev) {
  if (const auto* a = std::get_if<k::AcquireEvent>(&ev)) {
    std::printf("event=acquire sel=\"%s\" tmpl_src=%s tmpl_dst=%s reqid=0x%08x policy_index=0x%08x\n",
                a->selector.ToString().c_str(), a->templ.src.ToString().c_str(),
                a->templ.dst.ToString().c_str(), a->templ.reqid, a->policy_index);
  } else if (const auto* e = std::get_if<k::ExpireEvent>(&ev)) {
    std::printf("event=expire hard=%d %s reqid=0x%08x packets=%llu\n", e->hard ? 1 : 0,
                e->id.ToString().c_str(), e->reqid,
                static_cast<unsigned long long>(e->counters.packets));
  } else if (const auto* p = std::get_if<k::PolicyExpireEvent>(&ev)) {
    std::printf("event=polexpire hard=%d %s index=0x%08x\n", p->hard ? 1 : 0,
                p->id.ToString().c_str(), p->index);
  }
  std::fflush(stdout);
}

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "ipfleet-xfrm: %s\n", s.ToString().c_str());
  return 1;
}

int RunBatch(k::Xfrm& x, const std::string& path) {
  std::ifstream file_in;
  std::istream* in = &std::cin;
  if (path != "-") {
    file_in.open(path);
    if (!file_in) return Fail(absl::NotFoundError("cannot open " + path));
    in = &file_in;
  }
  std::vector<k::BatchOp> ops;
  std::string line;
  int lineno = 0;
  while (std::getline(*in, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t") == std::string::npos || line[0] == '#') continue;
    CLI::App app("batch line");
    OpCommand cmd;
    cmd.Define(app.add_subcommand("sa"), app.add_subcommand("policy"));
    try {
      app.parse(line, false);
    } catch (const CLI::ParseError& e) {
      return Fail(absl::InvalidArgumentError(absl::StrFormat("%s:%d: %s", path, lineno, e.what())));
    }
    auto op = cmd.Op();
    if (!op) return Fail(absl::InvalidArgumentError(absl::StrFormat("%s:%d: not an op", path, lineno)));
    if (!op->ok()) return Fail(op->status());
    ops.push_back(**op);
  }
  auto results = x.Apply(ops);
  int failed = 0;
  for (const auto& r : results) {
    if (!r.ok()) {
      ++failed;
      std::fprintf(stderr, "ipfleet-xfrm: %s\n", r.ToString().c_str());
    }
  }
  std::printf("batch ops=%zu failed=%d\n", ops.size(), failed);
  return failed == 0 ? 0 : 1;
}

int Monitor(k::Xfrm& x, int count, double timeout_s, const std::string& type) {
  int seen = 0;
  auto st = x.Subscribe([&](const k::XfrmEvent& ev) {
    const char* t = std::holds_alternative<k::AcquireEvent>(ev)  ? "acquire"
                    : std::holds_alternative<k::ExpireEvent>(ev) ? "expire"
                                                                 : "polexpire";
    if (!type.empty() && type != t) return;
    PrintEvent(ev);
    ++seen;
  });
  if (!st.ok()) return Fail(st);
  std::printf("monitor ready\n");
  std::fflush(stdout);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (count <= 0 || seen < count) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (timeout_s > 0 && left.count() <= 0) break;
    pollfd pfd{x.event_fd(), POLLIN, 0};
    int rc = poll(&pfd, 1, timeout_s > 0 ? static_cast<int>(left.count()) : -1);
    if (rc > 0) {
      auto n = x.Dispatch();
      if (!n.ok()) return Fail(n.status());
    }
  }
  return count <= 0 || seen >= count ? 0 : 2;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("ipfleet-xfrm: SAs and policies through ipfleet's kernel layer");
  std::string netns;
  app.add_option("--netns", netns, "run inside /run/netns/NAME (or a path)");
  app.require_subcommand(1);
  auto* sa_cmd = app.add_subcommand("sa", "security associations");
  auto* pol_cmd = app.add_subcommand("policy", "security policies");
  sa_cmd->require_subcommand(1);
  pol_cmd->require_subcommand(1);
  OpCommand ops;
  ops.Define(sa_cmd, pol_cmd);
  SaOpts get_opts;
  auto* sa_get = sa_cmd->add_subcommand("get", "print one SA and its counters");
  DefineSaId(sa_get, get_opts);
  auto* sa_list = sa_cmd->add_subcommand("list", "dump SAs");
  SaOpts alloc;
  uint32_t min_spi = 0x100, max_spi = 0xffffffff;
  auto* sa_alloc = sa_cmd->add_subcommand("allocspi", "allocate an SPI (larval SA)");
  sa_alloc->add_option("--src", alloc.src)->required();
  sa_alloc->add_option("--dst", alloc.dst)->required();
  sa_alloc->add_option("--reqid", alloc.reqid);
  sa_alloc->add_option("--mode", alloc.mode);
  sa_alloc->add_option("--min", min_spi);
  sa_alloc->add_option("--max", max_spi);
  auto* pol_list = pol_cmd->add_subcommand("list", "dump policies");
  std::string batch_file;
  auto* batch = app.add_subcommand("batch", "apply a file of sa/policy add|update|del lines at once");
  batch->add_option("file", batch_file, "file, or - for stdin")->required();
  app.add_subcommand("flush-owned", "delete every owned SA and policy");
  int count = 0;
  double timeout_s = 0;
  auto* monitor = app.add_subcommand("monitor", "print ACQUIRE/EXPIRE/POLEXPIRE events");
  monitor->add_option("--count", count, "exit 0 after N events");
  monitor->add_option("--timeout", timeout_s, "give up after S seconds (exit 2)");
  std::string event_type;
  monitor->add_option("--type", event_type, "only acquire|expire|polexpire events");
  CLI11_PARSE(app, argc, argv);

  k::NetlinkOptions options;
  if (!netns.empty()) options.netns_path = netns.find('/') == std::string::npos ? "/run/netns/" + netns : netns;
  auto xfrm = k::NewNetlinkXfrm(options);
  if (!xfrm.ok()) return Fail(xfrm.status());
  k::Xfrm& x = **xfrm;

  if (auto op = ops.Op()) {
    if (!op->ok()) return Fail(op->status());
    auto results = x.Apply(std::span<const k::BatchOp>(&**op, 1));
    if (!results[0].ok()) return Fail(results[0]);
    return 0;
  }
  if (sa_get->parsed()) {
    auto id = ToSaId(get_opts);
    if (!id.ok()) return Fail(id.status());
    auto st = x.QuerySa(*id);
    if (!st.ok()) return Fail(st.status());
    PrintSa(*st);
    return 0;
  }
  if (sa_list->parsed()) {
    auto all = x.DumpSas();
    if (!all.ok()) return Fail(all.status());
    for (const auto& s : *all) PrintSa(s);
    return 0;
  }
  if (sa_alloc->parsed()) {
    k::SpiRequest r;
    auto src = k::IpAddress::Parse(alloc.src);
    auto dst = k::IpAddress::Parse(alloc.dst);
    if (!src.ok()) return Fail(src.status());
    if (!dst.ok()) return Fail(dst.status());
    r.src = *src;
    r.dst = *dst;
    r.reqid = ParseU32(alloc.reqid);
    r.mode = alloc.mode == "transport" ? k::Mode::kTransport : k::Mode::kTunnel;
    r.min_spi = min_spi;
    r.max_spi = max_spi;
    auto spi = x.AllocSpi(r);
    if (!spi.ok()) return Fail(spi.status());
    std::printf("spi=0x%08x\n", *spi);
    return 0;
  }
  if (pol_list->parsed()) {
    auto all = x.DumpPolicies();
    if (!all.ok()) return Fail(all.status());
    for (const auto& p : *all) PrintPolicy(p);
    return 0;
  }
  if (batch->parsed()) return RunBatch(x, batch_file);
  if (app.got_subcommand("flush-owned")) {
    auto r = x.FlushOwned();
    if (!r.ok()) return Fail(r.status());
    std::printf("flushed sas=%zu policies=%zu kept_foreign_sas=%zu kept_foreign_policies=%zu\n",
                r->sas_deleted, r->policies_deleted, r->foreign_sas_kept, r->foreign_policies_kept);
    return 0;
  }
  if (monitor->parsed()) return Monitor(x, count, timeout_s, event_type);
  return 0;
}
