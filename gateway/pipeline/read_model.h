#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/clock.h"
#include "model/compound.h"
#include "model/value.h"
#include "rules/occupancy/occupancy.h"

namespace hgj::pipeline {

struct PointView {
  model::PointId id = 0;
  model::Value value;
  model::Quality quality = model::Quality::Stale;
  int64_t since_ms = 0;    ///< when it entered this value (Unix ms)
  int64_t updated_ms = 0;  ///< last report (Unix ms)
};

struct DeviceView {
  bool online = false;
  int64_t last_seen_ms = 0;   ///< 0 = never
  bool safety_cut = false;    ///< a safety rule cut it; re-enabling needs an operator
  std::string fault;          ///< non-empty: it answers but refuses every read (why)
  std::vector<PointView> points;  ///< by slot of the device profile's points
  /// Parking spaces: the state as counted (after the occupancy debounce), which is what every
  /// count shows; the sensor's own latest value is in `points`.
  rules::occupancy::SpaceState space = rules::occupancy::SpaceState::Unknown;
  int64_t space_since_ms = 0;
};

/// The parking counts are the occupancy tracker's (debounced, stale = unknown): one truth for
/// the API, dashboard, displays, alerts, summaries and history.
using ParkingCounts = rules::occupancy::Counts;
using ParkingZone = rules::occupancy::ZoneCounts;
using ParkingLevel = rules::occupancy::LevelCounts;
using ParkingCategory = rules::occupancy::CategoryCounts;

/// A consistent, immutable copy of the live state, published by the pipeline thread a few times a
/// second (and on important changes). Readers on any thread (HTTP, uplink summaries) hold a
/// shared_ptr and never lock the pipeline.
struct Snapshot {
  uint64_t version = 0;
  int64_t updated_ms = 0;
  std::shared_ptr<const model::Compound> compound;
  std::vector<DeviceView> devices;  ///< by DeviceIndex
  ParkingCounts parking;
  std::vector<ParkingLevel> levels;  ///< sorted by level, zones sorted by name
  std::vector<ParkingCategory> categories;  ///< categories that have spaces, in config order
  int parking_pending = 0;  ///< spaces whose sensor changed and wait for the debounce
};

/// A change pushed to live views (server-sent events): `type` is "space", "device", "alert",
/// "parking"; `json` is the event's data object, already serialised.
struct LiveEvent {
  uint64_t seq = 0;
  std::string type;
  std::string json;
  core::SteadyTime at{};  ///< when it was pushed
};

/// The read side of the gateway: the latest snapshot and a ring of recent live events, bounded
/// in count and in age. The pipeline thread publishes; any thread reads. Thread-safe.
///
/// The ring is for a live view that reconnects (or falls behind) to resume where it was: an
/// event older than `event_window` is dropped even while the ring has room, so the ring's memory
/// follows the recent event rate, not the history since start (at the compound's rates a full
/// 4,096-event ring is about 1 MiB, and it used to fill over the first 40 minutes and stay). A
/// view that missed more than the ring holds is told so (`gap`) and refetches the full state.
class ReadModel {
public:
  explicit ReadModel(size_t event_ring = 4096,
                     std::chrono::milliseconds event_window = std::chrono::seconds(60),
                     const core::Clock& clock = core::SystemClock::instance())
      : ring_capacity_(event_ring), window_(event_window), clock_(clock) {}

  std::shared_ptr<const Snapshot> current() const;
  void publish(std::shared_ptr<const Snapshot> snapshot);

  void pushEvent(std::string type, std::string json);
  /// Events with seq > `after`, waiting up to `timeout` for the first. If `after` fell out of
  /// the ring, returns from the oldest kept (the client should then refetch the full state;
  /// `gap` tells it so).
  std::vector<LiveEvent> eventsAfter(uint64_t after, std::chrono::milliseconds timeout,
                                     bool* gap = nullptr) const;
  uint64_t lastSeq() const;
  /// Events kept now (tests, the memory bound).
  size_t eventsKept() const;
  /// Wakes all waiters (shutdown).
  void close();

private:
  /// Drops events past the ring's count or age. Under mu_.
  void pruneLocked();

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::shared_ptr<const Snapshot> snapshot_;  // guarded by mu_
  std::deque<LiveEvent> events_;              // guarded by mu_
  uint64_t seq_ = 0;                          // guarded by mu_
  bool closed_ = false;                       // guarded by mu_
  const size_t ring_capacity_;
  const std::chrono::milliseconds window_;
  const core::Clock& clock_;
};

} // namespace hgj::pipeline
