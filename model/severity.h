#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace hgj::model {

/// How urgent an alert is. One type for the rules that raise alerts and the alert manager that
/// routes them, so nothing translates between the two.
enum class Severity : uint8_t { Info, Warning, Critical };

/// "info" | "warning" | "critical" (the API's and the database's spelling).
const char* severityName(Severity s);

/// The inverse of severityName: the one place a severity is read, from the rules file, the
/// alerts file or the database. nullopt for any other text.
std::optional<Severity> parseSeverity(std::string_view name);

} // namespace hgj::model
