#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "gateway/pipeline/read_model.h"

namespace hgj::api {

using Json = nlohmann::ordered_json;

/// JSON views of one immutable snapshot (pure functions, any thread). Shapes are documented in
/// docs/api.md (`/api/v1/parking` is a fixed contract with the dashboard and the platform).

/// A parking space's state as counted (the occupancy tracker's, after its debounce): what every
/// count shows. Occupied or free only while its sensor is online with good quality; otherwise
/// unknown (never free).
const char* spaceState(const pipeline::Snapshot& s, const model::Device& d);
/// What the space's sensor itself says now (before the debounce): differs from spaceState()
/// while a change waits for the debounce.
const char* sensorState(const pipeline::Snapshot& s, const model::Device& d);

/// The point of a device by name, or nullptr (not in the profile, or no state for it).
const pipeline::PointView* pointOf(const pipeline::Snapshot& s, const model::Device& d,
                                   std::string_view name);

Json parkingView(const pipeline::Snapshot& s);
/// Spaces on `level` / in `zone` / of `category` (empty = all).
Json spacesView(const pipeline::Snapshot& s, const std::string& level, const std::string& zone,
                const std::string& category = {});

struct DeviceFilter {
  std::string type;
  std::string grid;
  std::optional<bool> online;
};
Json devicesView(const pipeline::Snapshot& s, const DeviceFilter& filter);
/// nullopt when the device is unknown.
std::optional<Json> deviceView(const pipeline::Snapshot& s, const std::string& id);

Json evView(const pipeline::Snapshot& s);
Json ebikeView(const pipeline::Snapshot& s);

/// RFC 3339 UTC, or null for 0 (never).
Json timeOrNull(int64_t unix_ms);

} // namespace hgj::api
