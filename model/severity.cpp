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

} // namespace hgj::model
