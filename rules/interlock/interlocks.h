#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/clock.h"
#include "model/compound.h"
#include "model/value.h"

namespace hgj::rules {

/// A point a safety rule cut: it stays at `value` until an operator overrides it.
struct Latch {
  model::DeviceIndex device = model::kNoDevice;
  model::PointId point = 0;
  model::Value value;   ///< the safe value written (relay false)
  std::string rule;     ///< the safety rule that cut it
  std::string reason;   ///< "temp_c 75 > 60 for 10s"
  int64_t since_ms = 0; ///< wall time of the cut (Unix ms)
};

/// The interlocks of actuation: the latch set of safety cuts and the per-point write rate limit.
/// Owned by the Engine; pipeline thread only.
class Interlocks {
public:
  explicit Interlocks(std::chrono::milliseconds min_interval) : min_interval_(min_interval) {}

  /// Whether `value` may be written to the point. A latched point accepts only its safe value,
  /// unless `operator_override` (then the caller clears the latch once the write is done).
  /// `reason` (optional) says why not, or what the override overrides.
  bool mayWrite(model::DeviceIndex device, model::PointId point, const model::Value& value,
                bool operator_override, std::string* reason) const;

  void latch(Latch l);
  /// Removes a latch (operator action); false when there was none.
  bool clearLatch(model::DeviceIndex device, model::PointId point);
  const Latch* latched(model::DeviceIndex device, model::PointId point) const;
  /// Every latch, for persistence.
  std::vector<Latch> latches() const;

  /// Drops the rate limit's record of the point (after an operator wrote it).
  void forget(model::DeviceIndex device, model::PointId point) {
    last_writes_.erase(key(device, point));
  }

  enum class Admit : uint8_t { Write, Duplicate, RateLimited };
  /// Rate limit of rule writes per point: a write within `min_interval` of the previous one to
  /// the same point is refused, except a safety write of a different value (never held back);
  /// the same value again within the interval is a duplicate. Records admitted writes.
  Admit admitRuleWrite(model::DeviceIndex device, model::PointId point, const model::Value& value,
                       bool safety, core::SteadyTime now);

private:
  static uint64_t key(model::DeviceIndex d, model::PointId p) {
    return (static_cast<uint64_t>(d) << 16) | p;
  }
  struct LastWrite {
    model::Value value;
    core::SteadyTime at{};
  };

  std::chrono::milliseconds min_interval_;
  std::unordered_map<uint64_t, Latch> latches_;
  std::unordered_map<uint64_t, LastWrite> last_writes_;
};

} // namespace hgj::rules
