// Assertion helpers for interop tests: a failed Status prints its message, and more context can be streamed.
#pragma once

#include <gtest/gtest.h>

#include "ipfleet/common/status.h"

namespace ipfleet::interop {

inline absl::Status StatusOf(const absl::Status& s) { return s; }
template <typename T>
absl::Status StatusOf(const absl::StatusOr<T>& s) {
  return s.status();
}

}  // namespace ipfleet::interop

// ASSERT_OK(expr) << "context";  works for Status and StatusOr.
#define ASSERT_OK(expr)                                                          \
  if (::absl::Status ipfleet_s_ = ::ipfleet::interop::StatusOf(expr); ipfleet_s_.ok()) { \
  } else                                                                         \
    GTEST_FAIL() << #expr << ": " << ipfleet_s_ << " "
#define EXPECT_OK(expr)                                                          \
  if (::absl::Status ipfleet_s_ = ::ipfleet::interop::StatusOf(expr); ipfleet_s_.ok()) { \
  } else                                                                         \
    ADD_FAILURE() << #expr << ": " << ipfleet_s_ << " "
