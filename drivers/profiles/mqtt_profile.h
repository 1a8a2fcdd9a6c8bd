#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/config_node.h"
#include "model/compound.h"

namespace hgj::drivers::profiles {

/// A topic template such as `compound/ebike/{shed}/{port}/telemetry`: literal levels and
/// variables that each match exactly one topic level.
class TopicTemplate {
public:
  /// Parses; on error returns nullopt and sets `error`.
  static std::optional<TopicTemplate> parse(std::string_view text, std::string* error);

  /// Matches a topic; on success fills `values` (by variable position). Allocation-free apart
  /// from what `values` holds.
  bool match(std::string_view topic, std::vector<std::string_view>& values) const;
  /// The MQTT subscription filter (`compound/ebike/+/+/telemetry`).
  std::string filter() const;
  /// Fills variables by name (for command topics).
  std::string expand(const std::vector<std::pair<std::string, std::string>>& vars) const;
  /// Position of a variable, or -1.
  int variable(std::string_view name) const;
  const std::string& text() const { return text_; }
  size_t variableCount() const { return var_names_.size(); }
  const std::vector<std::string>& variables() const { return var_names_; }

private:
  struct Level {
    bool is_var = false;
    std::string literal;  ///< literal text, or the variable's name
  };
  std::string text_;
  std::vector<Level> levels_;
  std::vector<std::string> var_names_;
};

/// How a device id is formed from a topic's variables ("{shed}/{port}"), or taken from a JSON
/// field (ChirpStack: the devEui).
struct DeviceIdTemplate {
  std::vector<std::pair<bool, std::string>> parts;  ///< (is_var, literal or variable name)
  std::vector<int> var_positions;                   ///< for each var part: position in topic
};

enum class TimestampFormat { UnixMs, UnixS, Rfc3339 };

/// One JSON field -> one point.
struct FieldMapping {
  std::string path;  ///< dot path inside the payload ("object.occupied")
  std::vector<std::string> path_parts;
  model::PointId point = 0;
  model::PointType type = model::PointType::Number;
  /// Optional translation of text values ("charging" -> "Charging"); others pass unchanged.
  std::vector<std::pair<std::string, std::string>> value_map;
};

/// One topic a profile's devices publish on.
struct TopicSpec {
  TopicTemplate topic;
  DeviceIdTemplate device;        ///< when device_field is empty
  std::string device_field;       ///< JSON path of a devEui to look the device up by
  std::vector<std::string> device_field_parts;
  std::vector<FieldMapping> fields;
  std::string timestamp_path;     ///< empty: ingest time
  std::vector<std::string> timestamp_parts;
  TimestampFormat timestamp_format = TimestampFormat::UnixMs;
};

/// How a writable point is set over MQTT and how the write is confirmed.
struct CommandSpec {
  TopicTemplate topic;  ///< variables: {device}, {parent}, {child}
  std::string id_field = "id";
  int64_t confirm_timeout_ms = 10'000;
};

/// How a device is asked for a fresh report out of its cycle (RefreshRequest): a message
/// published to `topic`; the device answers with its usual report.
struct RefreshSpec {
  TopicTemplate topic;  ///< variables: {device}, {parent}, {child}
  std::string payload = "{}";
};

/// The `mqtt:` section of a profile (model::Profile::mqtt).
struct MqttSpec : model::TransportSpec {
  std::vector<TopicSpec> topics;
  std::optional<CommandSpec> command;
  std::optional<RefreshSpec> refresh;
};

/// The profile's MQTT section, or null for a profile of another transport.
inline const MqttSpec* mqttSpec(const model::Profile& profile) {
  // Only loadMqttProfile sets Profile::mqtt, always to an MqttSpec.
  return static_cast<const MqttSpec*>(profile.mqtt.get());
}

/// Parses a profile's `mqtt:` section; the profile's points must already be parsed.
bool parseMqttSpec(const core::ConfigNode& section, model::Compound& compound,
                   model::Profile& profile);

/// The dot-path parts of "object.occupied".
std::vector<std::string> splitPath(std::string_view path);

} // namespace hgj::drivers::profiles
