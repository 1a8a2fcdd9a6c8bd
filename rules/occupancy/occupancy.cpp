#include "rules/occupancy/occupancy.h"

#include <algorithm>
#include <map>
#include <set>

namespace hgj::rules::occupancy {

Tracker::Tracker(const OccupancyConfig& config, const model::Compound& compound)
    : config_(config) {
  space_of_.assign(compound.devices.size(), -1);
  if (!config.point_known) {
    return;
  }
  std::map<std::string, std::set<std::string>> layout;
  for (const auto& d : compound.devices) {
    if (d.type() == config.device_type && d.profile->point(config.point) != nullptr) {
      layout[d.location.level].insert(d.location.zone);
    }
  }
  // Categories in the compound's order, only those some space has.
  std::vector<int> cat_used(compound.space_categories.size(), 0);
  for (const auto& d : compound.devices) {
    int c = compound.categoryIndex(d.category);
    if (c >= 0 && d.type() == config.device_type && d.profile->point(config.point) != nullptr) {
      cat_used[static_cast<size_t>(c)] = 1;
    }
  }
  std::map<std::string, uint16_t> cat_idx;
  for (size_t c = 0; c < cat_used.size(); ++c) {
    if (cat_used[c] != 0) {
      cat_idx[compound.space_categories[c].id] = static_cast<uint16_t>(categories_.size());
      categories_.push_back(CategoryCounts{compound.space_categories[c].id, {}});
    }
  }
  std::map<std::string, uint16_t> level_idx;
  std::map<std::pair<std::string, std::string>, uint16_t> zone_idx;
  for (const auto& [level, zones] : layout) {
    level_idx[level] = static_cast<uint16_t>(levels_.size());
    LevelCounts lc;
    lc.level = level;
    for (const auto& z : zones) {
      zone_idx[{level, z}] = static_cast<uint16_t>(lc.zones.size());
      lc.zones.push_back(ZoneCounts{z, {}});
    }
    levels_.push_back(std::move(lc));
  }
  for (const auto& d : compound.devices) {
    if (d.type() != config.device_type || d.profile->point(config.point) == nullptr) {
      continue;
    }
    Space s;
    s.device = d.index;
    s.level = level_idx[d.location.level];
    s.zone = zone_idx[{d.location.level, d.location.zone}];
    auto ct = cat_idx.find(d.category);
    if (ct == cat_idx.end()) {
      // A device built without the config loader (tests): the first category.
      if (categories_.empty()) {
        categories_.push_back(CategoryCounts{
            compound.space_categories.empty() ? "leased" : compound.space_categories[0].id, {}});
        cat_idx[categories_.back().category] = 0;
      }
      ct = cat_idx.find(categories_.front().category);
    }
    s.category = ct->second;
    space_of_[d.index] = static_cast<int32_t>(spaces_.size());
    spaces_.push_back(s);
    total_.total++;
    total_.unknown++;
    LevelCounts& lc = levels_[s.level];
    lc.counts.total++;
    lc.counts.unknown++;
    lc.zones[s.zone].counts.total++;
    lc.zones[s.zone].counts.unknown++;
    categories_[s.category].counts.total++;
    categories_[s.category].counts.unknown++;
  }
  if (!config.enabled) {
    return;
  }

  pending_.reserve(spaces_.size());
  for (size_t i = 0; i < config.thresholds.size(); ++i) {
    const Threshold& t = config.thresholds[i];
    auto add = [&](int level, int zone, std::string scope_text) {
      ThresholdState ts;
      ts.threshold = i;
      ts.scope = t.scope;
      ts.level = level;
      ts.zone = zone;
      ts.rule_name = t.name + ":" + scope_text;
      ts.scope_text = std::move(scope_text);
      thresholds_.push_back(std::move(ts));
    };
    if (t.scope == Scope::Total) {
      add(-1, -1, "total");
      continue;
    }
    for (size_t l = 0; l < levels_.size(); ++l) {
      if (t.scope == Scope::Level) {
        add(static_cast<int>(l), -1, levels_[l].level);
        continue;
      }
      for (size_t z = 0; z < levels_[l].zones.size(); ++z) {
        add(static_cast<int>(l), static_cast<int>(z),
            levels_[l].level + "/" + levels_[l].zones[z].zone);
      }
    }
  }
  for (const auto& out : config.displays) {
    DisplayState ds;
    ds.out = out;
    if (out.scope == Scope::Category) {
      auto it = cat_idx.find(out.category);
      if (it == cat_idx.end()) {
        continue;
      }
      ds.category = it->second;
    } else if (out.scope != Scope::Total) {
      auto it = level_idx.find(out.level);
      if (it == level_idx.end()) {
        continue;
      }
      ds.level = it->second;
      if (out.scope == Scope::Zone) {
        auto zt = zone_idx.find({out.level, out.zone});
        if (zt == zone_idx.end()) {
          continue;
        }
        ds.zone = zt->second;
      }
    }
    displays_.push_back(ds);
  }
}

namespace {

int& slot(Counts& c, SpaceState s) {
  switch (s) {
  case SpaceState::Free:
    return c.free;
  case SpaceState::Occupied:
    return c.occupied;
  case SpaceState::Unknown:
    break;
  }
  return c.unknown;
}

} // namespace

SpaceState Tracker::observe(const Space& s, const model::StateTable& state,
                            core::SteadyTime* since, int64_t* since_ms) const {
  const model::PointState* ps = state.point(s.device, config_.point);
  if (ps == nullptr || ps->quality != model::Quality::Good || model::isEmpty(ps->value)) {
    return SpaceState::Unknown;
  }
  auto b = model::asBool(ps->value);
  if (!b) {
    return SpaceState::Unknown;
  }
  *since = ps->since_steady;
  *since_ms = ps->since_ms;
  return *b ? SpaceState::Occupied : SpaceState::Free;
}

void Tracker::commit(Space& s, SpaceState to, int64_t since_ms) {
  s.pending = false;
  s.since_ms = since_ms;
  if (s.counted == to) {
    return;
  }
  LevelCounts& lc = levels_[s.level];
  Counts& zc = lc.zones[s.zone].counts;
  for (Counts* c : {&total_, &lc.counts, &zc, &categories_[s.category].counts}) {
    slot(*c, s.counted)--;
    slot(*c, to)++;
  }
  s.counted = to;
  ++version_;
}

void Tracker::evaluate(Space& s, const model::StateTable& state, core::SteadyTime now) {
  core::SteadyTime since{};
  int64_t since_ms = 0;
  SpaceState obs = observe(s, state, &since, &since_ms);
  if (obs == s.counted) {
    s.pending = false;
    return;
  }
  // Unknown is counted at once (never show a dead sensor as free); leaving unknown is at once
  // too, since there is no counted state to flap against.
  if (obs == SpaceState::Unknown || s.counted == SpaceState::Unknown ||
      config_.debounce.count() == 0 || now - since >= config_.debounce) {
    commit(s, obs, obs == SpaceState::Unknown ? s.since_ms : since_ms);
    return;
  }
  s.candidate = obs;
  s.candidate_since = since;
  s.candidate_since_ms = since_ms;
  if (!s.pending) {
    s.pending = true;
    pending_.push_back(static_cast<uint32_t>(&s - spaces_.data()));
  }
}

void Tracker::onReading(model::DeviceIndex device, const model::StateTable& state,
                        core::SteadyTime now) {
  if (!isSpace(device)) {
    return;
  }
  evaluate(spaces_[static_cast<size_t>(space_of_[device])], state, now);
}

void Tracker::onDeviceOffline(model::DeviceIndex device) {
  if (!isSpace(device)) {
    return;
  }
  Space& s = spaces_[static_cast<size_t>(space_of_[device])];
  commit(s, SpaceState::Unknown, s.since_ms);
}

void Tracker::onDeviceOnline(model::DeviceIndex device, const model::StateTable& state,
                             core::SteadyTime now) {
  onReading(device, state, now);
}

void Tracker::resync(const model::StateTable& state, core::SteadyTime now) {
  for (auto& s : spaces_) {
    evaluate(s, state, now);
  }
}

const Counts& Tracker::displayCounts(const DisplayState& ds) const {
  if (ds.out.scope == Scope::Category) {
    return categories_[static_cast<size_t>(ds.category)].counts;
  }
  return countsFor(ds.out.scope, ds.level, ds.zone);
}

const Counts& Tracker::countsFor(Scope scope, int level, int zone) const {
  if (scope == Scope::Total || scope == Scope::Category || level < 0) {
    return total_;
  }
  const LevelCounts& lc = levels_[static_cast<size_t>(level)];
  if (scope == Scope::Level || zone < 0) {
    return lc.counts;
  }
  return lc.zones[static_cast<size_t>(zone)].counts;
}

SpaceView Tracker::space(model::DeviceIndex device) const {
  if (!isSpace(device)) {
    return {};
  }
  const Space& s = spaces_[static_cast<size_t>(space_of_[device])];
  return SpaceView{s.counted, s.since_ms, s.category};
}

void Tracker::tick(const model::StateTable& state, core::SteadyTime now, int64_t now_wall_ms,
                   ActionSink& sink) {
  for (size_t i = 0; i < pending_.size();) {
    Space& s = spaces_[pending_[i]];
    if (s.pending) {
      evaluate(s, state, now);
    }
    if (!s.pending) {
      pending_[i] = pending_.back();
      pending_.pop_back();
    } else {
      ++i;
    }
  }

  for (auto& ts : thresholds_) {
    const Threshold& t = config_.thresholds[ts.threshold];
    const Counts& c = countsFor(ts.scope, ts.level, ts.zone);
    if (c.total == 0) {
      continue;
    }
    if (ts.active) {
      if (c.free >= t.clear_free_at_least) {
        ts.active = false;
        ts.pending = false;
        sink.clearAlert(AlertClear{ts.rule_name, model::kNoDevice,
                                   "free " + std::to_string(c.free) + " >= " +
                                       std::to_string(t.clear_free_at_least),
                                   now_wall_ms});
      }
      continue;
    }
    bool judged = static_cast<double>(c.unknown) <= t.max_unknown_ratio * c.total;
    if (!judged || c.free > t.free_at_most) {
      ts.pending = false;
      continue;
    }
    if (!ts.pending) {
      ts.pending = true;
      ts.pending_since = now;
    }
    if (now - ts.pending_since < t.hold) {
      continue;
    }
    ts.active = true;
    ts.pending = false;
    MessageFields f;
    f.set(Field::Scope, ts.scope_text);
    f.set(Field::Rule, t.name);
    f.set(Field::Free, std::to_string(c.free));
    f.set(Field::Occupied, std::to_string(c.occupied));
    f.set(Field::Unknown, std::to_string(c.unknown));
    f.set(Field::Total, std::to_string(c.total));
    f.set(Field::Value, std::to_string(c.free));
    f.set(Field::Threshold, std::to_string(t.free_at_most));
    AlertRaise a;
    a.rule = ts.rule_name;
    a.severity = t.severity;
    a.message = t.message.render(f);
    a.value = std::to_string(c.free);
    a.scope = ts.scope_text;
    a.source_ms = now_wall_ms;
    sink.raiseAlert(a);
  }

  for (auto& ds : displays_) {
    int free = displayCounts(ds).free;
    if (ds.written && (free == ds.last_written || now - ds.last_at < config_.display_min_interval)) {
      continue;
    }
    ds.written = true;
    ds.last_written = free;
    ds.last_at = now;
    WriteAction w;
    w.rule = "occupancy_display";
    w.device = ds.out.device;
    w.point = ds.out.point;
    w.value = model::Value(static_cast<double>(free));
    w.reason = "free count changed";
    w.source_ms = now_wall_ms;
    sink.writePoint(w);
  }
}

} // namespace hgj::rules::occupancy
