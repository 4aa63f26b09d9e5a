// `ipfleet-controller ca issue|revoke|crl`: the CA by hand, with no controller running.
// Issued certificates and revocations are also recorded in the inventory database when the data
// directory has one, so the running controller sees them.
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "ipfleet/ca/authority.h"
#include "ipfleet/ca/cert.h"
#include "ipfleet/ca/layout.h"
#include "ipfleet/common/files.h"
#include "ipfleet/controller/inventory/sqlite_store.h"
#include "ipfleet/controller/offline/commands.h"
#include "output.h"

namespace ipfleet::controller {

namespace {

namespace fs = std::filesystem;

struct IssueArgs {
  std::string data_dir;
  std::string csr;
  std::string name;
  std::vector<std::string> ips;
  std::vector<std::string> dns;
  int days = 365;
  std::string profile = "host";
  std::string out;
};

struct RevokeArgs {
  std::string data_dir;
  std::string serial;
  std::string reason = "unspecified";
};

struct CrlArgs {
  std::string data_dir;
  std::string out;
  int days = 7;
};

// Checks up front that `out` can be written, so a bad path fails before anything changes.
absl::Status CheckOutput(const std::string& out) {
  if (out == "-") return absl::OkStatus();
  fs::path p(out);
  std::error_code ec;
  if (fs::is_directory(p, ec)) return absl::InvalidArgumentError("--out " + out + " is a directory");
  fs::path dir = p.parent_path().empty() ? fs::path(".") : p.parent_path();
  if (!fs::is_directory(dir, ec)) return absl::NotFoundError("--out directory " + dir.string() + " does not exist");
  if (access(dir.c_str(), W_OK | X_OK) != 0) {
    return absl::PermissionDeniedError("--out directory " + dir.string() + " is not writable");
  }
  return absl::OkStatus();
}

absl::Status WriteOutput(const std::string& out, const std::string& pem) {
  if (out == "-") {
    std::cout << pem;
    return absl::OkStatus();
  }
  return files::WriteAtomic(out, pem, 0644);
}

// The inventory of the data directory, or nullptr when it has none (then nothing is recorded).
absl::StatusOr<std::unique_ptr<inventory::Store>> MaybeOpenInventory(const fs::path& dir) {
  std::error_code ec;
  if (!fs::exists(ca::layout::InventoryDb(dir), ec)) return std::unique_ptr<inventory::Store>();
  return inventory::OpenSqliteStore(ca::layout::InventoryDb(dir));
}

absl::StatusOr<std::unique_ptr<ca::CertificateAuthority>> LoadCa(const std::string& data_dir) {
  std::error_code ec;
  if (!fs::exists(ca::layout::CaCert(data_dir), ec) && !fs::exists(ca::layout::CaKey(data_dir), ec)) {
    if (!fs::is_directory(data_dir, ec)) {
      return absl::NotFoundError("data directory " + data_dir + " does not exist (run `ipfleet-controller init`)");
    }
    if (access(data_dir.c_str(), R_OK | X_OK) != 0) {
      return absl::PermissionDeniedError("data directory " + data_dir + " is not readable");
    }
  }
  return ca::CertificateAuthority::Load(data_dir);
}

int RunIssue(const IssueArgs& a) {
  const char* cmd = "ca issue";
  auto profile = ca::ParseProfile(a.profile);
  if (!profile.ok()) return offline::Fail(cmd, profile.status());
  if (auto st = CheckOutput(a.out); !st.ok()) return offline::Fail(cmd, st);
  auto csr = files::Read(a.csr);
  if (!csr.ok()) return offline::Fail(cmd, absl::Status(csr.status().code(), "--csr: " + std::string(csr.status().message())));
  auto authority = LoadCa(a.data_dir);
  if (!authority.ok()) return offline::Fail(cmd, authority.status());

  ca::IssueRequest req;
  req.common_name = a.name;
  req.ips = a.ips;
  req.dns = a.dns;
  req.days = a.days;
  req.profile = *profile;
  auto issued = (*authority)->Issue(*csr, req);
  if (!issued.ok()) return offline::Fail(cmd, issued.status());

  // Record before handing the certificate out: an unrecorded certificate could not be listed.
  absl::Status st = [&]() -> absl::Status {
    IPFLEET_ASSIGN_OR_RETURN(auto store, MaybeOpenInventory(a.data_dir));
    if (store == nullptr) {
      IPFLEET_RETURN_IF_ERROR(files::EnsureDir(ca::layout::IssuedDir(a.data_dir), 0700));
      return files::WriteAtomic(ca::layout::IssuedDir(a.data_dir) / (issued->serial_hex + ".pem"), issued->pem,
                                0644);
    }
    inventory::Certificate c;
    c.serial = issued->serial_hex;
    c.name = issued->common_name;
    c.kind = std::string(ca::ProfileName(issued->profile));
    c.not_before_unix = std::chrono::system_clock::to_time_t(issued->not_before);
    c.not_after_unix = std::chrono::system_clock::to_time_t(issued->not_after);
    c.ip_addresses = a.ips;
    c.dns_names = a.dns;
    c.pem = issued->pem;
    return store->Transact([&](inventory::Tx& tx) { return tx.PutCertificate(c); });
  }();
  if (!st.ok()) return offline::Fail(cmd, absl::Status(st.code(), "recording the certificate: " + std::string(st.message())));
  if (st = WriteOutput(a.out, issued->pem); !st.ok()) return offline::Fail(cmd, st);
  std::cerr << "issued certificate serial=" << issued->serial_hex << " name=" << issued->common_name
            << " profile=" << ca::ProfileName(issued->profile)
            << " not_after=" << std::chrono::system_clock::to_time_t(issued->not_after) << "\n";
  return 0;
}

int RunRevoke(const RevokeArgs& a) {
  const char* cmd = "ca revoke";
  auto serial = ca::NormalizeSerialHex(a.serial);
  if (!serial.ok()) return offline::Fail(cmd, serial.status());
  auto reason = ca::ParseRevocationReason(a.reason);
  if (!reason.ok()) return offline::Fail(cmd, reason.status());
  auto authority = LoadCa(a.data_dir);
  if (!authority.ok()) return offline::Fail(cmd, authority.status());
  auto store = MaybeOpenInventory(a.data_dir);
  if (!store.ok()) return offline::Fail(cmd, store.status());

  bool known = false;
  std::error_code ec;
  if (*store != nullptr) {
    known = (*store)->GetCertificate(*serial).ok();
  } else {
    known = fs::exists(ca::layout::IssuedDir(a.data_dir) / (*serial + ".pem"), ec);
  }
  if (!known) {
    std::cerr << "warning: serial " << *serial << " is not among the certificates recorded in "
              << a.data_dir << "; revoking it anyway\n";
  }
  if (auto st = (*authority)->Revoke(*serial, *reason); !st.ok()) return offline::Fail(cmd, st);
  if (*store != nullptr) {
    int64_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    absl::Status st = (*store)->Transact([&](inventory::Tx& tx) {
      return tx.RevokeCertificate(*serial, std::string(ca::RevocationReasonName(*reason)), now);
    });
    if (!st.ok()) {
      return offline::Fail(cmd, absl::Status(st.code(), "revoked in the CA (the CRL will list it) but recording "
                                                        "it in the inventory failed: " + std::string(st.message())));
    }
  }
  std::cerr << "revoked serial=" << *serial << " reason=" << ca::RevocationReasonName(*reason)
            << " (run `ipfleet-controller ca crl` to publish a new CRL)\n";
  return 0;
}

int RunCrl(const CrlArgs& a) {
  const char* cmd = "ca crl";
  if (auto st = CheckOutput(a.out); !st.ok()) return offline::Fail(cmd, st);
  auto authority = LoadCa(a.data_dir);
  if (!authority.ok()) return offline::Fail(cmd, authority.status());
  auto crl = (*authority)->Crl(std::chrono::hours(24) * a.days);
  if (!crl.ok()) return offline::Fail(cmd, crl.status());
  if (auto st = WriteOutput(a.out, crl->pem); !st.ok()) return offline::Fail(cmd, st);
  std::cerr << "CRL number=" << crl->crl_number << " revoked=" << (*authority)->Revoked().size()
            << " next_update=" << std::chrono::system_clock::to_time_t(crl->next_update) << "\n";
  return 0;
}

CLI::Option* DataDir(CLI::App* cmd, std::string& dir) {
  return cmd->add_option("--data-dir", dir, "Controller data directory made by `ipfleet-controller init`")
      ->required()
      ->type_name("DIR");
}

}  // namespace

void RegisterCaCommands(CLI::App& app, Action* action) {
  CLI::App* ca_cmd = app.add_subcommand("ca", "Operate the fleet CA directly (works with no controller running)");
  ca_cmd->require_subcommand(1);

  auto issue = std::make_shared<IssueArgs>();
  CLI::App* i = ca_cmd->add_subcommand(
      "issue",
      "Issue a certificate for the key in a CSR. The CSR's signature and key type are checked\n"
      "(EC P-256/P-384 or RSA >= 2048); its subject and requested extensions are ignored: the\n"
      "subject CN and subjectAltNames come only from --name, --ip and --dns.");
  DataDir(i, issue->data_dir);
  i->add_option("--csr", issue->csr, "PEM certificate signing request")->required()->type_name("FILE");
  i->add_option("--name", issue->name, "Subject common name (the host's inventory name)")->required();
  i->add_option("--ip", issue->ips, "IP address for subjectAltName (repeatable)")->type_name("IP");
  i->add_option("--dns", issue->dns, "DNS name for subjectAltName (repeatable)")->type_name("NAME");
  i->add_option("--days", issue->days, "Validity in days")->check(CLI::Range(1, 3650))->capture_default_str();
  i->add_option("--profile", issue->profile,
                "host: IKE + TLS client (agents); external: IKE peer outside ipfleet; controller: TLS server")
      ->check(CLI::IsMember({"host", "external", "controller"}))
      ->capture_default_str();
  i->add_option("--out", issue->out, "Where to write the certificate (PEM; - for stdout)")->required()->type_name("FILE");
  i->callback([issue, action] { *action = [issue] { return RunIssue(*issue); }; });

  auto revoke = std::make_shared<RevokeArgs>();
  CLI::App* r = ca_cmd->add_subcommand(
      "revoke", "Revoke a certificate by serial number; the next `ca crl` lists it");
  DataDir(r, revoke->data_dir);
  r->add_option("--serial", revoke->serial, "Serial number in hex (colons and 0x allowed)")->required()->type_name("HEX");
  r->add_option("--reason", revoke->reason,
                "RFC 5280 reason: unspecified, keyCompromise, cACompromise, affiliationChanged,\n"
                "superseded, cessationOfOperation, certificateHold, privilegeWithdrawn, aACompromise")
      ->capture_default_str();
  r->callback([revoke, action] { *action = [revoke] { return RunRevoke(*revoke); }; });

  auto crl = std::make_shared<CrlArgs>();
  CLI::App* c = ca_cmd->add_subcommand(
      "crl", "Generate a new CRL (v2, next CRL number) listing every revoked certificate");
  DataDir(c, crl->data_dir);
  c->add_option("--out", crl->out, "Where to write the CRL (PEM; - for stdout)")->required()->type_name("FILE");
  c->add_option("--days", crl->days, "Days until nextUpdate")->check(CLI::Range(1, 365))->capture_default_str();
  c->callback([crl, action] { *action = [crl] { return RunCrl(*crl); }; });
}

}  // namespace ipfleet::controller
