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
    PkiHost host{h, dir / (h.name + ".crt"), dir / (h.name + ".key")};
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

// Same profile as DESIGN.md's CA: ECDSA P-256, SAN with IP and DNS, EKU ipsecIKE + clientAuth.
absl::StatusOr<Pki> WithOpenssl(const std::filesystem::path& dir, const std::vector<PkiHostSpec>& hosts) {
  Pki pki;
  pki.issuer = "openssl-cli";
  const auto ca_key = dir / "ca.key";
  pki.ca_cert = dir / "ca.crt";
  IPFLEET_RETURN_IF_ERROR(RunOk({"openssl", "req", "-x509", "-new", "-newkey", "ec", "-pkeyopt",
                                 "ec_paramgen_curve:P-256", "-nodes", "-keyout", ca_key.string(), "-subj",
                                 "/O=ipfleet interop/CN=interop test CA", "-days", "2", "-addext",
                                 "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                                 "-out", pki.ca_cert.string()},
                                kT)
                              .status());
  for (const auto& h : hosts) {
    PkiHost host{h, dir / (h.name + ".crt"), dir / (h.name + ".key")};
    const auto csr = dir / (h.name + ".csr");
    IPFLEET_RETURN_IF_ERROR(MakeKeyAndCsr(host.key, csr, h.name));
    const auto ext = dir / (h.name + ".ext");
    IPFLEET_RETURN_IF_ERROR(files::WriteAtomic(
        ext,
        absl::StrCat("subjectAltName=IP:", h.ip, ",DNS:", h.dns,
                     "\nextendedKeyUsage=1.3.6.1.5.5.7.3.17,clientAuth\nkeyUsage=critical,digitalSignature\n"),
        0644));
    IPFLEET_RETURN_IF_ERROR(RunOk({"openssl", "x509", "-req", "-in", csr.string(), "-CA", pki.ca_cert.string(),
                                   "-CAkey", ca_key.string(), "-set_serial", std::to_string(1000 + pki.hosts.size()),
                                   "-days", "2", "-extfile", ext.string(), "-out", host.cert.string()},
                                  kT)
                                .status());
    pki.hosts.push_back(std::move(host));
  }
  return pki;
}

}  // namespace

std::string ConfiguredController() {
  std::string ctl = IPFLEET_INTEROP_CONTROLLER;
  if (const char* e = std::getenv("IPFLEET_INTEROP_CONTROLLER")) ctl = e;
  if (ctl.empty() || access(ctl.c_str(), X_OK) != 0) return "";
  return ctl;
}

absl::StatusOr<Pki> MakePki(const std::filesystem::path& dir, const std::vector<PkiHostSpec>& hosts,
                            const std::string& controller) {
  IPFLEET_RETURN_IF_ERROR(files::EnsureDir(dir, 0700));
  if (!controller.empty()) return WithController(dir, hosts, controller);
  return WithOpenssl(dir, hosts);
}

}  // namespace ipfleet::interop
