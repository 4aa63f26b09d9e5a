// `ipfleet-controller migrate-inventory --data-dir DIR --to postgresql://...`: moves an inventory
// (by default the data directory's SQLite file) into a new, empty PostgreSQL database, with a
// line per table, so that several replicas can serve it (docs/high-availability.md).
#include <cstdio>
#include <memory>
#include <string>

#include "ipfleet/ca/layout.h"
#include "ipfleet/controller/inventory/copy_inventory.h"
#include "ipfleet/controller/offline/commands.h"
#include "output.h"

namespace ipfleet::controller {
namespace {

struct MigrateArgs {
  std::string data_dir;
  std::string from = "sqlite";
  std::string to;
};

int RunMigrate(const MigrateArgs& a) {
  absl::Status st = inventory::CopyInventory(
      a.from, a.to, ca::layout::InventoryDb(a.data_dir),
      [](const std::string& table, int64_t rows) {
        std::printf("  %-18s %lld row(s)\n", table.c_str(), static_cast<long long>(rows));
        std::fflush(stdout);
      });
  if (!st.ok()) return offline::Fail("migrate-inventory", st);
  std::printf("inventory copied. Point every replica at it: ipfleet-controller serve --inventory URI (or write the URI "
              "to DATA_DIR/inventory.url, mode 0600)\n");
  return 0;
}

}  // namespace

void RegisterMigrateInventoryCommand(CLI::App& app, Action* action) {
  auto args = std::make_shared<MigrateArgs>();
  CLI::App* cmd = app.add_subcommand(
      "migrate-inventory",
      "Copy the whole inventory (hosts, certificates, revocations, generations, bundles, rollouts, commands,\n"
      "audit log) into a new, empty inventory, typically from the data directory's SQLite file to a\n"
      "PostgreSQL database shared by several controller replicas. Stop the controller first. The copy is\n"
      "one transaction: it lands whole or not at all; the source is not changed.");
  cmd->add_option("--data-dir", args->data_dir, "Controller data directory (for the default SQLite inventory)")
      ->required()
      ->type_name("DIR");
  cmd->add_option("--from", args->from, "Source inventory: sqlite, sqlite:PATH or postgresql://...")
      ->capture_default_str();
  cmd->add_option("--to", args->to, "Destination inventory, e.g. postgresql://ipfleet@db.example.net:5432/ipfleet")
      ->required();
  cmd->callback([args, action] { *action = [args] { return RunMigrate(*args); }; });
}

}  // namespace ipfleet::controller
