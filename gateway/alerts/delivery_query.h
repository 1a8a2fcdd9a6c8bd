#pragma once

#include <cstdint>

#include <nlohmann/json.hpp>

#include "gateway/storage/sqlite.h"

namespace hgj::alerts {

/// The delivery state of one alert's notifications, for the HTTP API (`GET /api/v1/alerts/{id}`):
/// `[{"channel":"wecom-property","kind":"raised","state":"sent","attempts":1,
///    "created_at":..,"sent_at":..,"last_error":null,"via_summary":null}, ...]`, oldest first.
/// A notification folded into a flood summary reports the summary's state and its id in
/// `via_summary`. `state` is pending | sent | expired | held (waiting for its summary).
/// What is committed: a notification delivered a moment ago may still read `pending`.
/// Runs on the caller's thread with the caller's (read) connection; throws storage::SqliteError.
nlohmann::json deliveriesJson(storage::Database& db, int64_t alert_id);

} // namespace hgj::alerts
