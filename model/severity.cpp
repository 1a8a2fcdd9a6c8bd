#include "model/severity.h"

namespace hgj::model {

const char* severityName(Severity s) {
  switch (s) {
  case Severity::Info:
    return "info";
  case Severity::Warning:
    return "warning";
  case Severity::Critical:
    return "critical";
  }
  return "warning";
}

std::optional<Severity> parseSeverity(std::string_view name) {
  for (Severity s : {Severity::Info, Severity::Warning, Severity::Critical}) {
    if (name == severityName(s)) {
      return s;
    }
  }
  return std::nullopt;
}

} // namespace hgj::model
