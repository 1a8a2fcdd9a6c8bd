#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "core/config_node.h"
#include "model/compound.h"
#include "rules/action.h"
#include "rules/message_template.h"

namespace hgj::rules::occupancy {

/// Category: a display's free_<category> point (thresholds use Total, Level or Zone).
enum class Scope : uint8_t { Total, Level, Zone, Category };

/// "B1 full": free spaces of each level (or zone, or the whole site) at or below a limit.
struct Threshold {
  std::string name;
  Scope scope = Scope::Level;
  int free_at_most = 0;        ///< raises when free <= this
  int clear_free_at_least = 1; ///< clears when free >= this (hysteresis)
  std::chrono::milliseconds hold{0};
  /// No verdict while more than this share of the scope's sensors is unknown (a gateway that
  /// just started, a dead bus): "full" must not be claimed from missing data.
  double max_unknown_ratio = 0.2;
  Severity severity = Severity::Info;
  MessageTemplate message;
};

/// One point of a guidance display that shows a free count: `free_total`, `free_<level>`,
/// `free_<level>_<zone>` or `free_<category>` (a gate display shows `free_visitor`).
struct DisplayOutput {
  model::DeviceIndex device = model::kNoDevice;
  model::PointId point = 0;
  Scope scope = Scope::Total;
  std::string level;
  std::string zone;
  std::string category;
};

struct OccupancyConfig {
  bool enabled = true;
  std::string device_type = "parking_sensor";
  std::string point_name = "occupied";
  model::PointId point = 0;
  bool point_known = false;  ///< false when no profile has the point (no spaces to count)
  /// A space changes between free and occupied only after its sensor held the new state this
  /// long (against a car passing over a sensor).
  std::chrono::milliseconds debounce{5000};
  std::vector<Threshold> thresholds;
  /// From `displays:` (device ids) and `display_type:` (every device of that type).
  std::vector<DisplayOutput> displays;
  std::chrono::milliseconds display_min_interval{1000};
};

/// Parses the `occupancy:` section of the rules file (undefined -> defaults).
OccupancyConfig parseOccupancyConfig(const core::ConfigNode& node, const model::Compound& compound);

} // namespace hgj::rules::occupancy
