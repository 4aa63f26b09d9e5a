#include "harness/pki.h"

#include <unistd.h>

#include <cstdlib>

#include <absl/strings/str_cat.h>

#include "harness/process.h"
#include "ipfleet/common/files.h"

#ifndef IPFLEET_INTEROP_CONTROLLER
#define IPFLEET_INTEROP_CONTROLLER ""
#endif

namespace ipfleet::interop {
namespace {

const auto kT = std::chrono::seconds(20);

absl::Status MakeKeyAndCsr(const std::filesystem::path& key, const std::filesystem::path& csr,
                           const std::string& cn) {
  IPFLEET_RETURN_IF_ERROR(RunOk({"openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                                 "-nodes", "-keyout", key.string(), "-subj", "/CN=" + cn, "-out", csr.string()},
                                kT)
                              .status());
  std::filesystem::permissions(key, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  return absl::OkStatus();
}

absl::StatusOr<Pki> WithController(const std::filesystem::path& dir, const std::vector<PkiHostSpec>& hosts,
                                   const std::string& ctl) {
  Pki pki;
  pki.issuer = "ipfleet-controller";
  pki.data_dir = dir / "controller";
  std::filesystem::remove_all(pki.data_dir);
  IPFLEET_RETURN_IF_ERROR(
      RunOk({ctl, "init", "--data-dir", pki.data_dir.string(), "--name", "interop-fleet", "--address", "127.0.0.1"},
            kT)
          .status());
  pki.ca_cert = pki.data_dir / "ca" / "ca.crt";
  if (!std::filesystem::exists(pki.ca_cert)) {
    return absl::NotFoundError(absl::StrCat("ipfleet-controller init did not write ", pki.ca_cert.string()));
  }
  for (const auto& h : hosts) {
    PkiHost host{h, dir / (h.name + ".crt"), dir / (h.name + ".key"), {}};
    const auto csr = dir / (h.name + ".csr");
    IPFLEET_RETURN_IF_ERROR(MakeKeyAndCsr(host.key, csr, h.name));
    IPFLEET_RETURN_IF_ERROR(RunOk({ctl, "ca", "issue", "--data-dir", pki.data_dir.string(), "--csr", csr.string(),
                                   "--name", h.name, "--ip", h.ip, "--dns", h.dns, "--days", "2", "--out",
                                   host.cert.string()},
                                  kT)
                                .status());
    pki.hosts.push_back(std::move(host));
  }
  return pki;
}

// Signs `csr` with the issuer's key; `ext` is the extension file's text.
absl::Status SignCsr(const std::filesystem::path& dir, const std::string& name, const std::string& ext,
                     const std::filesystem::path& issuer_cert, const std::filesystem::path& issuer_key, int serial,
                     const std::filesystem::path& out) {
  const auto ext_file = dir / (name + ".ext");
  IPFLEET_RETURN_IF_ERROR(files::WriteAtomic(ext_file, ext, 0644));
  return RunOk({"openssl", "x509", "-req", "-in", (dir / (name + ".csr")).string(), "-CA", issuer_cert.string(),
                "-CAkey", issuer_key.string(), "-set_serial", std::to_string(serial), "-days", "2", "-extfile",
                ext_file.string(), "-out", out.string()},
               kT)
      .status();
}

absl::Status SelfSignedCa(const std::filesystem::path& key, const std::filesystem::path& cert) {
  return RunOk({"openssl", "req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", key.string(), "-subj", "/O=ipfleet interop/CN=interop test CA", "-days", "2", "-addext",
                "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out",
                cert.string()},
               kT)
      .status();
}

// Same profile as DESIGN.md's CA: ECDSA P-256, SAN with IP and DNS, EKU ipsecIKE + clientAuth.
absl::Status IssueHosts(const std::filesystem::path& dir, const std::vector<PkiHostSpec>& hosts,
                        const std::filesystem::path& issuer_cert, const std::filesystem::path& issuer_key,
                        Pki& pki) {
  for (const auto& h : hosts) {
    PkiHost host{h, dir / (h.name + ".crt"), dir / (h.name + ".key"), {}};
    IPFLEET_RETURN_IF_ERROR(MakeKeyAndCsr(host.key, dir / (h.name + ".csr"), h.name));
    IPFLEET_RETURN_IF_ERROR(SignCsr(dir, h.name,
                                    absl::StrCat("subjectAltName=IP:", h.ip, ",DNS:", h.dns,
                                                 "\nextendedKeyUsage=1.3.6.1.5.5.7.3.17,clientAuth\n"
                                                 "keyUsage=critical,digitalSignature\n"),
                                    issuer_cert, issuer_key, 1000 + static_cast<int>(pki.hosts.size()), host.cert));
    pki.hosts.push_back(std::move(host));
  }
  return absl::OkStatus();
}

absl::StatusOr<Pki> WithOpenssl(const std::filesystem::path& dir, const std::vector<PkiHostSpec>& hosts) {
  Pki pki;
  pki.issuer = "openssl-cli";
  const auto ca_key = dir / "ca.key";
  pki.ca_cert = dir / "ca.crt";
  IPFLEET_RETURN_IF_ERROR(SelfSignedCa(ca_key, pki.ca_cert));
  IPFLEET_RETURN_IF_ERROR(IssueHosts(dir, hosts, pki.ca_cert, ca_key, pki));
  return pki;
}

}  // namespace

std::string ConfiguredController() {
  std::string ctl = IPFLEET_INTEROP_CONTROLLER;
  if (const char* e = std::getenv("IPFLEET_INTEROP_CONTROLLER")) ctl = e;
  if (ctl.empty() || access(ctl.c_str(), X_OK) != 0) return "";
  return ctl;
}

absl::StatusOr<Pki> MakeChainPki(const std::filesystem::path& dir, const std::vector<PkiHostSpec>& hosts,
                                 int intermediates) {
  IPFLEET_RETURN_IF_ERROR(files::EnsureDir(dir, 0700));
  Pki pki;
  pki.issuer = "openssl-cli";
  pki.ca_cert = dir / "ca.crt";
  std::filesystem::path issuer_key = dir / "ca.key", issuer_cert = pki.ca_cert;
  IPFLEET_RETURN_IF_ERROR(SelfSignedCa(issuer_key, issuer_cert));
  for (int i = 1; i <= intermediates; ++i) {
    const std::string name = absl::StrCat("intermediate", i);
    IPFLEET_RETURN_IF_ERROR(MakeKeyAndCsr(dir / (name + ".key"), dir / (name + ".csr"), "interop " + name));
    const auto cert = dir / (name + ".crt");
    IPFLEET_RETURN_IF_ERROR(SignCsr(dir, name,
                                    "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n",
                                    issuer_cert, issuer_key, 100 + i, cert));
    pki.intermediates.push_back(cert);
    issuer_cert = cert;
    issuer_key = dir / (name + ".key");
  }
  IPFLEET_RETURN_IF_ERROR(IssueHosts(dir, hosts, issuer_cert, issuer_key, pki));
  for (auto& h : pki.hosts) {
    IPFLEET_ASSIGN_OR_RETURN(std::string chain, files::Read(h.cert));
    for (auto it = pki.intermediates.rbegin(); it != pki.intermediates.rend(); ++it) {
      IPFLEET_ASSIGN_OR_RETURN(std::string pem, files::Read(*it));
      chain += pem;
    }
    h.chain = dir / (h.spec.name + ".chain.pem");
    IPFLEET_RETURN_IF_ERROR(files::WriteAtomic(h.chain, chain, 0644));
  }
  return pki;
}

absl::StatusOr<Pki> MakePki(const std::filesystem::path& dir, const std::vector<PkiHostSpec>& hosts,
                            const std::string& controller) {
  IPFLEET_RETURN_IF_ERROR(files::EnsureDir(dir, 0700));
  if (!controller.empty()) return WithController(dir, hosts, controller);
  return WithOpenssl(dir, hosts);
}

}  // namespace ipfleet::interop
