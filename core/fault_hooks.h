#pragma once

#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

namespace hgj::core {

/// Faults the tests inject into the running daemon (`hgj-gateway run`), read once from the
/// environment variable HGJ_FAULTS: `name=value` pairs separated by commas, e.g.
/// `HGJ_FAULTS=commit_stall_ms=1000,wedge_pipeline_after_ms=3000`. Unset (always, outside tests)
/// every hook is off and costs one branch on a cached value. Each hook is documented where it
/// is read and listed in docs/reliability.md.
inline std::optional<int64_t> faultHook(std::string_view name) {
  static const std::string spec = [] {
    const char* e = std::getenv("HGJ_FAULTS");
    return e != nullptr ? std::string(e) : std::string();
  }();
  if (spec.empty()) {
    return std::nullopt;
  }
  size_t pos = 0;
  while (pos <= spec.size()) {
    size_t end = spec.find(',', pos);
    if (end == std::string::npos) {
      end = spec.size();
    }
    std::string_view item(spec.data() + pos, end - pos);
    size_t eq = item.find('=');
    if (eq != std::string_view::npos && item.substr(0, eq) == name) {
      return std::strtoll(std::string(item.substr(eq + 1)).c_str(), nullptr, 10);
    }
    pos = end + 1;
  }
  return std::nullopt;
}

} // namespace hgj::core
