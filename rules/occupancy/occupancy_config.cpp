#include "rules/occupancy/occupancy_config.h"

#include <set>

namespace hgj::rules::occupancy {

namespace {

Severity parseSeverity(const core::ConfigNode& node, Severity def) {
  return model::parseSeverity(node.choice("severity", "", {"info", "warning", "critical"}))
      .value_or(def);
}

} // namespace

OccupancyConfig parseOccupancyConfig(const core::ConfigNode& node,
                                     const model::Compound& compound) {
  OccupancyConfig cfg;
  if (!node.defined()) {
    if (auto id = compound.pointId(cfg.point_name)) {
      cfg.point = *id;
      cfg.point_known = true;
    }
    return cfg;
  }
  node.allowKeys({"enabled", "device_type", "point", "debounce", "thresholds", "displays",
                  "display_type", "display_min_interval"});
  cfg.enabled = node.boolean("enabled", true);
  cfg.device_type = node.str("device_type", cfg.device_type);
  cfg.point_name = node.str("point", cfg.point_name);
  cfg.debounce = node.duration("debounce", cfg.debounce);
  cfg.display_min_interval = node.duration("display_min_interval", cfg.display_min_interval);
  if (auto id = compound.pointId(cfg.point_name)) {
    cfg.point = *id;
    cfg.point_known = true;
  }

  std::set<std::string> levels;
  std::set<std::string> zones;  // "B1_A"
  bool any_space = false;
  for (const auto& d : compound.devices) {
    if (d.type() != cfg.device_type) {
      continue;
    }
    any_space = true;
    if (!cfg.point_known || d.profile->point(cfg.point) == nullptr) {
      node.errorAt("point", "profile \"" + d.profile->name + "\" of " + cfg.device_type +
                                " devices has no point \"" + cfg.point_name + "\"");
      cfg.point_known = false;
      break;
    }
    levels.insert(d.location.level);
    zones.insert(d.location.level + "_" + d.location.zone);
  }
  (void)any_space;

  core::ConfigNode th = node.child("thresholds");
  if (th.defined() && th.requireSeq()) {
    for (const auto& item : th.items()) {
      if (!item.allowKeys({"name", "scope", "free_at_most", "clear_free_at_least", "for",
                           "max_unknown_ratio", "severity", "message"})) {
        continue;
      }
      Threshold t;
      t.name = item.requiredStr("name");
      std::string scope = item.choice("scope", "level", {"total", "level", "zone"});
      t.scope = scope == "total" ? Scope::Total : (scope == "zone" ? Scope::Zone : Scope::Level);
      t.free_at_most = static_cast<int>(item.integer("free_at_most", 0, 0, 100000));
      t.clear_free_at_least =
          static_cast<int>(item.integer("clear_free_at_least", t.free_at_most + 1, 0, 100000));
      if (t.clear_free_at_least <= t.free_at_most) {
        item.errorAt("clear_free_at_least",
                     "must be above free_at_most (" + std::to_string(t.free_at_most) +
                         "), got " + std::to_string(t.clear_free_at_least));
      }
      t.hold = item.duration("for", t.hold);
      t.max_unknown_ratio = item.number("max_unknown_ratio", t.max_unknown_ratio, 0.0, 1.0);
      t.severity = parseSeverity(item, Severity::Info);
      std::string err;
      auto msg = MessageTemplate::parse(
          item.str("message", "{scope} 车位已满: 空闲 {free} / 共 {total} (未知 {unknown})"), &err);
      if (!msg) {
        item.errorAt("message", err);
      } else {
        t.message = std::move(*msg);
      }
      cfg.thresholds.push_back(std::move(t));
    }
  }

  // Problems about displays are reported at whichever key named them.
  core::ConfigNode disp = node.child(node.has("display_type") ? "display_type" : "displays");
  std::vector<std::string> display_ids = node.strList("displays");
  std::string display_type = node.str("display_type", "");
  if (!display_type.empty()) {
    bool found = false;
    for (const auto& d : compound.devices) {
      if (d.type() == display_type) {
        display_ids.push_back(d.id);
        found = true;
      }
    }
    if (!found && display_type != "display") {
      disp.error("no device has type \"" + display_type + "\"");
    }
  }
  if (!display_ids.empty()) {
    for (const auto& id : display_ids) {
      auto idx = compound.deviceIndex(id);
      if (idx == model::kNoDevice) {
        disp.error("unknown device \"" + id + "\"");
        continue;
      }
      const model::Device& dev = compound.devices[idx];
      bool any = false;
      for (const auto& p : dev.profile->points) {
        if (p.name.rfind("free_", 0) != 0) {
          continue;
        }
        DisplayOutput out;
        out.device = idx;
        out.point = p.id;
        std::string rest = p.name.substr(5);
        if (rest == "total") {
          out.scope = Scope::Total;
        } else if (levels.count(rest)) {
          out.scope = Scope::Level;
          out.level = rest;
        } else if (compound.categoryIndex(rest) >= 0 && !levels.count(rest)) {
          // A category no space has yet is accepted (a display installed ahead of its spaces)
          // and not written until spaces exist.
          out.scope = Scope::Category;
          out.category = rest;
        } else if (zones.count(rest)) {
          out.scope = Scope::Zone;
          auto us = rest.find('_');
          out.level = rest.substr(0, us);
          out.zone = rest.substr(us + 1);
        } else {
          disp.error("display " + id + " point \"" + p.name +
                     "\" names no level, zone or category of the parking sensors (expected "
                     "free_total, free_<level>, free_<level>_<zone> or free_<category>)");
          continue;
        }
        if (!p.writable) {
          disp.error("display " + id + " point \"" + p.name + "\" is not writable");
          continue;
        }
        any = true;
        cfg.displays.push_back(out);
      }
      if (!any) {
        disp.error("display " + id + " (profile " + dev.profile->name +
                   ") has no writable free_* points");
      }
    }
  }
  return cfg;
}

} // namespace hgj::rules::occupancy
