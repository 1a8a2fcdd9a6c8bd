#include "model/pile_status.h"

#include <algorithm>
#include <cctype>
#include <string>

#include "core/enum_names.h"

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

constexpr core::EnumNames<PileStatus, 4> kPileStatusNames{
    {{PileStatus::Unknown, "unknown"}, {PileStatus::Idle, "idle"},
     {PileStatus::Charging, "charging"}, {PileStatus::Faulted, "faulted"}}};

const char* pileStatusName(PileStatus s) { return kPileStatusNames.name(s, "unknown"); }

} // namespace hgj::model
