// ipfleet host add|list|show|remove|token
#include <absl/strings/str_split.h>

#include <cstdio>
#include <ctime>

#include "commands.h"
#include "ipfleet/controller/views/json.h"
#include "output.h"

namespace ipfleet::cli {
namespace {

int PrintToken(const State& s, const v1::AddHostResponse& r, bool added) {
  if (s.global.json()) {
    PrintJson({{"name", r.name()},
               {"token", r.token()},
               {"token_expires_unix", r.token_expires_unix()},
               {"ca_fingerprint", r.ca_fingerprint()},
               {"enroll_command", r.enroll_command()}});
    return kOk;
  }
  if (added) std::printf("Host %s added.\n", r.name().c_str());
  std::printf("Enrollment token (single use, expires %s):\n  %s\n", FormatTime(r.token_expires_unix()).c_str(),
              r.token().c_str());
  std::printf("CA fingerprint (SHA-256):\n  %s\n", r.ca_fingerprint().c_str());
  std::printf("Run this on %s:\n  %s\n", r.name().c_str(), r.enroll_command().c_str());
  return kOk;
}

std::string Labels(const v1::HostInfo& h) {
  std::vector<std::string> parts;
  for (const auto& [k, v] : std::map<std::string, std::string>(h.labels().begin(), h.labels().end())) {
    parts.push_back(k + "=" + v);
  }
  return parts.empty() ? "-" : Join(parts, ",");
}

}  // namespace

void AddHostCommands(CLI::App& app, State& state) {
  CLI::App* host = app.add_subcommand("host", "Hosts in the inventory and their enrollment");
  host->require_subcommand(1);

  // host add
  {
    struct Args {
      std::string name;
      std::vector<std::string> addresses, dns, labels;
      uint32_t ttl = 0;
    };
    auto a = std::make_shared<Args>();
    CLI::App* c = host->add_subcommand(
        "add", "Add a host and print a single-use enrollment token plus the exact `ipfleet-agent enroll` line");
    c->add_option("name", a->name, "Host name (becomes the certificate CN)")->required();
    c->add_option("--address", a->addresses, "Outer IP address (repeatable); becomes an IP subjectAltName")
        ->required()
        ->allow_extra_args(false);
    c->add_option("--dns", a->dns, "DNS name (repeatable); becomes a DNS subjectAltName")->allow_extra_args(false);
    c->add_option("--label", a->labels, "Label k=v (repeatable), used by fleet selectors")->allow_extra_args(false);
    c->add_option("--token-ttl", a->ttl, "Token lifetime in seconds (default 86400)");
    c->callback([&state, a] {
      v1::AddHostRequest req;
      req.set_name(a->name);
      for (const auto& x : a->addresses) req.add_addresses(x);
      for (const auto& x : a->dns) req.add_dns_names(x);
      for (const auto& l : a->labels) {
        std::vector<std::string> kv = absl::StrSplit(l, absl::MaxSplits('=', 1));
        if (kv.size() != 2 || kv[0].empty()) {
          std::fprintf(stderr, "ipfleet: --label '%s' must look like key=value\n", l.c_str());
          state.exit_code = kUsage;
          return;
        }
        (*req.mutable_labels())[kv[0]] = kv[1];
      }
      req.set_token_ttl_seconds(a->ttl);
      Client client(state.global);
      v1::AddHostResponse resp;
      grpc::Status st = client.stub().AddHost(client.Context().get(), req, &resp);
      state.exit_code = st.ok() ? PrintToken(state, resp, true) : client.Fail("host add", st);
    });
  }
  // host token
  {
    auto name = std::make_shared<std::string>();
    auto ttl = std::make_shared<uint32_t>(0);
    CLI::App* c = host->add_subcommand("token", "Issue a fresh enrollment token for an existing host (re-enroll)");
    c->add_option("name", *name, "Host name")->required();
    c->add_option("--token-ttl", *ttl, "Token lifetime in seconds (default 86400)");
    c->callback([&state, name, ttl] {
      v1::NewEnrollmentTokenRequest req;
      req.set_name(*name);
      req.set_token_ttl_seconds(*ttl);
      Client client(state.global);
      v1::AddHostResponse resp;
      grpc::Status st = client.stub().NewEnrollmentToken(client.Context().get(), req, &resp);
      state.exit_code = st.ok() ? PrintToken(state, resp, false) : client.Fail("host token", st);
    });
  }
  // host list
  {
    auto selector = std::make_shared<std::string>();
    CLI::App* c = host->add_subcommand("list", "List hosts");
    c->add_option("--selector,-l", *selector, "Only hosts with these labels: k=v[,k2=v2]");
    c->callback([&state, selector] {
      v1::ListHostsRequest req;
      req.set_selector(*selector);
      Client client(state.global);
      v1::ListHostsResponse resp;
      grpc::Status st = client.stub().ListHosts(client.Context().get(), req, &resp);
      if (!st.ok()) {
        state.exit_code = client.Fail("host list", st);
        return;
      }
      if (state.global.json()) {
        PrintJson(views::HostListJson(resp));
        return;
      }
      int64_t now = std::time(nullptr);
      Table t({"NAME", "ENROLLED", "CONNECTED", "LAST-SEEN", "BUNDLE", "ADDRESSES", "LABELS"});
      for (const auto& h : resp.hosts()) {
        t.Add({h.name(), h.enrolled() ? "yes" : "no", h.connected() ? "yes" : "no", Ago(h.last_seen_unix(), now),
               std::to_string(h.applied_bundle_version()),
               Join(std::vector<std::string>(h.addresses().begin(), h.addresses().end()), ","), Labels(h)});
      }
      t.Print();
    });
  }
  // host show
  {
    auto name = std::make_shared<std::string>();
    CLI::App* c = host->add_subcommand("show", "Show one host");
    c->add_option("name", *name, "Host name")->required();
    c->callback([&state, name] {
      v1::GetHostRequest req;
      req.set_name(*name);
      Client client(state.global);
      v1::HostInfo h;
      grpc::Status st = client.stub().GetHost(client.Context().get(), req, &h);
      if (!st.ok()) {
        state.exit_code = client.Fail("host show", st);
        return;
      }
      if (state.global.json()) {
        PrintJson(views::HostJson(h));
        return;
      }
      int64_t now = std::time(nullptr);
      std::printf("name:            %s\n", h.name().c_str());
      std::printf("addresses:       %s\n",
                  Join(std::vector<std::string>(h.addresses().begin(), h.addresses().end()), ", ").c_str());
      std::printf("dns names:       %s\n",
                  Join(std::vector<std::string>(h.dns_names().begin(), h.dns_names().end()), ", ").c_str());
      std::printf("labels:          %s\n", Labels(h).c_str());
      std::printf("enrolled:        %s\n", h.enrolled() ? "yes" : "no");
      std::printf("certificate:     %s (expires %s)\n", h.cert_serial().empty() ? "-" : h.cert_serial().c_str(),
                  FormatTime(h.cert_not_after_unix()).c_str());
      std::printf("connected:       %s\n", h.connected() ? "yes" : "no");
      std::printf("last seen:       %s\n", Ago(h.last_seen_unix(), now).c_str());
      std::printf("bundle version:  applied %llu, desired %llu\n",
                  static_cast<unsigned long long>(h.applied_bundle_version()),
                  static_cast<unsigned long long>(h.desired_bundle_version()));
    });
  }
  // host remove
  {
    auto name = std::make_shared<std::string>();
    CLI::App* c = host->add_subcommand("remove", "Remove a host; its certificates are revoked first");
    c->add_option("name", *name, "Host name")->required();
    c->callback([&state, name] {
      v1::RemoveHostRequest req;
      req.set_name(*name);
      Client client(state.global);
      v1::RemoveHostResponse resp;
      grpc::Status st = client.stub().RemoveHost(client.Context().get(), req, &resp);
      if (!st.ok()) {
        state.exit_code = client.Fail("host remove", st);
        return;
      }
      if (state.global.json()) {
        PrintJson({{"name", *name}, {"revoked_serial", resp.revoked_serial()}});
      } else {
        std::printf("Host %s removed%s%s.\n", name->c_str(), resp.revoked_serial().empty() ? "" : "; revoked certificate ",
                    resp.revoked_serial().c_str());
      }
    });
  }
}

}  // namespace ipfleet::cli
