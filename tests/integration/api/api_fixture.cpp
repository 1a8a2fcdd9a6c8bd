#include "tests/integration/api/api_fixture.h"

#include <sqlite3.h>

#include <cstdio>
#include <map>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "gateway/api/views.h"

namespace hgj::api::testing {

namespace {

std::string num(const char* fmt, int n) {
  char buf[32];
  std::snprintf(buf, sizeof buf, fmt, n);
  return buf;
}

model::Profile*
addProfile(model::Compound& c, const std::string& name, const std::string& type,
           std::vector<std::tuple<std::string, model::PointType, std::string, bool>> points) {
  auto p = std::make_unique<model::Profile>();
  p->name = name;
  p->device_type = type;
  p->transport = "mqtt";
  p->expected_interval_ms = 90'000;
  for (auto& [pname, type_, unit, writable] : points) {
    model::PointDef d;
    d.id = c.internPoint(pname);
    d.name = pname;
    d.type = type_;
    d.unit = unit;
    d.writable = writable;
    p->points.push_back(d);
  }
  c.profiles.push_back(std::move(p));
  return c.profiles.back().get();
}

void exec(sqlite3* db, const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err != nullptr ? err : "?";
    sqlite3_free(err);
    throw std::runtime_error("sqlite: " + msg);
  }
}

sqlite3* openRw(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) {
    throw std::runtime_error("cannot open " + path);
  }
  sqlite3_busy_timeout(db, 2000);
  return db;
}

} // namespace

std::shared_ptr<model::Compound> makeCompound(const CompoundShape& shape) {
  auto c = std::make_shared<model::Compound>();
  c->site_id = "demo-001";
  c->site_name = "演示小区";
  c->levels = {{"B2", "地下二层"}, {"B1", "地下一层"}};
  using T = model::PointType;
  auto* parking =
      addProfile(*c, "parking_sensor_mqtt", "parking_sensor", {{"occupied", T::Bool, "", false}});
  auto* pile = addProfile(*c, "ev_pile_mqtt", "ev_pile",
                          {{"state", T::String, "", false},
                           {"power_kw", T::Number, "kW", false},
                           {"energy_kwh", T::Number, "kWh", false}});
  auto* shed = addProfile(*c, "ebike_shed_mqtt", "ebike_shed",
                          {{"smoke", T::Bool, "", false}, {"temp_c", T::Number, "°C", false}});
  auto* port = addProfile(*c, "ebike_port_mqtt", "ebike_port",
                          {{"current_a", T::Number, "A", false},
                           {"power_w", T::Number, "W", false},
                           {"temp_c", T::Number, "°C", false},
                           {"relay", T::Bool, "", true}});
  auto* co = addProfile(*c, "co_sensor_mqtt", "co_sensor", {{"co_ppm", T::Number, "ppm", false}});
  shed->child_profile = port->name;
  shed->child_id_template = "{parent}/P{n:02}";
  for (const char* g : {"G1", "G2"}) {
    model::Grid grid;
    grid.id = g;
    grid.name = std::string("网格") + g;
    grid.staff.push_back({"张三", "13800000000", "zhangsan", "13800000000"});
    c->grids.push_back(grid);
  }
  const std::string zones = "ABCD";
  int per_zone = shape.spaces_per_level / 4;
  for (const char* level : {"B1", "B2"}) {
    for (int n = 1; n <= shape.spaces_per_level; ++n) {
      model::Device d;
      d.id = std::string("P-") + level + num("-%04d", n);
      d.profile = parking;
      d.grid = std::string(level) == "B1" ? "G1" : "G2";
      d.location = {"1", level, std::string(1, zones[static_cast<size_t>((n - 1) / per_zone)]),
                    d.id};
      // B1's first spaces serve the piles (ev); B2's last four are for visitors.
      d.category = std::string(level) == "B1" && n <= shape.ev_piles ? "ev"
                   : std::string(level) == "B2" && n > shape.spaces_per_level - 4 ? "visitor"
                                                                                   : "leased";
      c->devices.push_back(d);
    }
  }
  for (int n = 1; n <= shape.ev_piles; ++n) {
    model::Device d;
    d.id = num("EV-%02d", n);
    d.profile = pile;
    d.grid = "G1";
    d.location = {"1", "B1", "A", ""};
    // Piles serve the first spaces of B1.
    d.linked_id = "P-B1" + num("-%04d", n);
    c->devices.push_back(d);
  }
  for (int s = 1; s <= shape.sheds; ++s) {
    model::Device d;
    d.id = num("S%02d", s);
    d.profile = shed;
    d.grid = s % 2 == 1 ? "G1" : "G2";
    d.location = {num("%d", s), "1F", "", ""};
    c->devices.push_back(d);
    auto parent = static_cast<model::DeviceIndex>(c->devices.size() - 1);
    for (int p = 1; p <= shape.ports_per_shed; ++p) {
      model::Device pd;
      pd.id = d.id + num("/P%02d", p);
      pd.profile = port;
      pd.grid = d.grid;
      pd.location = d.location;
      pd.parent = parent;
      pd.child_number = p;
      c->devices.push_back(pd);
      c->devices[parent].children.push_back(static_cast<model::DeviceIndex>(c->devices.size() - 1));
    }
  }
  model::Device cod;
  cod.id = "CO-B1-01";
  cod.profile = co;
  cod.grid = "G1";
  cod.location = {"1", "B1", "A", ""};
  c->devices.push_back(cod);
  c->buildIndexes();
  for (int n = 1; n <= shape.ev_piles; ++n) {
    auto& space = c->devices[c->deviceIndex("P-B1" + num("-%04d", n))];
    space.linked_id = num("EV-%02d", n);
  }
  c->buildIndexes();
  return c;
}

LiveState::LiveState(std::shared_ptr<const model::Compound> compound, int64_t now_ms)
    : compound_(std::move(compound)), now_ms_(now_ms) {
  devices_.resize(compound_->devices.size());
  for (size_t i = 0; i < devices_.size(); ++i) {
    for (const auto& def : compound_->devices[i].profile->points) {
      pipeline::PointView pv;
      pv.id = def.id;
      devices_[i].points.push_back(pv);
    }
  }
}

pipeline::PointView* LiveState::point(const std::string& id, const std::string& name) {
  const model::Device* d = compound_->device(id);
  if (d == nullptr) {
    throw std::runtime_error("no device " + id);
  }
  const model::PointDef* def = d->profile->point(name);
  if (def == nullptr) {
    throw std::runtime_error("no point " + name + " on " + id);
  }
  return &devices_[d->index].points[static_cast<size_t>(d->profile->slot(def->id))];
}

void LiveState::setPoint(const std::string& id, const std::string& name, model::Value value,
                         model::Quality quality) {
  pipeline::PointView* p = point(id, name);
  if (p->value != value || p->since_ms == 0) {
    p->since_ms = now_ms_;
  }
  p->value = std::move(value);
  p->quality = quality;
  p->updated_ms = now_ms_;
  auto& dv = devices_[compound_->deviceIndex(id)];
  dv.online = true;
  dv.last_seen_ms = now_ms_;
}

void LiveState::setOnline(const std::string& id, bool online) {
  auto& dv = devices_[compound_->deviceIndex(id)];
  dv.online = online;
  if (!online) {
    for (auto& p : dv.points) {
      if (p.quality == model::Quality::Good) {
        p.quality = model::Quality::Stale;
      }
    }
  } else {
    dv.last_seen_ms = now_ms_;
  }
}

void LiveState::setSafetyCut(const std::string& id, bool cut) {
  devices_[compound_->deviceIndex(id)].safety_cut = cut;
}

void LiveState::setSpace(const std::string& id, std::optional<bool> occupied) {
  if (occupied) {
    setPoint(id, "occupied", *occupied);
  } else {
    setOnline(id, false);
  }
  changed_spaces_.push_back(id);
}

void LiveState::fillDefaults() {
  int i = 0;
  for (const auto& d : compound_->devices) {
    ++i;
    if (d.type() == "parking_sensor") {
      if (i % 17 == 0) {
        continue; // never reported: unknown
      }
      setPoint(d.id, "occupied", i % 3 == 0);
    } else if (d.type() == "ev_pile") {
      bool charging = i % 2 == 0;
      setPoint(d.id, "state", std::string(charging ? "charging" : "idle"));
      setPoint(d.id, "power_kw", charging ? 6.8 : 0.0);
      setPoint(d.id, "energy_kwh", 12.3);
    } else if (d.type() == "ebike_shed") {
      setPoint(d.id, "smoke", false);
      setPoint(d.id, "temp_c", 24.0);
    } else if (d.type() == "ebike_port") {
      bool in_use = i % 2 == 0;
      setPoint(d.id, "current_a", in_use ? 1.8 : 0.0);
      setPoint(d.id, "power_w", in_use ? 400.0 : 0.0);
      setPoint(d.id, "temp_c", in_use ? 35.2 : 22.0);
      setPoint(d.id, "relay", true);
    } else if (d.type() == "co_sensor") {
      setPoint(d.id, "co_ppm", 5.0);
    }
  }
  changed_spaces_.clear();
}

void LiveState::publish(pipeline::ReadModel& rm) {
  auto s = std::make_shared<pipeline::Snapshot>();
  s->version = ++version_;
  s->updated_ms = now_ms_;
  s->compound = compound_;
  s->devices = devices_;
  std::map<std::string, std::map<std::string, pipeline::ParkingCounts>> counts;
  auto add = [](pipeline::ParkingCounts& c, const std::string& st) {
    ++c.total;
    if (st == "occupied") {
      ++c.occupied;
    } else if (st == "free") {
      ++c.free;
    } else {
      ++c.unknown;
    }
  };
  for (const auto& d : compound_->devices) {
    if (d.type() != "parking_sensor") {
      continue;
    }
    // Counted as the occupancy tracker does without a debounce: the sensor's state.
    std::string st = api::sensorState(*s, d);
    s->devices[d.index].space = st == "occupied" ? rules::occupancy::SpaceState::Occupied
                                : st == "free"   ? rules::occupancy::SpaceState::Free
                                                 : rules::occupancy::SpaceState::Unknown;
    const pipeline::PointView* occ = api::pointOf(*s, d, "occupied");
    s->devices[d.index].space_since_ms = occ != nullptr ? occ->since_ms : 0;
    add(counts[d.location.level][d.location.zone], st);
    add(s->parking, st);
  }
  for (const auto& [level, zones] : counts) {
    pipeline::ParkingLevel l;
    l.level = level;
    for (const auto& [zone, c] : zones) {
      l.zones.push_back({zone, c});
      l.counts.total += c.total;
      l.counts.occupied += c.occupied;
      l.counts.free += c.free;
      l.counts.unknown += c.unknown;
    }
    s->levels.push_back(l);
  }
  for (const auto& cat : compound_->space_categories) {
    pipeline::ParkingCategory pc{cat.id, {}};
    for (const auto& d : compound_->devices) {
      if (d.type() == "parking_sensor" && d.category == cat.id) {
        add(pc.counts, spaceState(*s, d));
      }
    }
    if (pc.counts.total > 0) {
      s->categories.push_back(pc);
    }
  }
  std::vector<std::string> changed;
  changed.swap(changed_spaces_);
  std::shared_ptr<const pipeline::Snapshot> snap = s;
  rm.publish(snap);
  for (const auto& id : changed) {
    const model::Device* d = compound_->device(id);
    const pipeline::PointView* p = api::pointOf(*snap, *d, "occupied");
    nlohmann::json j{{"id", id},
                     {"level", d->location.level},
                     {"zone", d->location.zone},
                     {"state", api::spaceState(*snap, *d)},
                     {"since", api::timeOrNull(p != nullptr ? p->since_ms : 0)},
                     {"sensor", api::sensorState(*snap, *d)}};
    rm.pushEvent("space", j.dump());
  }
}

void createAlertsTable(const std::string& db_path) {
  sqlite3* db = openRw(db_path);
  exec(db, "PRAGMA journal_mode=WAL");
  exec(db, "CREATE TABLE IF NOT EXISTS alerts(id INTEGER PRIMARY KEY, rule TEXT, device TEXT, "
           "grid TEXT, severity TEXT, state TEXT, message TEXT, value TEXT, source_ts INTEGER, "
           "raised_at INTEGER, acked_at INTEGER, acked_by TEXT, ack_note TEXT, cleared_at INTEGER, "
           "escalation_level INTEGER, actions TEXT)");
  sqlite3_close(db);
}

int64_t insertAlert(const std::string& db_path, const std::string& rule, const std::string& device,
                    const std::string& grid, const std::string& severity, const std::string& state,
                    const std::string& message, const std::string& value_json, int64_t raised_at) {
  sqlite3* db = openRw(db_path);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db,
                     "INSERT INTO alerts(rule, device, grid, severity, state, message, value, "
                     "source_ts, raised_at, escalation_level, actions) "
                     "VALUES(?,?,?,?,?,?,?,?,?,0,'[]')",
                     -1, &st, nullptr);
  sqlite3_bind_text(st, 1, rule.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 2, device.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 3, grid.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 4, severity.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 5, state.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 6, message.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 7, value_json.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st, 8, raised_at - 5);
  sqlite3_bind_int64(st, 9, raised_at);
  int rc = sqlite3_step(st);
  sqlite3_finalize(st);
  int64_t id = sqlite3_last_insert_rowid(db);
  sqlite3_close(db);
  if (rc != SQLITE_DONE) {
    throw std::runtime_error("insert alert failed");
  }
  return id;
}

std::future<pipeline::CommandResult> TestCommandSink::submit(pipeline::Command command) {
  std::promise<pipeline::CommandResult> promise;
  auto fut = promise.get_future();
  std::lock_guard lock(mu_);
  received_.push_back(command);
  if (hang_) {
    hung_.push_back(std::move(promise));
    return fut;
  }
  pipeline::CommandResult r;
  if (command.kind == pipeline::Command::Kind::AckAlert) {
    sqlite3* db = openRw(db_path_);
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db, "SELECT state FROM alerts WHERE id = ?", -1, &st, nullptr);
    sqlite3_bind_int64(st, 1, command.alert_id);
    std::string state;
    if (sqlite3_step(st) == SQLITE_ROW) {
      state = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
    if (state.empty()) {
      r = {false, 404, "no alert " + std::to_string(command.alert_id)};
    } else if (state != "active") {
      r = {false, 409, "alert is " + state};
    } else {
      sqlite3_prepare_v2(db,
                         "UPDATE alerts SET state='acked', acked_at=?, acked_by=?, ack_note=? "
                         "WHERE id=?",
                         -1, &st, nullptr);
      sqlite3_bind_int64(st, 1, now_ms_);
      sqlite3_bind_text(st, 2, command.by.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(st, 3, command.note.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_int64(st, 4, command.alert_id);
      sqlite3_step(st);
      sqlite3_finalize(st);
      r = {true, 200, "acknowledged"};
      if (events_ != nullptr) {
        events_->pushEvent("alert",
                           nlohmann::json{{"id", command.alert_id}, {"state", "acked"}}.dump());
      }
    }
    sqlite3_close(db);
  } else {
    r = {true, 200, "written"};
  }
  promise.set_value(r);
  return fut;
}

void TestCommandSink::setHang(bool hang) {
  std::lock_guard lock(mu_);
  hang_ = hang;
}

std::vector<pipeline::Command> TestCommandSink::received() const {
  std::lock_guard lock(mu_);
  return received_;
}

} // namespace hgj::api::testing
