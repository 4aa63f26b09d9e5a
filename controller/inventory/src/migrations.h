#pragma once

#include <string>
#include <vector>

namespace ipfleet::inventory {

struct Migration {
  int version;  // 1, 2, ... consecutive
  const char* description;
  const char* sql;
};

// All migrations in order, for each database (the same versions in both).
const std::vector<Migration>& SqliteMigrations();
const std::vector<Migration>& PostgresMigrations();

}  // namespace ipfleet::inventory
