#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "gateway/pipeline/read_model.h"
#include "gateway/uplink/uplink_config.h"

namespace hgj::uplink {

/// The summary topics, in the order they are built.
enum class SummaryType { Parking, Ev, Ebike, Health };
constexpr int kSummaryTypeCount = 4;
/// "summary/parking", "summary/ev", "summary/ebike", "summary/health".
const char* summarySubtopic(SummaryType type);

/// Turns snapshots into summary bodies (without msg_id and ts, which the outbox adds).
/// Keeps the running totals that need history (energy delivered today): call it with
/// snapshots in time order. Owned and used by the uplink thread only.
class SummaryBuilder {
public:
  explicit SummaryBuilder(const SummaryConfig& config) : config_(config) {}

  nlohmann::json build(SummaryType type, const pipeline::Snapshot& snap, int64_t now_ms);

  /// The part of a body whose change counts as significant (counts and states, not power or
  /// energy, which move all the time).
  static nlohmann::json signature(SummaryType type, const nlohmann::json& body);

  nlohmann::json parking(const pipeline::Snapshot& snap) const;
  nlohmann::json ev(const pipeline::Snapshot& snap, int64_t now_ms);
  nlohmann::json ebike(const pipeline::Snapshot& snap, int64_t now_ms);
  nlohmann::json health(const pipeline::Snapshot& snap) const;

private:
  int64_t dayOf(int64_t unix_ms) const;

  SummaryConfig config_;
  // EV energy: the sum of positive steps of each pile's energy_kwh today (robust to both
  // session counters that restart at 0 and lifetime meters).
  std::unordered_map<model::DeviceIndex, double> ev_last_kwh_;
  double ev_today_kwh_ = 0;
  int64_t ev_day_ = INT64_MIN;
  // E-bike energy: the ports' total power integrated between summaries.
  double ebike_today_wh_ = 0;
  int64_t ebike_day_ = INT64_MIN;
  int64_t ebike_last_ms_ = 0;
};

/// The value of a point of a device in a snapshot, or nullptr when the device's profile has no
/// such point or the snapshot has no value for it.
const pipeline::PointView* findPoint(const pipeline::Snapshot& snap, model::DeviceIndex device,
                                     std::string_view point);

} // namespace hgj::uplink
