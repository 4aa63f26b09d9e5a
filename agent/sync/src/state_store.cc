#include "ipfleet/agent/sync/state_store.h"

#include <absl/strings/escaping.h>
#include <absl/strings/str_cat.h>

#include <nlohmann/json.hpp>

#include "ipfleet/common/files.h"

namespace ipfleet::agent {
namespace {
constexpr size_t kKeptResults = 64;
}

StateStore::StateStore(std::filesystem::path data_dir) : dir_(std::move(data_dir) / "state") {}

absl::Status StateStore::Init() { return files::EnsureDir(dir_, 0700); }

absl::Status StateStore::SaveLastGoodBundle(const std::string& bytes) {
  return files::WriteAtomic(dir_ / "last-good.bundle", bytes, 0600);
}

absl::StatusOr<std::optional<std::string>> StateStore::LoadLastGoodBundle() const {
  auto path = dir_ / "last-good.bundle";
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return std::optional<std::string>();
  IPFLEET_ASSIGN_OR_RETURN(std::string data, files::Read(path));
  return std::optional<std::string>(std::move(data));
}

absl::StatusOr<StateStore::Journal> StateStore::LoadJournal() const {
  Journal j;
  auto path = dir_ / "commands.json";
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return j;
  IPFLEET_ASSIGN_OR_RETURN(std::string text, files::Read(path));
  auto doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return absl::DataLossError(absl::StrCat("json parse: ", path.string(), " is damaged"));
  }
  j.started = doc.value("started", uint64_t{0});
  j.executed = doc.value("executed", uint64_t{0});
  if (auto it = doc.find("results"); it != doc.end() && it->is_object()) {
    for (auto& [k, v] : it->items()) {
      std::string raw;
      if (!v.is_string() || !absl::Base64Unescape(v.get<std::string>(), &raw)) continue;
      j.results[std::stoull(k)] = std::move(raw);
    }
  }
  return j;
}

absl::Status StateStore::SaveJournal(const Journal& j) {
  nlohmann::json doc;
  doc["started"] = j.started;
  doc["executed"] = j.executed;
  nlohmann::json results = nlohmann::json::object();
  size_t skip = j.results.size() > kKeptResults ? j.results.size() - kKeptResults : 0;
  for (const auto& [id, raw] : j.results) {
    if (skip) {
      --skip;
      continue;
    }
    results[std::to_string(id)] = absl::Base64Escape(raw);
  }
  doc["results"] = results;
  return files::WriteAtomic(dir_ / "commands.json", doc.dump(), 0600);
}

}  // namespace ipfleet::agent
