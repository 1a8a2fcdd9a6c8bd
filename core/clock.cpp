#include "core/clock.h"

#include "core/fault_hooks.h"

namespace hgj::core {

SystemClock& SystemClock::instance() {
  static SystemClock clock;
  return clock;
}

int64_t SystemClock::faultOffsetMs() {
  // Test-only wall-clock faults (docs/reliability.md row 17, against the daemon):
  // wall_offset_ms shifts the wall clock from the start (a box that boots at
  // 1970); wall_jump_ms is added once wall_jump_after_ms have passed on the steady clock since the
  // first read of the wall clock (an NTP step mid-run). The steady clock is never touched.
  struct Faults {
    int64_t offset = 0;
    int64_t jump = 0;
    Millis after{0};
    SteadyTime t0;
    bool any = false;
  };
  static const Faults f = [] {
    Faults r;
    r.offset = faultHook("wall_offset_ms").value_or(0);
    r.jump = faultHook("wall_jump_ms").value_or(0);
    r.after = Millis(faultHook("wall_jump_after_ms").value_or(0));
    r.t0 = std::chrono::steady_clock::now();
    r.any = r.offset != 0 || r.jump != 0;
    return r;
  }();
  if (!f.any) {
    return 0;
  }
  return f.offset + (std::chrono::steady_clock::now() - f.t0 >= f.after ? f.jump : 0);
}

} // namespace hgj::core
