#pragma once

#include <string>
#include <vector>

namespace ipfleet::inventory {

struct Migration {
  int version;  // 1, 2, ... consecutive
  const char* description;
  const char* sql;
};

// All migrations in order.
const std::vector<Migration>& Migrations();

}  // namespace ipfleet::inventory
