// ipfleet cert list|issue|revoke
#include <cstdio>
#include <fstream>
#include <sstream>

#include "commands.h"
#include "ipfleet/controller/views/json.h"
#include "output.h"

namespace ipfleet::cli {

void AddCertCommands(CLI::App& app, State& state) {
  CLI::App* cert = app.add_subcommand("cert", "Certificates issued by the fleet CA");
  cert->require_subcommand(1);

  // cert list
  {
    auto all = std::make_shared<bool>(false);
    CLI::App* c = cert->add_subcommand("list", "List certificates: serial, subject, kind, expiry, revocation");
    c->add_flag("--all,-a", *all, "Include revoked certificates");
    c->callback([&state, all] {
      v1::ListCertificatesRequest req;
      req.set_include_revoked(*all);
      Client client(state.global);
      v1::ListCertificatesResponse resp;
      grpc::Status st = client.stub().ListCertificates(client.Context().get(), req, &resp);
      if (!st.ok()) {
        state.exit_code = client.Fail("cert list", st);
        return;
      }
      if (state.global.json()) {
        PrintJson(views::CertificatesJson(resp));
        return;
      }
      Table t({"SERIAL", "NAME", "KIND", "NOT-AFTER", "REVOKED"});
      for (const auto& x : resp.certificates()) {
        t.Add({x.serial(), x.name(), x.kind(), FormatTime(x.not_after_unix()),
               x.revoked() ? FormatTime(x.revoked_unix()) + " " + x.revocation_reason() : "no"});
      }
      t.Print();
    });
  }
  // cert issue
  {
    struct Args {
      std::string csr, name, kind = "external", out;
      std::vector<std::string> ips, dns;
      uint32_t days = 0;
    };
    auto a = std::make_shared<Args>();
    CLI::App* c = cert->add_subcommand(
        "issue", "Issue a certificate from a CSR for an external IKE peer (a router) or an admin client");
    c->add_option("--csr", a->csr, "PEM PKCS#10 request file")->required()->check(CLI::ExistingFile);
    c->add_option("--name", a->name, "Subject CN (the peer or admin name)")->required();
    c->add_option("--ip", a->ips, "IP subjectAltName (repeatable)")->allow_extra_args(false);
    c->add_option("--dns", a->dns, "DNS subjectAltName (repeatable)")->allow_extra_args(false);
    c->add_option("--days", a->days, "Validity in days (default 365)");
    c->add_option("--kind", a->kind, "external (IKE peer) or admin (AdminService client over TCP)")
        ->check(CLI::IsMember({"external", "admin"}))
        ->capture_default_str();
    c->add_option("--out", a->out, "Write the certificate PEM here instead of stdout");
    c->callback([&state, a] {
      std::ifstream in(a->csr);
      std::stringstream ss;
      ss << in.rdbuf();
      v1::IssueCertificateRequest req;
      req.set_csr_pem(ss.str());
      req.set_name(a->name);
      req.set_kind(a->kind);
      req.set_days(a->days);
      for (const auto& x : a->ips) req.add_ip_addresses(x);
      for (const auto& x : a->dns) req.add_dns_names(x);
      Client client(state.global);
      v1::IssueCertificateResponse resp;
      grpc::Status st = client.stub().IssueCertificate(client.Context().get(), req, &resp);
      if (!st.ok()) {
        state.exit_code = client.Fail("cert issue", st);
        return;
      }
      if (!a->out.empty()) {
        std::ofstream out(a->out, std::ios::trunc);
        out << resp.certificate_pem();
        if (!out.good()) {
          std::fprintf(stderr, "ipfleet: cannot write %s\n", a->out.c_str());
          state.exit_code = kError;
          return;
        }
      }
      if (state.global.json()) {
        PrintJson({{"serial", resp.serial()},
                   {"certificate_pem", resp.certificate_pem()},
                   {"ca_chain", std::vector<std::string>(resp.ca_chain().begin(), resp.ca_chain().end())}});
      } else if (a->out.empty()) {
        std::printf("%s", resp.certificate_pem().c_str());
      } else {
        std::printf("Issued serial %s for %s; certificate written to %s\n", resp.serial().c_str(), a->name.c_str(),
                    a->out.c_str());
      }
    });
  }
  // cert revoke
  {
    struct Args {
      std::string host, serial, reason;
    };
    auto a = std::make_shared<Args>();
    CLI::App* c = cert->add_subcommand(
        "revoke", "Revoke a host's certificate (HOST) or one certificate (--serial); the CRL is regenerated and "
                  "goes out with every later bundle");
    auto* h = c->add_option("host", a->host, "Host whose certificates to revoke");
    auto* s = c->add_option("--serial", a->serial, "Serial (hex) of the certificate to revoke");
    h->excludes(s);
    c->add_option("--reason", a->reason, "RFC 5280 reason: keyCompromise, superseded, cessationOfOperation, ...");
    c->callback([&state, a] {
      if (a->host.empty() == a->serial.empty()) {
        std::fprintf(stderr, "ipfleet: name a HOST or give --serial S\n");
        state.exit_code = kUsage;
        return;
      }
      v1::RevokeCertificateRequest req;
      if (!a->host.empty()) req.set_host(a->host);
      else req.set_serial(a->serial);
      req.set_reason(a->reason);
      Client client(state.global);
      v1::RevokeCertificateResponse resp;
      grpc::Status st = client.stub().RevokeCertificate(client.Context().get(), req, &resp);
      if (!st.ok()) {
        state.exit_code = client.Fail("cert revoke", st);
        return;
      }
      std::vector<std::string> serials(resp.revoked_serials().begin(), resp.revoked_serials().end());
      if (state.global.json()) {
        PrintJson({{"revoked_serials", serials}, {"crl_number", resp.crl_number()}});
      } else {
        std::printf("Revoked %s; CRL number is now %llu.\n", Join(serials, ", ").c_str(),
                    static_cast<unsigned long long>(resp.crl_number()));
      }
    });
  }
}

}  // namespace ipfleet::cli
