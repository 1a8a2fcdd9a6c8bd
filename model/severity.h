#pragma once

#include <cstdint>

namespace hgj::model {

/// How urgent an alert is. One type for the rules that raise alerts and the alert manager that
/// routes them, so nothing translates between the two.
enum class Severity : uint8_t { Info, Warning, Critical };

/// "info" | "warning" | "critical" (the API's and the database's spelling).
const char* severityName(Severity s);

} // namespace hgj::model
