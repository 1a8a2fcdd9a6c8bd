#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace hgj::core {

/// Unix milliseconds -> RFC 3339 UTC with milliseconds ("2026-11-27T14:12:00.123Z").
std::string rfc3339(int64_t unix_ms);
/// RFC 3339 (as ChirpStack writes it, any fraction, Z or offset) -> Unix milliseconds.
std::optional<int64_t> parseRfc3339(std::string_view text);

} // namespace hgj::core
