// File helpers that never leave a half-written file behind.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <string_view>

#include "ipfleet/common/status.h"

namespace ipfleet::files {

// Writes `data` to `path` atomically: a temporary file in the same directory with `mode`,
// fsync, rename over the target, fsync the directory. Readers see the old or the new
// content, never a mix; on error the target is untouched and the temporary removed.
absl::Status WriteAtomic(const std::filesystem::path& path, std::string_view data, mode_t mode);

// Reads a whole file; the error names the path and errno text.
absl::StatusOr<std::string> Read(const std::filesystem::path& path);

// Creates a directory (and parents) with `mode`; fine if it already exists.
absl::Status EnsureDir(const std::filesystem::path& path, mode_t mode);

}  // namespace ipfleet::files
