// Where the compiler gets randomness for static keys. Injected so the compiler itself stays a pure
// function: production passes the OpenSSL DRBG, tests a seeded deterministic source.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "ipfleet/common/status.h"

namespace ipfleet::policy {

class KeySource {
 public:
  virtual ~KeySource() = default;
  virtual absl::StatusOr<std::string> RandomBytes(size_t n) = 0;
};

// RAND_bytes from OpenSSL's DRBG.
class OpenSslKeySource final : public KeySource {
 public:
  absl::StatusOr<std::string> RandomBytes(size_t n) override;
};

// Reproducible bytes from a seed (SHA-256 in counter mode). For tests and benchmarks only.
class DeterministicKeySource final : public KeySource {
 public:
  explicit DeterministicKeySource(uint64_t seed) : seed_(seed) {}
  absl::StatusOr<std::string> RandomBytes(size_t n) override;

 private:
  uint64_t seed_;
  uint64_t counter_ = 0;
};

}  // namespace ipfleet::policy
