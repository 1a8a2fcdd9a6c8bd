#include "drivers/profiles/profile_loader.h"

#include <algorithm>
#include <filesystem>

#include "drivers/profiles/modbus_profile.h"
#include "drivers/profiles/mqtt_profile.h"

namespace hgj::drivers::profiles {

namespace fs = std::filesystem;

namespace {

// `range: [lo, hi]`: what a sane sensor can report. Readings outside are marked bad.
void parsePlausibleRange(const core::ConfigNode& p, model::PointDef& def) {
  core::ConfigNode r = p.child("range");
  if (!r.defined()) {
    return;
  }
  auto items = r.isSeq() ? r.items() : std::vector<core::ConfigNode>{};
  std::optional<double> lo = items.size() == 2 ? items[0].asNumber() : std::nullopt;
  std::optional<double> hi = items.size() == 2 ? items[1].asNumber() : std::nullopt;
  if (!lo || !hi || !(*lo < *hi)) {
    r.error("expected [min, max] with min < max (two numbers)");
    return;
  }
  if (def.type != model::PointType::Number) {
    r.error("a plausibility range needs a number point (this one is " +
            std::string(model::pointTypeName(def.type)) + ")");
    return;
  }
  def.range_lo = *lo;
  def.range_hi = *hi;
}

// `safe: <value>`: the value of a writable point that removes power (a relay's false).
void parseSafeValue(const core::ConfigNode& p, model::PointDef& def) {
  core::ConfigNode s = p.child("safe");
  if (!s.defined()) {
    return;
  }
  if (!def.writable) {
    s.error("only a writable point has a safe value (add writable: true)");
    return;
  }
  std::optional<model::Value> v;
  if (def.type == model::PointType::Bool) {
    if (auto b = s.asBool()) {
      v = *b;
    }
  } else if (def.type == model::PointType::Number) {
    if (auto n = s.asNumber()) {
      v = *n;
    }
  } else if (auto t = s.asStr()) {
    v = *t;
  }
  if (!v) {
    s.error(std::string("expected a ") + model::pointTypeName(def.type) + " value");
    return;
  }
  def.safe = std::move(*v);
}

} // namespace

model::Profile* loadProfile(const std::string& path, model::Compound& compound,
                            core::Diagnostics& diag) {
  auto root = core::loadYamlFile(path, diag);
  if (!root) {
    return nullptr;
  }
  if (!root->allowKeys({"type", "transport", "description", "expected_interval", "points",
                        "children", "mqtt", "modbus"})) {
    return nullptr;
  }
  auto profile = std::make_unique<model::Profile>();
  profile->name = fs::path(path).stem().string();
  profile->source = path;
  profile->device_type = root->requiredStr("type");
  profile->transport = root->choice("transport", "mqtt", {"mqtt", "modbus"});
  profile->description = root->str("description", "");
  profile->expected_interval_ms =
      root->duration("expected_interval", std::chrono::minutes(2), std::chrono::seconds(1),
                     std::chrono::hours(24 * 30))
          .count();
  size_t before = diag.problems().size();

  core::ConfigNode points = root->child("points");
  if (!points.defined()) {
    root->errorAt("points", "required (expected a mapping of point name: {type, unit}, got "
                            "nothing)");
  } else if (points.requireMap()) {
    for (const auto& [name, p] : points.entries()) {
      if (!p.allowKeys({"type", "unit", "writable", "min", "max", "range", "safe",
                        "description"})) {
        continue;
      }
      model::PointDef def;
      def.name = name;
      def.id = compound.internPoint(name);
      std::string type = p.choice("type", "number", {"bool", "number", "string"});
      def.type = *model::parsePointType(type);
      def.unit = p.str("unit", "");
      def.writable = p.boolean("writable", false);
      if (p.has("min")) {
        def.min = p.number("min", 0, -1e300, 1e300);
      }
      if (p.has("max")) {
        def.max = p.number("max", 0, -1e300, 1e300);
      }
      parsePlausibleRange(p, def);
      parseSafeValue(p, def);
      profile->points.push_back(std::move(def));
    }
  }
  core::ConfigNode children = root->child("children");
  if (children.defined() && children.allowKeys({"profile", "id"})) {
    profile->child_profile = children.requiredStr("profile");
    profile->child_id_template = children.str("id", "{parent}/P{n:02}");
  }
  core::ConfigNode mqtt = root->child("mqtt");
  core::ConfigNode modbus = root->child("modbus");
  if (profile->transport == "mqtt") {
    if (modbus.defined()) {
      modbus.error("a profile with transport mqtt cannot have a modbus section");
    }
    // A child profile (a shed's port) may be decoded entirely by its parent's topics.
    if (mqtt.defined()) {
      parseMqttSpec(mqtt, compound, *profile);
    }
  } else {
    if (mqtt.defined()) {
      mqtt.error("a profile with transport modbus cannot have an mqtt section");
    }
    // A port profile has no map of its own: its parent's blocks describe its registers.
    if (modbus.defined()) {
      parseModbusSpec(modbus, compound, *profile);
    }
  }
  if (diag.problems().size() != before) {
    return nullptr;
  }
  compound.profiles.push_back(std::move(profile));
  return compound.profiles.back().get();
}

void loadProfileDir(const std::string& dir, model::Compound& compound, core::Diagnostics& diag) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    diag.error({dir, 0}, "include.profiles", "not a directory");
    return;
  }
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.is_regular_file() && entry.path().extension() == ".yaml") {
      files.push_back(entry.path().string());
    }
  }
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    loadProfile(f, compound, diag);
  }
}

} // namespace hgj::drivers::profiles
