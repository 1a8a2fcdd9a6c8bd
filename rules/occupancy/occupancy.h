#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/clock.h"
#include "model/state_table.h"
#include "rules/action.h"
#include "rules/occupancy/occupancy_config.h"

namespace hgj::rules::occupancy {

enum class SpaceState : uint8_t { Unknown, Free, Occupied };

struct Counts {
  int total = 0;
  int occupied = 0;
  int free = 0;
  int unknown = 0;  ///< stale or never-seen sensors: never counted as free
};

struct ZoneCounts {
  std::string zone;
  Counts counts;
};

struct CategoryCounts {
  std::string category;  ///< id ("visitor"); the compound names it
  Counts counts;
};

struct LevelCounts {
  std::string level;
  Counts counts;
  std::vector<ZoneCounts> zones;  ///< sorted by zone
};

/// A space as counted (after the debounce).
struct SpaceView {
  SpaceState state = SpaceState::Unknown;
  int64_t since_ms = 0;  ///< wall time the counted state began (the sensor's since-when)
  int category = -1;     ///< index into Tracker::categories() (-1: not a space)
};

/// Per level, zone and space-category counts of the compound's parking spaces, with a debounce,
/// thresholds on them ("B1 full") and free counts written to guidance displays when they change.
/// These are the gateway's one count of free spaces: the API, dashboard, displays, alerts,
/// summaries and history all read them (through the pipeline's snapshot). Counting runs whenever
/// a profile has the point; `enabled: false` turns off only thresholds and displays. Owned by the
/// Engine; pipeline thread only.
class Tracker {
public:
  Tracker(const OccupancyConfig& config, const model::Compound& compound);

  bool isSpace(model::DeviceIndex d) const {
    return d < space_of_.size() && space_of_[d] >= 0;
  }
  /// A reading of a space's occupancy point (quality and value taken from the state table).
  void onReading(model::DeviceIndex device, const model::StateTable& state, core::SteadyTime now);
  /// The device went offline / came back: its space becomes unknown at once / is re-read.
  void onDeviceOffline(model::DeviceIndex device);
  void onDeviceOnline(model::DeviceIndex device, const model::StateTable& state,
                      core::SteadyTime now);
  /// Commits debounced changes, evaluates thresholds and writes displays.
  void tick(const model::StateTable& state, core::SteadyTime now, int64_t now_wall_ms,
            ActionSink& sink);
  /// Re-reads every space (start-up, after a restore of the state table).
  void resync(const model::StateTable& state, core::SteadyTime now);

  const Counts& total() const { return total_; }
  const std::vector<LevelCounts>& levels() const { return levels_; }
  /// Categories that have at least one space, in the compound's category order.
  const std::vector<CategoryCounts>& categories() const { return categories_; }
  SpaceView space(model::DeviceIndex device) const;
  /// Increments whenever a count changes (the pipeline republishes its snapshot on change).
  uint64_t version() const { return version_; }
  /// Spaces waiting for their debounce.
  size_t pending() const { return pending_.size(); }

private:
  struct Space {
    model::DeviceIndex device = model::kNoDevice;
    uint16_t level = 0;
    uint16_t zone = 0;  ///< index within the level's zones
    uint16_t category = 0;  ///< index into categories_
    SpaceState counted = SpaceState::Unknown;
    SpaceState candidate = SpaceState::Unknown;
    core::SteadyTime candidate_since{};
    int64_t since_ms = 0;
    int64_t candidate_since_ms = 0;
    bool pending = false;
  };
  struct ThresholdState {
    size_t threshold = 0;
    Scope scope = Scope::Level;
    int level = -1;
    int zone = -1;
    std::string scope_text;  ///< "B1", "B1/A", "total"
    std::string rule_name;   ///< "level_full:B1"
    bool active = false;
    bool pending = false;
    core::SteadyTime pending_since{};
  };
  struct DisplayState {
    DisplayOutput out;
    int level = -1;
    int zone = -1;
    int category = -1;  ///< free_<category>: counts of categories_[category]
    int last_written = -1;
    core::SteadyTime last_at{};
    bool written = false;
  };

  SpaceState observe(const Space& s, const model::StateTable& state, core::SteadyTime* since,
                     int64_t* since_ms) const;
  void evaluate(Space& s, const model::StateTable& state, core::SteadyTime now);
  void commit(Space& s, SpaceState to, int64_t since_ms);
  const Counts& countsFor(Scope scope, int level, int zone) const;
  const Counts& displayCounts(const DisplayState& ds) const;

  const OccupancyConfig& config_;
  std::vector<int32_t> space_of_;  ///< by DeviceIndex: index into spaces_, -1 if not a space
  std::vector<Space> spaces_;
  std::vector<uint32_t> pending_;  ///< spaces waiting for the debounce
  Counts total_;
  std::vector<LevelCounts> levels_;
  std::vector<CategoryCounts> categories_;
  std::vector<ThresholdState> thresholds_;
  std::vector<DisplayState> displays_;
  uint64_t version_ = 0;
};

} // namespace hgj::rules::occupancy
