// The web page's files, compiled into the binary (cmake/EmbedFiles.cmake
// generates their table from src/apps/server/web/): the page works offline
// and the server reads no files at run time.
#pragma once

#include <cstddef>
#include <string_view>

namespace tinyemo::server {

struct StaticAsset {
  const char* path;          // "/index.html", "/app.js", ...
  const char* content_type;
  std::string_view body;
};

extern const StaticAsset kStaticAssets[];
extern const size_t kStaticAssetCount;

// The asset served at `path` ("/" is /index.html); null when none.
const StaticAsset* find_static_asset(std::string_view path);

}  // namespace tinyemo::server
