#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/config_node.h"
#include "gateway/storage/durable.h"
#include "gateway/storage/sqlite.h"
#include "model/compound.h"
#include "model/reading.h"

namespace hgj::history {

/// The `history:` section of gateway.yaml.
struct HistoryConfig {
  bool enabled = true;
  /// 15-minute and hour rows of occupancy are kept this long.
  std::chrono::milliseconds hour_retention{std::chrono::hours(24 * 90)};
  /// Day rows (energy, sessions, alerts) are kept this long.
  std::chrono::milliseconds day_retention{std::chrono::hours(24 * 730)};
  /// Days begin at local midnight in this offset from UTC.
  int utc_offset_minutes = 480;
  /// A space's change counts once its sensor held the new value this long (the occupancy
  /// debounce of the rules file, set by the loader).
  std::chrono::milliseconds debounce{5000};
  /// Port power is integrated between reports at most this far apart (a silent port is not
  /// assumed to keep drawing).
  std::chrono::milliseconds max_power_gap{std::chrono::minutes(5)};
};

HistoryConfig parseHistoryConfig(const core::ConfigNode& node);

/// One occupancy row: a scope over one 15-minute or hour bucket.
struct OccupancyRow {
  int step_s = 900;       ///< 900 or 3600
  int64_t bucket_ms = 0;  ///< bucket start (Unix ms, aligned to the step)
  std::string scope;      ///< "site", "level:B1", "zone:B1/A", "category:visitor"
  int total = 0;          ///< spaces in the scope
  double mean_occupied = 0;  ///< time-weighted over the bucket
  int peak_occupied = 0;
  int min_free = 0;
  double minutes_full = 0;  ///< time with no free space and at most 20 % unknown
};

/// One day row: a metric of one key on one local day.
struct DayRow {
  std::string day;     ///< "2026-12-05" (local, HistoryConfig::utc_offset_minutes)
  std::string metric;  ///< energy_kwh_pile, energy_kwh_shed, sessions_pile, alerts_kind,
                       ///< alerts_shed, alerts_grid
  std::string key;     ///< pile / shed id, rule, grid
  double value = 0;
};

/// Creates the history tables (component `history` in schema_versions). Throws SqliteError.
void createHistorySchema(storage::Database& db, int64_t now_ms);

/// Rollups computed incrementally from the readings as they arrive, in their *source* time (so
/// a backlog drained after an outage lands in the right buckets, and the same readings replayed
/// from the `readings` table give the same rows: rebuild()).
///
/// - occupancy per site, level, zone and space category per 15 min and per hour: the time-
///   weighted mean of occupied spaces, the peak, the least free and the minutes full. Spaces
///   are counted as the occupancy tracker counts them: unknown until their first good reading,
///   unknown at once on a bad/stale one, a change between free and occupied only once it held
///   for the debounce (and from then on);
/// - energy per EV pile per day (positive steps of energy_kwh; a drop is a new session), energy
///   per e-bike shed per day (its ports' power_w integrated, gaps above max_power_gap skipped);
/// - charging sessions per pile per day (a pile's state entering "charging");
/// - alerts raised per rule (kind), shed and grid per day.
///
/// Thread: one owner (the pipeline thread). Rows of closed buckets and the running day totals
/// are handed out by takeWrite() as one DurableWrite for the storage writer (upserts, so a
/// bucket written twice keeps its last figures).
class Rollups {
public:
  Rollups(const HistoryConfig& config, std::shared_ptr<const model::Compound> compound);

  void onReading(const model::Reading& r);
  void onAlertRaised(const std::string& rule, const std::string& device_id,
                     const std::string& grid, int64_t at_ms);
  /// Moves history time forward to `now_ms` (closes the buckets that ended before it). The
  /// pipeline calls it with the wall clock on its tick, so a quiet hour still gets its row.
  void advanceTo(int64_t now_ms);

  /// Closed buckets and the day totals touched since the last call; empty when nothing changed.
  std::vector<OccupancyRow> takeOccupancyRows();
  std::vector<DayRow> takeDayRows();
  /// Everything taken as one write (with retention deletes once per history day), or nullopt
  /// when there is nothing to write.
  std::optional<storage::DurableWrite> takeWrite();

  /// Day totals already stored for the current days (after a restart), so the running totals
  /// continue instead of restarting at 0.
  void restoreDays(storage::Database& db);

  int64_t time() const { return now_ms_; }
  std::string dayOf(int64_t unix_ms) const;

private:
  enum class SpaceState : uint8_t { Unknown, Free, Occupied };
  struct Space {
    model::DeviceIndex device = model::kNoDevice;
    SpaceState counted = SpaceState::Unknown;
    SpaceState candidate = SpaceState::Unknown;
    int64_t candidate_since = 0;
    bool pending = false;
    std::vector<uint16_t> scopes;  ///< indexes into scopes_
  };
  struct Bucket {
    int64_t start = -1;
    double occupied_ms = 0;  ///< integral of occupied over the bucket
    int peak = 0;
    int min_free = 0;
    double full_ms = 0;
  };
  struct Scope {
    std::string name;
    int total = 0;
    int occupied = 0;
    int free = 0;
    int unknown = 0;
    int64_t since = 0;  ///< time the counts above began
    Bucket quarter;
    Bucket hour;
  };

  void integrateTo(int64_t t);
  void closeBucket(Scope& s, Bucket& b, int step_s);
  void openBucket(Scope& s, Bucket& b, int64_t start);
  void commitDue(int64_t upto);
  void setSpace(model::DeviceIndex d, SpaceState to, int64_t at);
  void addDay(const std::string& metric, const std::string& key, int64_t at_ms, double v);
  static bool full(const Scope& s);

  HistoryConfig config_;
  std::shared_ptr<const model::Compound> compound_;
  int64_t now_ms_ = 0;  ///< history time: the latest source time seen
  std::vector<int32_t> space_of_;  ///< by DeviceIndex: index into spaces_, -1 if not a space
  std::vector<Space> spaces_;
  std::vector<uint32_t> pending_;
  std::vector<Scope> scopes_;
  std::vector<OccupancyRow> closed_;
  model::PointId occupied_ = 0, energy_ = 0, state_ = 0, power_w_ = 0;
  bool has_occupied_ = false, has_energy_ = false, has_state_ = false, has_power_ = false;
  std::vector<uint8_t> kind_;  ///< by DeviceIndex: 0 other, 1 space, 2 pile, 3 port
  std::vector<double> last_kwh_;        ///< piles: last energy_kwh (NaN = none)
  std::vector<uint8_t> charging_;       ///< piles: in a charging state
  std::vector<double> last_power_;      ///< ports: last power_w
  std::vector<int64_t> last_power_at_;  ///< ports: its source time (0 = none)
  std::map<std::tuple<std::string, std::string, std::string>, double> days_;
  std::map<std::tuple<std::string, std::string, std::string>, double> dirty_days_;
  std::string last_retention_day_;
};

/// What rebuildFrom() did.
struct RebuildResult {
  int64_t readings = 0;        ///< readings replayed
  int64_t alerts = 0;          ///< alerts replayed
  int64_t occupancy_rows = 0;  ///< rows written (upserted) at or after `from`
  int64_t day_rows = 0;
  int64_t skipped_rows = 0;    ///< rows the replay gave for buckets or days before `from`
  int64_t oldest_ms = 0;       ///< source time of the oldest reading (0: no readings)
  int64_t newest_ms = 0;
};

/// Replays the `readings` table (by source time) and the `alerts` table through a fresh
/// Rollups and upserts every row it produces for a bucket starting at or after `from_ms` (a day
/// row: a day beginning at or after it), inside one transaction; rows before `from_ms`, and
/// rows the replay does not produce, are left as they are. For a database filled by an older
/// gateway, or after the history tables were lost. The whole table is replayed whatever
/// `from_ms` is, so that the spaces' states and the piles' meters are known when `from_ms`
/// begins. Throws SqliteError.
RebuildResult rebuildFrom(storage::Database& db, const HistoryConfig& config,
                          std::shared_ptr<const model::Compound> compound,
                          std::optional<int64_t> from_ms);

/// rebuildFrom() everything; returns the number of readings replayed.
int64_t rebuild(storage::Database& db, const HistoryConfig& config,
                std::shared_ptr<const model::Compound> compound);

/// Where a rebuild should begin when the operator names no day: nullopt (everything) unless
/// stored history reaches back before the first whole local day of the `readings` table
/// (retention deleted the readings before it): then that day's midnight, so that history
/// computed while those readings existed is not overwritten by figures from a part of them.
std::optional<int64_t> defaultRebuildFrom(storage::Database& db, const HistoryConfig& config);

/// Unix ms of the local midnight (HistoryConfig::utc_offset_minutes) beginning `day`
/// ("2026-12-05"), or nullopt when it is not a valid day.
std::optional<int64_t> localMidnight(const std::string& day, int utc_offset_minutes);

/// Writes rows on `db` (the statements the DurableWrite of takeWrite() runs).
void writeRows(storage::Database& db, const std::vector<OccupancyRow>& occ,
               const std::vector<DayRow>& days);

} // namespace hgj::history
