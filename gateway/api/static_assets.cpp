#include "gateway/api/static_assets.h"

#include <map>

namespace hgj::api {

namespace {

const std::map<std::string, StaticAsset, std::less<>>& assets() {
  static const auto* map = [] {
    auto* m = new std::map<std::string, StaticAsset, std::less<>>();
    for (const EmbeddedFile* f = kEmbeddedFiles; f->name != nullptr; ++f) {
      StaticAsset a;
      a.name = f->name;
      a.content_type = contentTypeFor(a.name);
      for (const char* const* c = f->chunks; *c != nullptr; ++c) {
        a.body += *c;
      }
      m->emplace(a.name, std::move(a));
    }
    return m;
  }();
  return *map;
}

bool endsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

} // namespace

const StaticAsset* embeddedAsset(std::string_view name) {
  const auto& m = assets();
  auto it = m.find(name);
  return it == m.end() ? nullptr : &it->second;
}

std::string embeddedAssetNames() {
  std::string out;
  for (const auto& [name, a] : assets()) {
    out += (out.empty() ? "" : " ") + name;
  }
  return out;
}

std::string contentTypeFor(std::string_view name) {
  static constexpr std::pair<std::string_view, const char*> kTypes[] = {
      {".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"}, {".svg", "image/svg+xml"},
      {".json", "application/json"}, {".webmanifest", "application/json"},
      {".png", "image/png"}, {".txt", "text/plain; charset=utf-8"}, {".ico", "image/x-icon"}};
  for (const auto& [suffix, type] : kTypes) {
    if (endsWith(name, suffix)) {
      return type;
    }
  }
  return "application/octet-stream";
}

bool safeAssetName(std::string_view name) {
  if (name.empty() || name.size() > 64 || name.front() == '.') {
    return false;
  }
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_';
    if (!ok) {
      return false;
    }
  }
  return name.find("..") == std::string_view::npos;
}

} // namespace hgj::api
