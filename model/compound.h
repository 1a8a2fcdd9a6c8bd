#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "model/value.h"


namespace hgj::model {

using DeviceIndex = uint32_t;
using PointId = uint16_t;
constexpr DeviceIndex kNoDevice = UINT32_MAX;

/// A named value a profile defines for its devices.
struct PointDef {
  PointId id = 0;
  std::string name;
  PointType type = PointType::Number;
  std::string unit;
  bool writable = false;
  /// For writable numbers: the range a write must fall in.
  std::optional<double> min;
  std::optional<double> max;
  /// Plausibility range of readings (`range: [lo, hi]` in the profile): a number outside it is
  /// stored with bad quality and never drives a rule.
  std::optional<double> range_lo;
  std::optional<double> range_hi;
  /// For writable points that switch power: the value that removes it (`safe: false` for a port
  /// relay). A write of it is de-energizing: it goes to the device at once, ahead of its record,
  /// and no rate or queue limit holds it back. Every other value is energizing.
  std::optional<Value> safe;
};

/// What a driver adds to a profile: topic templates and JSON paths (drivers/profiles/
/// mqtt_profile.h MqttSpec), or a register map (modbus_profile.h ModbusSpec). The model only
/// carries it and knows nothing of its type; the driver that set it reads it back
/// (profiles::mqttSpec(), profiles::modbusSpec()).
struct TransportSpec {};

/// A device type's definition, loaded from conf/profiles/<name>.yaml. The transport-specific
/// decoding (topic templates and JSON paths, or register maps) belongs to the drivers; the model
/// keeps only what every stage needs: the device type and its points.
struct Profile {
  std::string name;         ///< file stem, e.g. "parking_sensor_mqtt"
  std::string device_type;  ///< parking_sensor | ebike_port | ebike_shed | ev_pile | co_sensor |
                            ///< meter | display | ... (what rules select on)
  std::string transport;    ///< "mqtt" or "modbus"
  std::string description;
  std::vector<PointDef> points;
  int64_t expected_interval_ms = 120'000;  ///< silent longer than this -> offline
  /// Child devices (ports of a shed): their profile, and how their id is formed from the
  /// parent's id and the 1-based child number ("{parent}/P{n:02}").
  std::string child_profile;
  std::string child_id_template;
  std::string source;  ///< file the profile came from
  std::shared_ptr<const TransportSpec> mqtt;    ///< an MqttSpec, set by the MQTT profile loader
  std::shared_ptr<const TransportSpec> modbus;  ///< a ModbusSpec, set by the Modbus one

  const PointDef* point(PointId id) const;
  const PointDef* point(std::string_view name) const;
  /// Slot of a point in `points`, or -1.
  int slot(PointId id) const;
};

struct Staff {
  std::string name;
  std::string phone;
  std::string wecom_user;
  std::string dingtalk_mobile;  ///< defaults to phone
};

/// A 网格: the staff responsible for a set of devices, and who to escalate to.
struct Grid {
  std::string id;
  std::string name;
  std::vector<Staff> staff;
  std::vector<Staff> escalation;
  std::vector<std::string> channels;  ///< alert channel ids (alerts config)
};

/// A kind of parking space (固定/产权 leased, 临时 visitor, 充电 ev, or one the config names):
/// "free" means something different to each group of people, so spaces are counted per category.
struct SpaceCategory {
  std::string id;    ///< "visitor" (a display point names it: free_visitor)
  std::string name;  ///< "临时车位"
};

/// The display name of a parking level ("B2" -> "地下二层"), in the order levels are shown.
struct LevelInfo {
  std::string id;
  std::string name;
};

struct Location {
  std::string building;
  std::string level;
  std::string zone;
  std::string space;
  /// "B1 A区 P-B1-0042" style text for messages.
  std::string text() const;
};

/// How a Modbus device is reached; empty `line` for MQTT devices.
struct ModbusBinding {
  std::string line;
  int unit_id = 1;
  int64_t poll_interval_ms = 1000;
  int64_t timeout_ms = 500;
  int retries = 1;
};

struct Device {
  DeviceIndex index = kNoDevice;
  std::string id;
  std::string name;
  const Profile* profile = nullptr;
  std::string grid;
  Location location;
  std::map<std::string, std::string> tags;
  DeviceIndex parent = kNoDevice;
  std::vector<DeviceIndex> children;
  int child_number = 0;  ///< 1-based port number of a child, 0 otherwise
  /// false: nothing reads this device in this run (its driver is disabled, e.g. a Modbus device
  /// with modbus.enabled false), so its silence is no fault: no offline alert.
  bool monitored = true;
  /// A parking space served by a charging pile (and the reverse link on the pile).
  std::string linked_id;
  DeviceIndex linked = kNoDevice;
  std::string dev_eui;  ///< LoRaWAN devices (ChirpStack), lower-case hex
  /// The space category id (one per device; the occupancy tracker counts it for parking spaces):
  /// `category:` in the device entry, else `ev` for `tags: {ev_space: "true"}`, else the
  /// compound's default category.
  std::string category;
  ModbusBinding modbus;
  int64_t expected_interval_ms = 0;  ///< 0 = the profile's
  std::string source;                ///< "file:line" of the definition

  const std::string& type() const { return profile->device_type; }
  int64_t expectedIntervalMs() const {
    return expected_interval_ms > 0 ? expected_interval_ms : profile->expected_interval_ms;
  }
};

/// The whole compound as configured: immutable after loading, shared read-only by every thread.
class Compound {
public:
  std::string site_id;
  std::string site_name;
  std::vector<Grid> grids;
  std::vector<Device> devices;
  std::vector<std::unique_ptr<Profile>> profiles;
  /// The dashboard's parking card title ("车位": it may include surface levels).
  std::string parking_title = "车位";
  /// Built-in categories (leased, visitor, ev) first, then those the config adds, in order.
  std::vector<SpaceCategory> space_categories = defaultSpaceCategories();
  std::string default_category = "leased";
  /// Level display names from the config (levels not named there show their id).
  std::vector<LevelInfo> levels;

  static std::vector<SpaceCategory> defaultSpaceCategories();
  /// Index into space_categories, or -1.
  int categoryIndex(std::string_view id) const;
  /// The configured display name of a level, or the level id itself.
  const std::string& levelName(const std::string& level) const;
  /// Where a device is, for messages that also name the device: building, level, zone and the
  /// space only when it is not already part of the device id (S05 in "1号车棚区 S05" is the
  /// shed itself), so "{device} {location}" never says the id twice. A port without a location
  /// of its own is placed at its shed.
  std::string placeOf(const Device& device) const;

  const Device* device(std::string_view id) const;
  DeviceIndex deviceIndex(std::string_view id) const;
  DeviceIndex deviceByDevEui(std::string_view dev_eui) const;
  const Grid* grid(std::string_view id) const;
  const Profile* profile(std::string_view name) const;

  /// Interns a point name; ids are dense from 0.
  PointId internPoint(std::string_view name);
  /// The id of a known point name, or nullopt.
  std::optional<PointId> pointId(std::string_view name) const;
  const std::string& pointName(PointId id) const { return point_names_[id]; }
  size_t pointCount() const { return point_names_.size(); }

  /// Rebuilds the id and devEui indexes; call after `devices` is complete.
  void buildIndexes();

private:
  /// Lets the indexes be searched with a string_view without building a std::string.
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  template <typename V>
  using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

  std::vector<std::string> point_names_;
  StringMap<PointId> point_ids_;
  StringMap<DeviceIndex> by_id_;
  StringMap<DeviceIndex> by_dev_eui_;
};

} // namespace hgj::model
