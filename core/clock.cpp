#include "core/clock.h"

namespace hgj::core {

SystemClock& SystemClock::instance() {
  static SystemClock clock;
  return clock;
}

} // namespace hgj::core
