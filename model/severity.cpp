#include "model/severity.h"

#include "core/enum_names.h"

namespace hgj::model {

namespace {

constexpr core::EnumNames<Severity, 3> kSeverityNames{{{Severity::Info, "info"},
                                                        {Severity::Warning, "warning"},
                                                        {Severity::Critical, "critical"}}};

} // namespace

const char* severityName(Severity s) { return kSeverityNames.name(s, "warning"); }

std::optional<Severity> parseSeverity(std::string_view name) {
  return kSeverityNames.parse(name);
}

} // namespace hgj::model
