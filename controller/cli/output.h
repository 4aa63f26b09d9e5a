// Table and JSON output for the CLI. JSON goes through nlohmann::json so scripts get numbers as
// numbers; tables are aligned columns with a header.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace ipfleet::cli {

class Table {
 public:
  explicit Table(std::vector<std::string> header) : rows_{std::move(header)} {}
  void Add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void Print() const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

void PrintJson(const nlohmann::json& j);
// "2026-11-23T06:00:00Z", or "never" for 0.
std::string FormatTime(int64_t t_unix);
// "12s ago", "3m ago", "never".
std::string Ago(int64_t t_unix, int64_t now);
std::string Join(const std::vector<std::string>& v, const std::string& sep);

}  // namespace ipfleet::cli
