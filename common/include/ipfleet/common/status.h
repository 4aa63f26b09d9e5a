// Error handling conventions: absl::Status / absl::StatusOr across module boundaries.
#pragma once

#include <absl/status/status.h>
#include <absl/status/statusor.h>

// Returns early with the error when `expr` (an absl::Status) is not OK.
#define IPFLEET_RETURN_IF_ERROR(expr)              \
  do {                                             \
    ::absl::Status ipfleet_status_ = (expr);       \
    if (!ipfleet_status_.ok()) return ipfleet_status_; \
  } while (0)

#define IPFLEET_CONCAT_INNER(a, b) a##b
#define IPFLEET_CONCAT(a, b) IPFLEET_CONCAT_INNER(a, b)

// Declares `lhs` from an absl::StatusOr<T> expression, returning the error when it failed.
#define IPFLEET_ASSIGN_OR_RETURN(lhs, expr) \
  IPFLEET_ASSIGN_OR_RETURN_IMPL(IPFLEET_CONCAT(ipfleet_statusor_, __LINE__), lhs, expr)

#define IPFLEET_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) return tmp.status();                 \
  lhs = std::move(tmp).value()
