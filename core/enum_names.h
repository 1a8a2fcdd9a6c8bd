#pragma once

#include <cstddef>
#include <optional>
#include <string_view>
#include <utility>

namespace hgj::core {

/// The spellings of an enum's values (in config, on the wire, in the API, in metrics labels),
/// written once as one table and read both ways, so a name and its parser cannot drift apart:
///
///   constexpr core::EnumNames<Quality, 3> kQualityNames{{
///       {Quality::Good, "good"}, {Quality::Stale, "stale"}, {Quality::Bad, "bad"}}};
///   const char* qualityName(Quality q) { return kQualityNames.name(q, "bad"); }
///
/// A linear scan: these tables hold a handful of entries.
template <typename E, std::size_t N>
struct EnumNames {
  std::pair<E, const char*> entries[N];

  /// The spelling of `e`, or `fallback` for a value outside the table (a value read from a
  /// corrupted row or cast from a wider integer).
  constexpr const char* name(E e, const char* fallback) const {
    for (const auto& [value, text] : entries) {
      if (value == e) {
        return text;
      }
    }
    return fallback;
  }

  /// The value spelled `s` exactly, if any.
  constexpr std::optional<E> parse(std::string_view s) const {
    for (const auto& [value, text] : entries) {
      if (s == text) {
        return value;
      }
    }
    return std::nullopt;
  }
};

} // namespace hgj::core
