// The inventory's queries over a sql::Connection (sql_ops.cc), shared by both stores.
#pragma once

#include <memory>
#include <string>

#include "ipfleet/controller/inventory/store.h"
#include "sql.h"

namespace ipfleet::inventory {

// What the two databases spell differently in a query.
struct Dialect {
  // Breaks ties between certificates with the same not_before: insertion order, newest first.
  std::string cert_insertion_order;  // "c.rowid" (SQLite), "c.seq" (PostgreSQL)
  // A subquery of the strings of the JSON array bound to its one parameter, for `IN (...)`
  // over many names in one statement.
  std::string strings_of_json_array;
};

// Every Reader and Tx operation on `connection`; the caller serialises access to it and opens
// the transaction around writes.
std::unique_ptr<Tx> NewSqlOps(sql::Connection& connection, Dialect dialect);

}  // namespace ipfleet::inventory
