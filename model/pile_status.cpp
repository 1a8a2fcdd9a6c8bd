#include "model/pile_status.h"

#include <algorithm>
#include <cctype>
#include <string>

namespace hgj::model {

PileStatus pileStatus(std::string_view state) {
  std::string s(state);
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (s.empty()) {
    return PileStatus::Unknown;
  }
  if (s == "charging" || s == "suspendedev" || s == "suspendedevse" || s == "finishing" ||
      s == "c" || s == "d") {
    return PileStatus::Charging;
  }
  if (s == "faulted" || s == "unavailable" || s == "fault" || s == "error" || s == "e" ||
      s == "f") {
    return PileStatus::Faulted;
  }
  return PileStatus::Idle;
}

const char* pileStatusName(PileStatus s) {
  switch (s) {
  case PileStatus::Unknown:
    return "unknown";
  case PileStatus::Idle:
    return "idle";
  case PileStatus::Charging:
    return "charging";
  case PileStatus::Faulted:
    return "faulted";
  }
  return "unknown";
}

} // namespace hgj::model
