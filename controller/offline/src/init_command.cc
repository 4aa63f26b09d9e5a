// `ipfleet-controller init`: a fresh data directory with the CA, the controller's TLS
// certificate, the policy-signing certificate and an empty inventory database.
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

struct InitArgs {
  std::string data_dir;
  std::string ca_key = "ecdsa-p256";
  std::string name = "ipfleet CA";
  std::vector<std::string> addresses;
};

// Records a certificate init made in the inventory so `certs list` shows it.
absl::Status RecordCertificate(inventory::Tx& tx, const fs::path& path, const std::string& kind) {
  IPFLEET_ASSIGN_OR_RETURN(std::string pem, files::Read(path));
  IPFLEET_ASSIGN_OR_RETURN(ca::CertInfo info, ca::InspectCertificatePem(pem));
  inventory::Certificate c;
  c.serial = info.serial_hex;
  c.name = info.subject_cn;
  c.kind = kind;
  c.not_before_unix = std::chrono::system_clock::to_time_t(info.not_before);
  c.not_after_unix = std::chrono::system_clock::to_time_t(info.not_after);
  c.ip_addresses = info.ips;
  c.dns_names = info.dns;
  c.pem = pem;
  return tx.PutCertificate(c);
}

int RunInit(const InitArgs& args) {
  const fs::path dir(args.data_dir);
  auto key_type = ca::ParseKeyType(args.ca_key);
  if (!key_type.ok()) return offline::Fail("init", key_type.status());
  std::error_code ec;
  const bool db_existed = fs::exists(ca::layout::InventoryDb(dir), ec);
  const bool tls_existed = fs::exists(ca::layout::TlsDir(dir), ec);

  ca::ControllerInitOptions opts;
  opts.ca.key_type = *key_type;
  opts.ca.name = args.name;
  opts.addresses = args.addresses;
  // Validates everything first and removes what it wrote if anything fails.
  auto authority = ca::InitControllerPki(dir, opts);
  if (!authority.ok()) return offline::Fail("init", authority.status());

  absl::Status st = [&]() -> absl::Status {
    IPFLEET_ASSIGN_OR_RETURN(auto store, inventory::OpenSqliteStore(ca::layout::InventoryDb(dir)));
    return store->Transact([&](inventory::Tx& tx) -> absl::Status {
      IPFLEET_RETURN_IF_ERROR(RecordCertificate(tx, ca::layout::ControllerCert(dir), "controller"));
      return RecordCertificate(tx, ca::layout::PolicySignerCert(dir), "policy-signer");
    });
  }();
  if (!st.ok()) {
    // Leave the directory as it was: a half-initialised controller is worse than none.
    fs::remove_all(ca::layout::CaDir(dir), ec);
    if (!tls_existed) fs::remove_all(ca::layout::TlsDir(dir), ec);
    if (!db_existed) {
      for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
        fs::remove(ca::layout::InventoryDb(dir).string() + suffix, ec);
      }
    }
    return offline::Fail("init", absl::Status(st.code(), "inventory database: " + std::string(st.message())));
  }

  std::cout << "Initialised controller data directory " << dir.string() << "\n"
            << "  CA certificate:        " << ca::layout::CaCert(dir).string() << " ("
            << ca::KeyTypeName((*authority)->key_type()) << ")\n"
            << "  CA key (0600):         " << ca::layout::CaKey(dir).string() << "\n"
            << "  controller TLS cert:   " << ca::layout::ControllerCert(dir).string() << "\n"
            << "  policy-signing cert:   " << ca::layout::PolicySignerCert(dir).string() << "\n"
            << "  inventory database:    " << ca::layout::InventoryDb(dir).string() << "\n"
            << "CA fingerprint (SHA-256, pin this on agents):\n  " << (*authority)->Fingerprint() << "\n";
  return 0;
}

}  // namespace

void RegisterInitCommand(CLI::App& app, Action* action) {
  auto args = std::make_shared<InitArgs>();
  CLI::App* cmd = app.add_subcommand(
      "init",
      "Create a new controller data directory: the fleet CA (DIR/ca/ca.crt, DIR/ca/ca.key 0600),\n"
      "the controller's TLS certificate (DIR/tls/), the policy-signing certificate and an empty\n"
      "inventory database (DIR/inventory.db). Refuses to overwrite an existing CA.");
  cmd->add_option("--data-dir", args->data_dir, "Controller data directory (created if missing)")
      ->required()
      ->type_name("DIR");
  cmd->add_option("--ca-key", args->ca_key, "Key type of the CA and the controller's own keys")
      ->check(CLI::IsMember({"ecdsa-p256", "rsa-3072"}))
      ->capture_default_str();
  cmd->add_option("--name", args->name, "Common name of the CA certificate")->capture_default_str();
  cmd->add_option("--address", args->addresses,
                  "IP address or DNS name agents use to reach the controller; goes into the TLS\n"
                  "certificate's subjectAltName (repeatable; default: 127.0.0.1 localhost)")
      ->type_name("IP_OR_DNS");
  cmd->callback([args, action] { *action = [args] { return RunInit(*args); }; });
}

}  // namespace ipfleet::controller
