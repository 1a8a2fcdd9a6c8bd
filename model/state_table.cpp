#include "model/state_table.h"

namespace hgj::model {

namespace {

bool sameValue(const Value& a, const Value& b) {
  if (a.index() != b.index()) {
    return false;
  }
  return a == b;
}

} // namespace

StateTable::StateTable(const Compound& compound) : compound_(compound) {
  devices_.resize(compound.devices.size());
  for (size_t i = 0; i < compound.devices.size(); ++i) {
    devices_[i].points.resize(compound.devices[i].profile->points.size());
  }
}

ApplyResult StateTable::apply(const Reading& r, core::SteadyTime now_steady) {
  ApplyResult res;
  if (r.device >= devices_.size()) {
    return res;
  }
  const Device& dev = compound_.devices[r.device];
  int slot = dev.profile->slot(r.point);
  DeviceState& ds = devices_[r.device];
  res.came_online = !ds.online;
  ds.online = true;
  ds.ever_seen = true;
  ds.last_seen_ms = r.ingest_ms;
  ds.last_seen_steady = now_steady;
  if (slot < 0) {
    return res;
  }
  res.known = true;
  PointState& ps = ds.points[static_cast<size_t>(slot)];
  if (!sameValue(ps.value, r.value) || ps.since_ms == 0) {
    res.value_changed = !sameValue(ps.value, r.value);
    ps.value = r.value;
    ps.since_ms = r.source_ms;
    ps.since_steady = now_steady;
  }
  ps.quality = r.quality;
  ps.source_ms = r.source_ms;
  ps.updated_ms = r.ingest_ms;
  ps.updated_steady = now_steady;
  return res;
}

void StateTable::restore(DeviceIndex device, PointId point, const Value& value, Quality quality,
                         int64_t source_ms, int64_t since_ms, int64_t updated_ms,
                         int64_t now_wall_ms, core::SteadyTime now_steady) {
  if (device >= devices_.size()) {
    return;
  }
  int slot = compound_.devices[device].profile->slot(point);
  if (slot < 0) {
    return;
  }
  PointState& ps = devices_[device].points[static_cast<size_t>(slot)];
  ps.value = value;
  ps.quality = quality;
  ps.source_ms = source_ms;
  ps.since_ms = since_ms;
  ps.updated_ms = updated_ms;
  int64_t age = now_wall_ms > since_ms ? now_wall_ms - since_ms : 0;
  ps.since_steady = now_steady - core::Millis(age);
  int64_t upd_age = now_wall_ms > updated_ms ? now_wall_ms - updated_ms : 0;
  ps.updated_steady = now_steady - core::Millis(upd_age);
  DeviceState& ds = devices_[device];
  if (updated_ms > ds.last_seen_ms) {
    ds.last_seen_ms = updated_ms;
    ds.last_seen_steady = ps.updated_steady;
  }
  // A restored device is not online until it reports again: its values are stale until then.
  ds.ever_seen = true;
}

bool StateTable::markOffline(DeviceIndex device) {
  DeviceState& ds = devices_[device];
  if (!ds.online && ds.ever_seen) {
    return false;
  }
  bool was_online = ds.online;
  ds.online = false;
  for (auto& p : ds.points) {
    if (p.quality == Quality::Good) {
      p.quality = Quality::Stale;
    }
  }
  return was_online;
}

bool StateTable::markOnline(DeviceIndex device, int64_t now_ms, core::SteadyTime now_steady) {
  DeviceState& ds = devices_[device];
  bool changed = !ds.online;
  ds.online = true;
  ds.ever_seen = true;
  ds.last_seen_ms = now_ms;
  ds.last_seen_steady = now_steady;
  return changed;
}

const PointState* StateTable::point(DeviceIndex d, PointId p) const {
  if (d >= devices_.size()) {
    return nullptr;
  }
  int slot = compound_.devices[d].profile->slot(p);
  if (slot < 0) {
    return nullptr;
  }
  return &devices_[d].points[static_cast<size_t>(slot)];
}

const Value* StateTable::goodValue(DeviceIndex d, PointId p) const {
  const PointState* ps = point(d, p);
  if (ps == nullptr || ps->quality != Quality::Good || isEmpty(ps->value)) {
    return nullptr;
  }
  return &ps->value;
}

} // namespace hgj::model
