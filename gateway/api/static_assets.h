#pragma once

#include <string>
#include <string_view>

namespace hgj::api {

/// One file of the dashboard as embedded in the binary (gateway/api/static/, copied into
/// static_assets_data.cpp by gateway/api/embed_static.sh).
struct StaticAsset {
  std::string name;         ///< "index.html"
  std::string content_type; ///< "text/html; charset=utf-8"
  std::string body;
};

/// Defined in the generated static_assets_data.cpp: a null-terminated array of chunks per file
/// (each under the 64 KiB a string literal may portably hold), ended by a {nullptr, nullptr}.
struct EmbeddedFile {
  const char* name;
  const char* const* chunks;
};
extern const EmbeddedFile kEmbeddedFiles[];

/// The embedded file `name` ("index.html", "app.js"), or nullptr. Thread-safe (built once).
const StaticAsset* embeddedAsset(std::string_view name);

/// The content type for a file name by its extension.
std::string contentTypeFor(std::string_view name);

/// Whether `name` is a plain dashboard file name (no directories, no dot files): the only names
/// served from http.static_dir.
bool safeAssetName(std::string_view name);

/// Names of all embedded files (tests compare them with the files on disk).
std::string embeddedAssetNames();

} // namespace hgj::api
