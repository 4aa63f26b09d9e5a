// The dashboard's static files, compiled into the binary (cmake/EmbedAssets.cmake writes the
// table from controller/dashboard/assets/).
#pragma once

#include <cstddef>
#include <string_view>

namespace ipfleet::controller::dashboard {

struct Asset {
  std::string_view path;  // "/index.html", "/app.js"
  std::string_view content_type;
  std::string_view body;
};

extern const Asset kAssets[];
extern const size_t kAssetCount;

inline const Asset* FindAsset(std::string_view path) {
  for (size_t i = 0; i < kAssetCount; ++i) {
    if (kAssets[i].path == path) return &kAssets[i];
  }
  return nullptr;
}

}  // namespace ipfleet::controller::dashboard
