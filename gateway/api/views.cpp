#include "gateway/api/views.h"

#include <algorithm>
#include <map>

#include "core/time_format.h"
#include "model/pile_status.h"

namespace hgj::api {

namespace {

using pipeline::DeviceView;
using pipeline::PointView;
using pipeline::Snapshot;

// Below this a port is idle: the pile firmware we model treats < ~8 W as unplugged.
constexpr double kPortInUseWatts = 8.0;

const DeviceView* viewOf(const Snapshot& s, const model::Device& d) {
  return d.index < s.devices.size() ? &s.devices[d.index] : nullptr;
}

Json counts(const pipeline::ParkingCounts& c) {
  return Json{
      {"total", c.total}, {"occupied", c.occupied}, {"free", c.free}, {"unknown", c.unknown}};
}

Json location(const model::Location& l) {
  return Json{{"building", l.building}, {"level", l.level}, {"zone", l.zone}, {"space", l.space}};
}

// A point's value for display: whatever was last reported, null when never.
Json valueOf(const PointView* p) {
  if (p == nullptr) {
    return nullptr;
  }
  return model::toJson(p->value);
}

// A value only when the device is online and the point good: what derived fields use.
std::optional<double> goodNumber(const DeviceView* v, const PointView* p) {
  if (v == nullptr || p == nullptr || !v->online || p->quality != model::Quality::Good) {
    return std::nullopt;
  }
  return model::asNumber(p->value);
}

// The dashboard's pile classes: offline (the device) or what model::pileStatus makes of its
// state, the same classification the upstream summary counts blocked spaces with.
model::PileStatus pileStatusOf(const PointView* state) {
  return state == nullptr || state->quality != model::Quality::Good ||
                 model::isEmpty(state->value)
             ? model::PileStatus::Unknown
             : model::pileStatus(model::toText(state->value));
}

std::string pileClass(const DeviceView* v, const PointView* state) {
  if (v == nullptr || !v->online) {
    return "offline";
  }
  return model::pileStatusName(pileStatusOf(state));
}

Json deviceSummary(const Snapshot& s, const model::Device& d) {
  const DeviceView* v = viewOf(s, d);
  Json j{{"id", d.id},
         {"type", d.type()},
         {"profile", d.profile->name},
         {"grid", d.grid},
         {"location", location(d.location)},
         {"online", v != nullptr && v->online},
         {"faulted", v != nullptr && !v->fault.empty()},
         {"last_seen", timeOrNull(v != nullptr ? v->last_seen_ms : 0)},
         {"safety_cut", v != nullptr && v->safety_cut}};
  if (v != nullptr && !v->fault.empty()) {
    j["fault"] = v->fault;
  }
  if (!d.name.empty()) {
    j["name"] = d.name;
  }
  if (d.parent != model::kNoDevice) {
    j["parent"] = s.compound->devices[d.parent].id;
  }
  if (!d.linked_id.empty()) {
    j["linked"] = d.linked_id;
  }
  return j;
}

Json portView(const Snapshot& s, const model::Device& port) {
  const DeviceView* v = viewOf(s, port);
  const PointView* current = pointOf(s, port, "current_a");
  const PointView* power = pointOf(s, port, "power_w");
  const PointView* temp = pointOf(s, port, "temp_c");
  const PointView* relay = pointOf(s, port, "relay");
  auto p = goodNumber(v, power);
  auto a = goodNumber(v, current);
  bool in_use = (p && *p > kPortInUseWatts) || (!p && a && *a > 0.05);
  bool safety_cut = v != nullptr && v->safety_cut;
  bool relay_off = relay != nullptr && model::asBool(relay->value) == false;
  return Json{{"id", port.id},
              {"n", port.child_number},
              {"online", v != nullptr && v->online},
              {"faulted", v != nullptr && !v->fault.empty()},
              {"last_seen", timeOrNull(v != nullptr ? v->last_seen_ms : 0)},
              {"current_a", valueOf(current)},
              {"power_w", valueOf(power)},
              {"temp_c", valueOf(temp)},
              {"relay", valueOf(relay)},
              {"in_use", in_use},
              {"cut", safety_cut || relay_off},
              {"safety_cut", safety_cut}};
}

} // namespace

Json timeOrNull(int64_t unix_ms) {
  if (unix_ms <= 0) {
    return nullptr;
  }
  return core::rfc3339(unix_ms);
}

const PointView* pointOf(const Snapshot& s, const model::Device& d, std::string_view name) {
  const DeviceView* v = viewOf(s, d);
  if (v == nullptr) {
    return nullptr;
  }
  const model::PointDef* def = d.profile->point(name);
  if (def == nullptr) {
    return nullptr;
  }
  int slot = d.profile->slot(def->id);
  if (slot < 0 || static_cast<size_t>(slot) >= v->points.size()) {
    return nullptr;
  }
  return &v->points[static_cast<size_t>(slot)];
}

const char* spaceState(const Snapshot& s, const model::Device& d) {
  const DeviceView* v = viewOf(s, d);
  if (v == nullptr) {
    return "unknown";
  }
  switch (v->space) {
  case rules::occupancy::SpaceState::Free:
    return "free";
  case rules::occupancy::SpaceState::Occupied:
    return "occupied";
  case rules::occupancy::SpaceState::Unknown:
    break;
  }
  return "unknown";
}

const char* sensorState(const Snapshot& s, const model::Device& d) {
  const DeviceView* v = viewOf(s, d);
  const PointView* p = pointOf(s, d, "occupied");
  if (v == nullptr || p == nullptr || !v->online || p->quality != model::Quality::Good) {
    return "unknown";
  }
  auto b = model::asBool(p->value);
  if (!b) {
    return "unknown";
  }
  return *b ? "occupied" : "free";
}

Json parkingView(const Snapshot& s) {
  const model::Compound* c = s.compound.get();
  Json levels = Json::array();
  for (const auto& l : s.levels) {
    Json zones = Json::array();
    for (const auto& z : l.zones) {
      Json zj{{"zone", z.zone}};
      zj.update(counts(z.counts));
      zones.push_back(std::move(zj));
    }
    Json lj{{"level", l.level}};
    lj.update(counts(l.counts));
    lj["name"] = c != nullptr ? c->levelName(l.level) : l.level;
    lj["zones"] = std::move(zones);
    levels.push_back(std::move(lj));
  }
  // Levels the config names come first, in its order; the others keep their sorted order.
  if (c != nullptr && !c->levels.empty()) {
    auto rank = [c](const Json& j) {
      const std::string id = j["level"].get<std::string>();
      for (size_t i = 0; i < c->levels.size(); ++i) {
        if (c->levels[i].id == id) {
          return i;
        }
      }
      return c->levels.size();
    };
    std::stable_sort(levels.begin(), levels.end(),
                     [&](const Json& a, const Json& b) { return rank(a) < rank(b); });
  }
  Json categories = Json::array();
  for (const auto& cat : s.categories) {
    Json cj{{"category", cat.category}};
    int at = c != nullptr ? c->categoryIndex(cat.category) : -1;
    cj["name"] = at >= 0 ? c->space_categories[static_cast<size_t>(at)].name : cat.category;
    cj.update(counts(cat.counts));
    categories.push_back(std::move(cj));
  }
  Json j{{"site", c != nullptr ? c->site_id : std::string()},
         {"updated_at", timeOrNull(s.updated_ms)}};
  j.update(counts(s.parking));
  j["levels"] = std::move(levels);
  j["site_name"] = c != nullptr ? c->site_name : std::string();
  j["title"] = c != nullptr ? c->parking_title : std::string("车位");
  j["categories"] = std::move(categories);
  j["pending"] = s.parking_pending;
  return j;
}

Json spacesView(const Snapshot& s, const std::string& level, const std::string& zone,
                const std::string& category) {
  Json spaces = Json::array();
  if (s.compound) {
    for (const auto& d : s.compound->devices) {
      if (d.type() != "parking_sensor") {
        continue;
      }
      if ((!level.empty() && d.location.level != level) ||
          (!zone.empty() && d.location.zone != zone) ||
          (!category.empty() && d.category != category)) {
        continue;
      }
      const DeviceView* v = viewOf(s, d);
      Json sj{{"id", d.id},
              {"level", d.location.level},
              {"zone", d.location.zone},
              {"space", d.location.space.empty() ? d.id : d.location.space},
              {"category", d.category},
              {"state", spaceState(s, d)},
              {"sensor", sensorState(s, d)},
              {"since", timeOrNull(v != nullptr ? v->space_since_ms : 0)}};
      if (!d.linked_id.empty()) {
        sj["linked"] = d.linked_id;
      }
      spaces.push_back(std::move(sj));
    }
  }
  return Json{{"site", s.compound ? s.compound->site_id : std::string()},
              {"updated_at", timeOrNull(s.updated_ms)},
              {"level", level.empty() ? Json(nullptr) : Json(level)},
              {"zone", zone.empty() ? Json(nullptr) : Json(zone)},
              {"category", category.empty() ? Json(nullptr) : Json(category)},
              {"count", spaces.size()},
              {"spaces", std::move(spaces)}};
}

Json devicesView(const Snapshot& s, const DeviceFilter& f) {
  Json list = Json::array();
  std::map<std::string, std::pair<int, int>> by_type; // type -> (total, online)
  int total = 0;
  int online = 0;
  int cut = 0;
  if (s.compound) {
    for (const auto& d : s.compound->devices) {
      const DeviceView* v = viewOf(s, d);
      bool on = v != nullptr && v->online;
      auto& t = by_type[d.type()];
      ++t.first;
      t.second += on ? 1 : 0;
      ++total;
      online += on ? 1 : 0;
      cut += (v != nullptr && v->safety_cut) ? 1 : 0;
      if ((!f.type.empty() && d.type() != f.type) || (!f.grid.empty() && d.grid != f.grid) ||
          (f.online && *f.online != on)) {
        continue;
      }
      list.push_back(deviceSummary(s, d));
    }
  }
  Json types = Json::object();
  for (const auto& [type, c] : by_type) {
    types[type] = Json{{"total", c.first}, {"online", c.second}, {"offline", c.first - c.second}};
  }
  return Json{{"site", s.compound ? s.compound->site_id : std::string()},
              {"updated_at", timeOrNull(s.updated_ms)},
              {"summary",
               {{"total", total},
                {"online", online},
                {"offline", total - online},
                {"safety_cut", cut},
                {"by_type", std::move(types)}}},
              {"count", list.size()},
              {"devices", std::move(list)}};
}

std::optional<Json> deviceView(const Snapshot& s, const std::string& id) {
  if (!s.compound) {
    return std::nullopt;
  }
  const model::Device* d = s.compound->device(id);
  if (d == nullptr) {
    return std::nullopt;
  }
  Json j = deviceSummary(s, *d);
  const DeviceView* v = viewOf(s, *d);
  Json points = Json::object();
  for (size_t slot = 0; slot < d->profile->points.size(); ++slot) {
    const model::PointDef& def = d->profile->points[slot];
    const PointView* p = (v != nullptr && slot < v->points.size()) ? &v->points[slot] : nullptr;
    Json pj{{"value", valueOf(p)},
            {"quality", p != nullptr ? model::qualityName(p->quality) : "stale"},
            {"since", timeOrNull(p != nullptr ? p->since_ms : 0)},
            {"updated", timeOrNull(p != nullptr ? p->updated_ms : 0)},
            {"type", model::pointTypeName(def.type)},
            {"unit", def.unit},
            {"writable", def.writable}};
    points[def.name] = std::move(pj);
  }
  j["points"] = std::move(points);
  if (!d->children.empty()) {
    Json children = Json::array();
    for (auto c : d->children) {
      children.push_back(s.compound->devices[c].id);
    }
    j["children"] = std::move(children);
  }
  if (d->type() == "parking_sensor") {
    j["space_state"] = spaceState(s, *d);
    j["sensor_state"] = sensorState(s, *d);
    j["category"] = d->category;
  }
  return j;
}

Json evView(const Snapshot& s) {
  Json piles = Json::array();
  std::map<std::string, int> by_class{
      {"charging", 0}, {"idle", 0}, {"faulted", 0}, {"offline", 0}, {"unknown", 0}};
  double power = 0;
  int blocked = 0;
  if (s.compound) {
    // A pile's space: its own link, or the space that names the pile as its link.
    std::map<model::DeviceIndex, model::DeviceIndex> space_of;
    for (const auto& d : s.compound->devices) {
      if (d.type() == "parking_sensor" && d.linked != model::kNoDevice) {
        space_of.emplace(d.linked, d.index);
      }
    }
    for (const auto& d : s.compound->devices) {
      if (d.type() != "ev_pile") {
        continue;
      }
      const DeviceView* v = viewOf(s, d);
      const PointView* state = pointOf(s, d, "state");
      const PointView* pw = pointOf(s, d, "power_kw");
      std::string cls = pileClass(v, state);
      ++by_class[cls];
      if (auto p = goodNumber(v, pw)) {
        power += *p;
      }
      Json pj{{"id", d.id},
              {"grid", d.grid},
              {"location", location(d.location)},
              {"online", v != nullptr && v->online},
              {"last_seen", timeOrNull(v != nullptr ? v->last_seen_ms : 0)},
              {"state", valueOf(state)},
              {"status", cls},
              {"since", timeOrNull(state != nullptr ? state->since_ms : 0)},
              {"power_kw", valueOf(pw)},
              {"energy_kwh", valueOf(pointOf(s, d, "energy_kwh"))},
              {"safety_cut", v != nullptr && v->safety_cut}};
      model::DeviceIndex space_index = d.linked;
      if (space_index == model::kNoDevice ||
          s.compound->devices[space_index].type() != "parking_sensor") {
        auto it = space_of.find(d.index);
        space_index = it == space_of.end() ? model::kNoDevice : it->second;
      }
      if (space_index != model::kNoDevice) {
        const model::Device& space = s.compound->devices[space_index];
        std::string st = spaceState(s, space);
        // Occupied while the pile is not charging: the "fuel car on an EV space" situation the
        // occupancy rule alerts on after its hold time.
        bool is_blocked = st == "occupied" && !model::pileInUse(pileStatusOf(state));
        blocked += is_blocked ? 1 : 0;
        pj["space"] = {{"id", space.id}, {"state", st}, {"blocked", is_blocked}};
      } else {
        pj["space"] = nullptr;
      }
      piles.push_back(std::move(pj));
    }
  }
  return Json{{"site", s.compound ? s.compound->site_id : std::string()},
              {"updated_at", timeOrNull(s.updated_ms)},
              {"total", piles.size()},
              {"charging", by_class["charging"]},
              {"idle", by_class["idle"]},
              {"faulted", by_class["faulted"]},
              {"offline", by_class["offline"]},
              {"unknown", by_class["unknown"]},
              {"blocked_spaces", blocked},
              {"power_kw", power},
              {"piles", std::move(piles)}};
}

Json ebikeView(const Snapshot& s) {
  Json sheds = Json::array();
  int ports_total = 0;
  int ports_in_use = 0;
  int ports_cut = 0;
  auto shed = [&](const std::string& id, const model::Device* d,
                  const std::vector<const model::Device*>& ports) {
    const DeviceView* v = d != nullptr ? viewOf(s, *d) : nullptr;
    Json pj = Json::array();
    int in_use = 0;
    int cut = 0;
    double power = 0;
    std::optional<double> max_temp;
    for (const auto* p : ports) {
      Json one = portView(s, *p);
      in_use += one["in_use"].get<bool>() ? 1 : 0;
      cut += one["cut"].get<bool>() ? 1 : 0;
      const DeviceView* pv = viewOf(s, *p);
      if (auto w = goodNumber(pv, pointOf(s, *p, "power_w"))) {
        power += *w;
      }
      if (auto t = goodNumber(pv, pointOf(s, *p, "temp_c"))) {
        max_temp = max_temp ? std::max(*max_temp, *t) : *t;
      }
      pj.push_back(std::move(one));
    }
    ports_total += static_cast<int>(ports.size());
    ports_in_use += in_use;
    ports_cut += cut;
    Json j{{"id", id},
           {"grid", d != nullptr ? d->grid : ports.front()->grid},
           {"location", location(d != nullptr ? d->location : ports.front()->location)},
           {"online", d != nullptr ? Json(v != nullptr && v->online) : Json(nullptr)},
           {"faulted", v != nullptr && !v->fault.empty()},
           {"last_seen", timeOrNull(v != nullptr ? v->last_seen_ms : 0)},
           {"smoke", d != nullptr ? valueOf(pointOf(s, *d, "smoke")) : Json(nullptr)},
           {"temp_c", d != nullptr ? valueOf(pointOf(s, *d, "temp_c")) : Json(nullptr)},
           {"safety_cut", v != nullptr && v->safety_cut},
           {"ports_total", ports.size()},
           {"ports_in_use", in_use},
           {"ports_cut", cut},
           {"power_w", power},
           {"max_port_temp_c", max_temp ? Json(*max_temp) : Json(nullptr)},
           {"ports", std::move(pj)}};
    sheds.push_back(std::move(j));
  };
  if (s.compound) {
    const auto& devs = s.compound->devices;
    // Ports without a configured shed device are grouped by the id part before '/'.
    std::map<std::string, std::vector<const model::Device*>> orphans;
    for (const auto& d : devs) {
      if (d.type() == "ebike_shed") {
        std::vector<const model::Device*> ports;
        for (auto c : d.children) {
          if (devs[c].type() == "ebike_port") {
            ports.push_back(&devs[c]);
          }
        }
        shed(d.id, &d, ports);
      } else if (d.type() == "ebike_port" &&
                 (d.parent == model::kNoDevice || devs[d.parent].type() != "ebike_shed")) {
        orphans[d.id.substr(0, d.id.find('/'))].push_back(&d);
      }
    }
    for (const auto& [id, ports] : orphans) {
      shed(id, nullptr, ports);
    }
  }
  return Json{{"site", s.compound ? s.compound->site_id : std::string()},
              {"updated_at", timeOrNull(s.updated_ms)},
              {"sheds_total", sheds.size()},
              {"ports_total", ports_total},
              {"ports_in_use", ports_in_use},
              {"ports_cut", ports_cut},
              {"sheds", std::move(sheds)}};
}

} // namespace hgj::api
