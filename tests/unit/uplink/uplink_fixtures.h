#pragma once

// Test helpers of the uplink tests (unit and integration): a small hand-built compound,
// snapshots filled by hand, a command sink that decides like the pipeline would.

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gateway/pipeline/commands.h"
#include "gateway/pipeline/read_model.h"
#include "gateway/storage/sqlite.h"
#include "model/compound.h"
#include "tests/support/test_support.h"

namespace hgj::uplink::testing {

// The shared helpers of tests/support, under the names the uplink tests use.
using hgj::test::TempDir;
using hgj::test::waitFor;

/// One integer from `sql` on the database file `path`.
inline int64_t queryInt(const std::string& path, const std::string& sql) {
  storage::Database db(path);
  return db.scalarInt(sql);
}

/// Runs `sql` on the database file `path` (another connection, as another process would).
inline void exec(const std::string& path, const std::string& sql) {
  storage::Database db(path);
  db.exec(sql);
}

inline model::Profile* addProfile(model::Compound& c, const std::string& name,
                                  const std::string& type,
                                  std::vector<std::tuple<std::string, model::PointType, bool>> pts) {
  auto p = std::make_unique<model::Profile>();
  p->name = name;
  p->device_type = type;
  p->transport = "mqtt";
  for (auto& [pname, ptype, writable] : pts) {
    model::PointDef d;
    d.id = c.internPoint(pname);
    d.name = pname;
    d.type = ptype;
    d.writable = writable;
    p->points.push_back(d);
  }
  c.profiles.push_back(std::move(p));
  return c.profiles.back().get();
}

/// Site "site1": parking P-B1-0001..0004 (zone A: 1-2, zone B: 3-4; P-B1-0004 is the space of
/// EV-01), piles EV-01 and EV-02, shed S01 with ports S01/P01..P03 (relay writable).
inline std::shared_ptr<model::Compound> makeCompound() {
  using model::PointType;
  auto c = std::make_shared<model::Compound>();
  c->site_id = "site1";
  c->site_name = "Test Compound";
  auto* parking = addProfile(*c, "parking_sensor_mqtt", "parking_sensor",
                             {{"occupied", PointType::Bool, false}});
  auto* ev = addProfile(*c, "ev_pile_mqtt", "ev_pile",
                        {{"state", PointType::String, false},
                         {"power_kw", PointType::Number, false},
                         {"energy_kwh", PointType::Number, false}});
  auto* port = addProfile(*c, "ebike_port_mqtt", "ebike_port",
                          {{"current_a", PointType::Number, false},
                           {"power_w", PointType::Number, false},
                           {"temp_c", PointType::Number, false},
                           {"relay", PointType::Bool, true}});
  auto* shed = addProfile(*c, "ebike_shed_mqtt", "ebike_shed",
                          {{"smoke", PointType::Bool, false}, {"temp_c", PointType::Number, false}});
  auto add = [&](const std::string& id, const model::Profile* p, std::string level = "",
                 std::string zone = "") {
    model::Device d;
    d.id = id;
    d.profile = p;
    d.grid = "G1";
    d.location.level = std::move(level);
    d.location.zone = std::move(zone);
    d.index = static_cast<model::DeviceIndex>(c->devices.size());
    c->devices.push_back(std::move(d));
    return c->devices.back().index;
  };
  add("P-B1-0001", parking, "B1", "A");
  add("P-B1-0002", parking, "B1", "A");
  add("P-B1-0003", parking, "B1", "B");
  auto space = add("P-B1-0004", parking, "B1", "B");
  auto ev1 = add("EV-01", ev, "B1", "B");
  add("EV-02", ev, "B1", "B");
  auto s01 = add("S01", shed);
  for (int n = 1; n <= 3; ++n) {
    auto i = add("S01/P0" + std::to_string(n), port);
    c->devices[i].parent = s01;
    c->devices[i].child_number = n;
    c->devices[s01].children.push_back(i);
  }
  c->devices[space].linked = ev1;
  c->devices[space].linked_id = "EV-01";
  c->devices[ev1].linked = space;
  c->devices[ev1].linked_id = "P-B1-0004";
  c->buildIndexes();
  return c;
}

/// A snapshot of `c` with every device offline and every point empty.
inline pipeline::Snapshot emptySnapshot(std::shared_ptr<const model::Compound> c) {
  pipeline::Snapshot s;
  s.version = 1;
  s.compound = c;
  for (const auto& d : c->devices) {
    pipeline::DeviceView v;
    for (const auto& p : d.profile->points) {
      pipeline::PointView pv;
      pv.id = p.id;
      v.points.push_back(pv);
    }
    s.devices.push_back(std::move(v));
  }
  return s;
}

inline void setPoint(pipeline::Snapshot& s, const std::string& device, const std::string& point,
                     model::Value value, int64_t since_ms, int64_t updated_ms = 0) {
  auto idx = s.compound->deviceIndex(device);
  const auto& d = s.compound->devices.at(idx);
  int slot = d.profile->slot(*s.compound->pointId(point));
  auto& pv = s.devices.at(idx).points.at(static_cast<size_t>(slot));
  pv.value = std::move(value);
  pv.quality = model::Quality::Good;
  pv.since_ms = since_ms;
  pv.updated_ms = updated_ms == 0 ? since_ms : updated_ms;
  s.devices[idx].online = true;
  s.devices[idx].last_seen_ms = pv.updated_ms;
  if (d.type() == "parking_sensor" && point == "occupied") {
    // What the occupancy tracker makes of a settled reading (the debounce is the rules' test).
    auto b = model::asBool(pv.value);
    s.devices[idx].space = !b ? rules::occupancy::SpaceState::Unknown
                           : *b ? rules::occupancy::SpaceState::Occupied
                                : rules::occupancy::SpaceState::Free;
    s.devices[idx].space_since_ms = since_ms;
  }
}

/// Recomputes the parking counts of a snapshot from its parking sensors (what the pipeline does).
inline void countParking(pipeline::Snapshot& s) {
  std::map<std::string, std::map<std::string, pipeline::ParkingCounts>> by;
  s.parking = {};
  for (const auto& d : s.compound->devices) {
    if (d.type() != "parking_sensor") {
      continue;
    }
    const auto& v = s.devices[d.index];
    const auto& pv = v.points[0];
    pipeline::ParkingCounts& z = by[d.location.level][d.location.zone];
    for (auto* c : {&z, &s.parking}) {
      c->total += 1;
      if (!v.online || pv.quality != model::Quality::Good || model::isEmpty(pv.value)) {
        c->unknown += 1;
      } else if (model::asBool(pv.value).value_or(false)) {
        c->occupied += 1;
      } else {
        c->free += 1;
      }
    }
  }
  s.levels.clear();
  for (auto& [level, zones] : by) {
    pipeline::ParkingLevel l;
    l.level = level;
    for (auto& [zone, counts] : zones) {
      l.zones.push_back({zone, counts});
      l.counts.total += counts.total;
      l.counts.occupied += counts.occupied;
      l.counts.free += counts.free;
      l.counts.unknown += counts.unknown;
    }
    s.levels.push_back(std::move(l));
  }
}

/// Decides like the pipeline: writes only to writable points of known devices, acks only known
/// alerts. Records every command. Thread-safe.
class FakeCommandSink : public pipeline::CommandSink {
public:
  explicit FakeCommandSink(std::shared_ptr<const model::Compound> c) : compound_(std::move(c)) {}

  std::future<pipeline::CommandResult> submit(pipeline::Command command) override {
    std::promise<pipeline::CommandResult> p;
    auto f = p.get_future();
    std::lock_guard lock(mu_);
    received_.push_back(command);
    if (hang_) {
      hanging_.push_back(std::move(p));
      return f;
    }
    p.set_value(decide(command));
    return f;
  }

  std::vector<pipeline::Command> received() const {
    std::lock_guard lock(mu_);
    return received_;
  }
  void setHang(bool hang) {
    std::lock_guard lock(mu_);
    hang_ = hang;
  }
  std::vector<int64_t> known_alerts{7, 8};

private:
  pipeline::CommandResult decide(const pipeline::Command& c) const {
    using K = pipeline::Command::Kind;
    if (c.kind == K::AckAlert) {
      for (auto a : known_alerts) {
        if (a == c.alert_id) {
          return {true, 200, "alert " + std::to_string(a) + " acknowledged by " + c.by};
        }
      }
      return {false, 404, "unknown alert " + std::to_string(c.alert_id)};
    }
    if (c.kind == K::WritePoint) {
      const auto* d = compound_->device(c.device);
      if (d == nullptr) {
        return {false, 404, "unknown device " + c.device};
      }
      const auto* p = d->profile->point(c.point);
      if (p == nullptr) {
        return {false, 404, "device " + c.device + " has no point " + c.point};
      }
      if (!p->writable) {
        return {false, 403, "point " + c.point + " of " + c.device + " is not writable"};
      }
      return {true, 200, "written and verified"};
    }
    return {true, 200, "ok"};
  }

  std::shared_ptr<const model::Compound> compound_;
  mutable std::mutex mu_;
  std::vector<pipeline::Command> received_;
  std::vector<std::promise<pipeline::CommandResult>> hanging_;
  bool hang_ = false;
};

} // namespace hgj::uplink::testing
