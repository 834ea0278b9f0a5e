#include "static_assets.h"

namespace tinyemo::server {

const StaticAsset* find_static_asset(std::string_view path) {
  if (path == "/") path = "/index.html";
  for (size_t i = 0; i < kStaticAssetCount; ++i) {
    if (kStaticAssets[i].path == path) return &kStaticAssets[i];
  }
  return nullptr;
}

}  // namespace tinyemo::server
