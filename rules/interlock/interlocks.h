#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/compound.h"
#include "model/state_table.h"
#include "model/value.h"

namespace hgj::rules {

/// A point a safety rule cut: it stays at `value` until an allowed, recorded override.
struct Latch {
  model::DeviceIndex device = model::kNoDevice;
  model::PointId point = 0;
  model::Value value;   ///< the safe value written (relay false)
  std::string rule;     ///< the safety rule that cut it
  std::string reason;   ///< "temp_c 75 > 60 for 10s"
  int64_t since_ms = 0; ///< wall time of the cut (Unix ms)
};

/// Who asks for a write.
enum class Writer : uint8_t {
  Rule,      ///< a rule's action
  Operator,  ///< the local HTTP API, with the operator token (or open on loopback)
  Upstream,  ///< a command from the district platform (uplink)
  Gateway,   ///< the gateway itself (re-cutting a latched point found live)
};
const char* writerName(Writer w);

/// A write on its way to a device, as the gate judges it.
struct WriteIntent {
  model::DeviceIndex device = model::kNoDevice;
  model::PointId point = 0;
  model::Value value;
  Writer writer = Writer::Rule;
  bool override_latch = false;  ///< the writer asks to re-energize a safety-latched point
  bool recorded = false;        ///< its actuation record is durable
};

/// The local policy of the interlocks.
struct InterlockConfig {
  /// Overrides of a safety latch from the local API (operator token). Always on: the operator
  /// on site is who the latch waits for.
  bool operator_override = true;
  /// Overrides from the district platform: `uplink.commands.allow_override` (default off).
  bool upstream_override = false;
  /// Enabling a port is refused while its shed draws more than this (W); 0 = no limit.
  double shed_power_limit_w = 8000;
  /// The shed's meter point; when the shed has none (or no good reading of it), the sum of its
  /// ports' good readings of the same point.
  std::string shed_power_point = "power_w";
};

/// The interlocks of actuation: the latch set of safety cuts, the override policy and the shed
/// power limit, and the one decision every write passes on its way to a driver (admit()).
///
/// Owned by the pipeline (it outlives the rule engines a reload replaces) and used on the
/// pipeline thread only. The engine latches points through it; the pipeline's actuator asks
/// admit() right before each Driver::write (first send, retry, a write whose record just became
/// durable), so no path reaches a device around it. See docs/rules.md "The safety invariant".
class Interlocks {
public:
  using Listener = std::function<void(const Latch& latch, bool set)>;

  explicit Interlocks(const model::Compound& compound, InterlockConfig config = {});

  void configure(const InterlockConfig& config) { config_ = config; }
  const InterlockConfig& config() const { return config_; }
  /// Called for every latch set or cleared (the pipeline persists them). Optional.
  void setListener(Listener listener) { listener_ = std::move(listener); }

  /// Whether writing `value` removes power from the point: the value its profile declares
  /// `safe`. Such writes are never refused, held back or queued behind anything.
  bool deEnergizing(model::DeviceIndex device, model::PointId point,
                    const model::Value& value) const;

  /// The gate. A de-energizing write always passes. A write of another value than the latched
  /// one to a latched point passes only as an override (`override_latch`) from a writer the
  /// policy allows (operator; upstream only with `upstream_override`) whose record is durable.
  /// An energizing write to a port is refused while its shed draws more than the limit
  /// (`state` may be null: no power check). `reason` (optional) says why not, or what an
  /// override overrides.
  bool admit(const WriteIntent& write, const model::StateTable* state,
             std::string* reason) const;

  /// Latches a point (a safety cut); replaces an earlier latch of it.
  void latch(Latch l);
  /// Removes a latch (after an allowed override was confirmed); false when there was none.
  bool clearLatch(model::DeviceIndex device, model::PointId point);
  const Latch* latched(model::DeviceIndex device, model::PointId point) const;
  bool anyLatched() const { return !latches_.empty(); }
  /// Every latch, sorted by device and point.
  std::vector<Latch> latches() const;
  /// Restores a persisted latch without telling the listener (start-up).
  void restore(Latch l);

  /// What the shed of `port` draws now (W), from good readings; nullopt when unknown or the
  /// device is not a port of a shed.
  std::optional<double> shedPower(model::DeviceIndex port, const model::StateTable& state) const;

private:
  static uint64_t key(model::DeviceIndex d, model::PointId p) {
    return (static_cast<uint64_t>(d) << 16) | p;
  }

  const model::Compound& compound_;
  InterlockConfig config_;
  Listener listener_;
  std::unordered_map<uint64_t, Latch> latches_;
};

/// Values compare as numbers when both are numeric (true == 1), else exactly.
bool sameWriteValue(const model::Value& a, const model::Value& b);

} // namespace hgj::rules
