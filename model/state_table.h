#pragma once

#include <cstdint>
#include <vector>

#include "core/clock.h"
#include "model/compound.h"
#include "model/reading.h"

namespace hgj::model {

/// The live state of one point.
struct PointState {
  Value value;
  Quality quality = Quality::Stale;
  int64_t source_ms = 0;   ///< source time of the last reading
  int64_t updated_ms = 0;  ///< wall time the last reading arrived
  /// Wall time the point entered its current value (persisted: survives restarts).
  int64_t since_ms = 0;
  /// The same instant on the steady clock; durations are measured on this, never on wall time.
  core::SteadyTime since_steady{};
  core::SteadyTime updated_steady{};
};

struct DeviceState {
  bool online = false;
  bool ever_seen = false;
  int64_t last_seen_ms = 0;
  core::SteadyTime last_seen_steady{};
  std::vector<PointState> points;  ///< by slot of the device profile's points
};

/// What applying a reading did.
struct ApplyResult {
  bool known = false;          ///< the point belongs to the device's profile
  bool value_changed = false;  ///< entered a new value (since_ms was reset)
  bool came_online = false;    ///< the device was offline or never seen before
};

/// The compound's live state. Owned and mutated by the pipeline thread only; rules read it
/// through a const reference during evaluation, so no locks are needed.
class StateTable {
public:
  explicit StateTable(const Compound& compound);

  const Compound& compound() const { return compound_; }

  /// Applies a reading: stores value and quality, moves since-when only when the value changed.
  ApplyResult apply(const Reading& r, core::SteadyTime now_steady);

  /// Restores a persisted point (at start-up): the since-when continues from `since_ms`, mapped
  /// onto the steady clock as "now minus the wall time that has passed".
  void restore(DeviceIndex device, PointId point, const Value& value, Quality quality,
               int64_t source_ms, int64_t since_ms, int64_t updated_ms, int64_t now_wall_ms,
               core::SteadyTime now_steady);

  /// Marks a device offline and its points stale. Returns false if it already was.
  bool markOffline(DeviceIndex device);
  /// Marks a device online (a Modbus poll succeeded without new values).
  bool markOnline(DeviceIndex device, int64_t now_ms, core::SteadyTime now_steady);

  const DeviceState& device(DeviceIndex d) const { return devices_[d]; }
  /// nullptr when the point is not part of the device's profile.
  const PointState* point(DeviceIndex d, PointId p) const;
  /// Convenience for rules: the value if the point exists and its quality is good.
  const Value* goodValue(DeviceIndex d, PointId p) const;

  size_t deviceCount() const { return devices_.size(); }

private:
  const Compound& compound_;
  std::vector<DeviceState> devices_;
};

} // namespace hgj::model
