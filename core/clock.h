#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace hgj::core {

using SteadyTime = std::chrono::steady_clock::time_point;
using Millis = std::chrono::milliseconds;

/// The time source every component takes by reference, so rules with durations and retry
/// backoffs are tested without sleeping. Durations are always measured on steadyNow(); wallMs()
/// only stamps records (a wall clock jump never shortens or lengthens a hold time).
/// Thread-safe: called from every thread.
class Clock {
public:
  virtual ~Clock() = default;
  virtual SteadyTime steadyNow() const = 0;
  /// Unix time in milliseconds.
  virtual int64_t wallMs() const = 0;
};

class SystemClock final : public Clock {
public:
  SteadyTime steadyNow() const override { return std::chrono::steady_clock::now(); }
  int64_t wallMs() const override {
    return std::chrono::duration_cast<Millis>(
               std::chrono::system_clock::now().time_since_epoch())
               .count() +
           faultOffsetMs();
  }
  /// The process-wide instance.
  static SystemClock& instance();

private:
  /// 0 unless a test set the wall-clock faults of HGJ_FAULTS (core/fault_hooks.h).
  static int64_t faultOffsetMs();
};

/// A clock that moves only when told to; steady and wall time advance together unless the wall
/// clock is set explicitly (to test clock jumps).
class ManualClock final : public Clock {
public:
  explicit ManualClock(int64_t wall_ms = 1'700'000'000'000) : wall_ms_(wall_ms) {}
  SteadyTime steadyNow() const override { return SteadyTime(Millis(steady_ms_.load())); }
  int64_t wallMs() const override { return wall_ms_.load(); }
  void advance(Millis d) {
    steady_ms_ += d.count();
    wall_ms_ += d.count();
  }
  void setWallMs(int64_t wall_ms) { wall_ms_ = wall_ms; }

private:
  std::atomic<int64_t> steady_ms_{1'000'000};
  std::atomic<int64_t> wall_ms_;
};

/// Milliseconds on the steady clock, for storing in plain integers.
inline int64_t steadyMs(const Clock& c) {
  return std::chrono::duration_cast<Millis>(c.steadyNow().time_since_epoch()).count();
}

} // namespace hgj::core
