#include "gateway/uplink/summaries.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "core/enum_names.h"
#include "model/pile_status.h"

namespace hgj::uplink {

namespace {

using nlohmann::json;

/// Calls fn(device, view) for every configured device the snapshot has a view of.
template <typename Fn> void forEachDevice(const pipeline::Snapshot& snap, Fn&& fn) {
  if (!snap.compound) {
    return;
  }
  for (const auto& d : snap.compound->devices) {
    if (d.profile != nullptr && d.index < snap.devices.size()) {
      fn(d, snap.devices[d.index]);
    }
  }
}

json countsJson(const pipeline::ParkingCounts& c) {
  return {{"total", c.total}, {"occupied", c.occupied}, {"free", c.free}, {"unknown", c.unknown}};
}

// A level's, zone's or category's entry: its counts and {key: name}.
json namedCounts(const char* key, const std::string& name, const pipeline::ParkingCounts& c) {
  json j = countsJson(c);
  j[key] = name;
  return j;
}

double round3(double v) {
  return std::round(v * 1000.0) / 1000.0;
}

bool good(const pipeline::PointView* p) {
  return p != nullptr && p->quality == model::Quality::Good && !model::isEmpty(p->value);
}

constexpr int kMaxListedBlocked = 50;
// A gap longer than this between two e-bike summaries is not integrated (the gateway was down
// or the snapshot stale): better to under-report energy than to invent it.
constexpr int64_t kMaxIntegrationGapMs = 10 * 60 * 1000;

} // namespace

constexpr core::EnumNames<SummaryType, 4> kSummarySubtopics{
    {{SummaryType::Parking, "summary/parking"}, {SummaryType::Ev, "summary/ev"},
     {SummaryType::Ebike, "summary/ebike"}, {SummaryType::Health, "summary/health"}}};

const char* summarySubtopic(SummaryType type) {
  return kSummarySubtopics.name(type, "summary/unknown");
}

const pipeline::PointView* findPoint(const pipeline::Snapshot& snap, model::DeviceIndex device,
                                     std::string_view point) {
  if (!snap.compound || device >= snap.devices.size() ||
      device >= snap.compound->devices.size()) {
    return nullptr;
  }
  auto pid = snap.compound->pointId(point);
  const model::Profile* profile = snap.compound->devices[device].profile;
  if (!pid || profile == nullptr) {
    return nullptr;
  }
  int slot = profile->slot(*pid);
  const auto& points = snap.devices[device].points;
  if (slot < 0 || static_cast<size_t>(slot) >= points.size()) {
    return nullptr;
  }
  return &points[static_cast<size_t>(slot)];
}

int64_t SummaryBuilder::dayOf(int64_t unix_ms) const {
  const int64_t local = unix_ms + int64_t{config_.utc_offset_minutes} * 60'000;
  return local >= 0 ? local / 86'400'000 : (local - 86'399'999) / 86'400'000;
}

json SummaryBuilder::build(SummaryType type, const pipeline::Snapshot& snap, int64_t now_ms) {
  switch (type) {
  case SummaryType::Parking:
    return parking(snap);
  case SummaryType::Ev:
    return ev(snap, now_ms);
  case SummaryType::Ebike:
    return ebike(snap, now_ms);
  case SummaryType::Health:
    return health(snap);
  }
  return json::object();
}

json SummaryBuilder::parking(const pipeline::Snapshot& snap) const {
  json levels = json::array();
  for (const auto& level : snap.levels) {
    json zones = json::array();
    for (const auto& zone : level.zones) {
      zones.push_back(namedCounts("zone", zone.zone, zone.counts));
    }
    json l = namedCounts("level", level.level, level.counts);
    l["zones"] = std::move(zones);
    levels.push_back(std::move(l));
  }
  json categories = json::array();
  for (const auto& c : snap.categories) {
    categories.push_back(namedCounts("category", c.category, c.counts));
  }
  json out = countsJson(snap.parking);
  out["levels"] = std::move(levels);
  out["categories"] = std::move(categories);
  out["updated_ms"] = snap.updated_ms;
  return out;
}

json SummaryBuilder::ev(const pipeline::Snapshot& snap, int64_t now_ms) {
  const int64_t day = dayOf(now_ms);
  if (day != ev_day_) {
    ev_day_ = day;
    ev_today_kwh_ = 0;
  }
  std::map<std::string, int> states;
  int piles = 0;
  double power_kw = 0;
  int blocked = 0;
  json blocked_spaces = json::array();
  forEachDevice(snap, [&](const model::Device& d, const pipeline::DeviceView& view) {
    const auto& devices = snap.compound->devices;
    if (d.type() == "ev_pile") {
      ++piles;
      const auto* state = findPoint(snap, d.index, "state");
      std::string s = !view.online ? "offline"
                      : good(state) ? model::toText(state->value)
                                    : "unknown";
      std::transform(s.begin(), s.end(), s.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      states[s] += 1;
      const auto* power = findPoint(snap, d.index, "power_kw");
      if (view.online && good(power)) {
        power_kw += model::asNumber(power->value).value_or(0);
      }
      const auto* energy = findPoint(snap, d.index, "energy_kwh");
      if (energy != nullptr && !model::isEmpty(energy->value)) {
        double kwh = model::asNumber(energy->value).value_or(0);
        auto it = ev_last_kwh_.find(d.index);
        if (it != ev_last_kwh_.end()) {
          double step = kwh - it->second;
          // A drop means a new session (the counter restarted): it delivered `kwh` so far.
          ev_today_kwh_ += step >= 0 ? step : kwh;
          it->second = kwh;
        } else {
          ev_last_kwh_.emplace(d.index, kwh);
        }
      }
    } else if (d.type() == "parking_sensor" && d.linked != model::kNoDevice &&
               d.linked < devices.size() && devices[d.linked].profile != nullptr &&
               devices[d.linked].type() == "ev_pile") {
      // The space as counted (after the occupancy debounce), as the dashboard shows it.
      if (view.space != rules::occupancy::SpaceState::Occupied ||
          now_ms - view.space_since_ms < config_.ev_blocked_after.count()) {
        return;
      }
      const auto* pile_state = findPoint(snap, d.linked, "state");
      if (!model::pileInUse(model::pileStatus(good(pile_state) ? model::toText(pile_state->value)
                                                                : ""))) {
        ++blocked;
        if (blocked_spaces.size() < kMaxListedBlocked) {
          blocked_spaces.push_back({{"space", d.id}, {"pile", devices[d.linked].id},
                                    {"since_ms", view.space_since_ms}});
        }
      }
    }
  });
  json state_counts = json::object();
  for (const auto& [s, n] : states) {
    state_counts[s] = n;
  }
  return {{"piles", piles},
          {"states", std::move(state_counts)},
          {"power_kw", round3(power_kw)},
          {"energy_today_kwh", round3(ev_today_kwh_)},
          {"blocked", blocked},
          {"blocked_spaces", std::move(blocked_spaces)}};
}

json SummaryBuilder::ebike(const pipeline::Snapshot& snap, int64_t now_ms) {
  const int64_t day = dayOf(now_ms);
  struct Shed {
    int ports = 0;
    int in_use = 0;
    int cut = 0;
    int offline = 0;
    double power_w = 0;
    std::optional<double> max_temp_c;
    bool smoke = false;
    bool online = false;
  };
  std::map<std::string, Shed> sheds;
  Shed total;
  forEachDevice(snap, [&](const model::Device& d, const pipeline::DeviceView& view) {
    const auto& devices = snap.compound->devices;
    if (d.type() == "ebike_port") {
      const std::string shed_id = d.parent != model::kNoDevice && d.parent < devices.size()
                                      ? devices[d.parent].id
                                      : d.id;
      Shed& shed = sheds[shed_id];
      const auto* current = findPoint(snap, d.index, "current_a");
      const auto* power = findPoint(snap, d.index, "power_w");
      const auto* relay = findPoint(snap, d.index, "relay");
      const auto* temp = findPoint(snap, d.index, "temp_c");
      bool cut = view.safety_cut || (good(relay) && !model::asBool(relay->value).value_or(true));
      bool in_use = view.online && !cut && good(current) &&
                    model::asNumber(current->value).value_or(0) > config_.ebike_in_use_a;
      double p = view.online && good(power) ? model::asNumber(power->value).value_or(0) : 0;
      for (Shed* s : {&shed, &total}) {
        s->ports += 1;
        s->in_use += in_use ? 1 : 0;
        s->cut += cut ? 1 : 0;
        s->offline += view.online ? 0 : 1;
        s->power_w += p;
        if (view.online && good(temp)) {
          double t = model::asNumber(temp->value).value_or(0);
          s->max_temp_c = std::max(s->max_temp_c.value_or(t), t);
        }
      }
    } else if (d.type() == "ebike_shed") {
      Shed& shed = sheds[d.id];
      shed.online = view.online;
      const auto* smoke = findPoint(snap, d.index, "smoke");
      const auto* temp = findPoint(snap, d.index, "temp_c");
      if (view.online && good(smoke) && model::asBool(smoke->value).value_or(false)) {
        shed.smoke = true;
      }
      if (view.online && good(temp)) {
        double t = model::asNumber(temp->value).value_or(0);
        shed.max_temp_c = std::max(shed.max_temp_c.value_or(t), t);
      }
    }
  });
  if (day != ebike_day_) {
    ebike_day_ = day;
    ebike_today_wh_ = 0;
  } else if (ebike_last_ms_ > 0 && now_ms > ebike_last_ms_ &&
             now_ms - ebike_last_ms_ <= kMaxIntegrationGapMs) {
    ebike_today_wh_ += total.power_w * static_cast<double>(now_ms - ebike_last_ms_) / 3'600'000.0;
  }
  ebike_last_ms_ = now_ms;

  int smoke_sheds = 0;
  json shed_list = json::array();
  for (const auto& [id, s] : sheds) {
    smoke_sheds += s.smoke ? 1 : 0;
    json j = {{"shed", id},     {"ports", s.ports}, {"in_use", s.in_use}, {"cut", s.cut},
              {"offline", s.offline}, {"power_w", round3(s.power_w)}, {"smoke", s.smoke}};
    j["max_temp_c"] = s.max_temp_c ? json(round3(*s.max_temp_c)) : json(nullptr);
    shed_list.push_back(std::move(j));
  }
  return {{"sheds", static_cast<int>(sheds.size())},
          {"ports", total.ports},
          {"in_use", total.in_use},
          {"cut", total.cut},
          {"offline", total.offline},
          {"smoke", smoke_sheds},
          {"power_w", round3(total.power_w)},
          {"energy_today_kwh", round3(ebike_today_wh_ / 1000.0)},
          {"by_shed", std::move(shed_list)}};
}

json SummaryBuilder::health(const pipeline::Snapshot& snap) const {
  struct Count {
    int total = 0;
    int online = 0;
    int never_seen = 0;
  };
  std::map<std::string, Count> by_type;
  Count all;
  forEachDevice(snap, [&](const model::Device& d, const pipeline::DeviceView& view) {
    for (Count* c : {&all, &by_type[d.type()]}) {
      c->total += 1;
      c->online += view.online ? 1 : 0;
      c->never_seen += view.last_seen_ms == 0 ? 1 : 0;
    }
  });
  json types = json::object();
  for (const auto& [type, c] : by_type) {
    types[type] = {{"total", c.total}, {"online", c.online}, {"offline", c.total - c.online}};
  }
  return {{"devices", all.total},
          {"online", all.online},
          {"offline", all.total - all.online},
          {"never_seen", all.never_seen},
          {"by_type", std::move(types)}};
}

json SummaryBuilder::signature(SummaryType type, const json& body) {
  switch (type) {
  case SummaryType::Parking: {
    json sig = body;
    sig.erase("updated_ms");
    return sig;
  }
  case SummaryType::Ev:
    return {body.value("states", json::object()), body.value("blocked", 0)};
  case SummaryType::Ebike:
    return {body.value("in_use", 0), body.value("cut", 0), body.value("smoke", 0),
            body.value("offline", 0)};
  case SummaryType::Health:
    return {body.value("online", 0), body.value("offline", 0)};
  }
  return json();
}

} // namespace hgj::uplink
