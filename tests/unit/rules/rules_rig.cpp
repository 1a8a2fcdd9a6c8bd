#include "tests/unit/rules/rules_rig.h"

#include <catch2/catch.hpp>

namespace hgj::rules::test {

namespace {

model::Profile* addProfile(model::Compound& c, const std::string& name, const std::string& type,
                           std::vector<std::tuple<std::string, model::PointType, bool>> points,
                           int64_t interval_ms = 120'000) {
  auto p = std::make_unique<model::Profile>();
  p->name = name;
  p->device_type = type;
  p->transport = "mqtt";
  p->expected_interval_ms = interval_ms;
  for (auto& [pname, ptype, writable] : points) {
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

std::string pad(int n, int width) {
  std::string s = std::to_string(n);
  while (static_cast<int>(s.size()) < width) {
    s = "0" + s;
  }
  return s;
}

} // namespace

std::unique_ptr<model::Compound> makeCompound(const CompoundSpec& spec) {
  auto c = std::make_unique<model::Compound>();
  c->site_id = "test";
  for (const char* g : {"G1", "G2"}) {
    model::Grid grid;
    grid.id = g;
    grid.name = g;
    c->grids.push_back(grid);
  }
  using T = model::PointType;
  auto* parking = addProfile(*c, "parking_sensor_mqtt", "parking_sensor",
                             {{"occupied", T::Bool, false}}, 3'600'000);
  auto* port = addProfile(*c, "ebike_port_mqtt", "ebike_port",
                          {{"current_a", T::Number, false},
                           {"power_w", T::Number, false},
                           {"temp_c", T::Number, false},
                           {"relay", T::Bool, true},
                           {"session_s", T::Number, false},
                           {"energy_kwh", T::Number, false}},
                          90'000);
  auto* shed = addProfile(*c, "ebike_shed_mqtt", "ebike_shed",
                          {{"smoke", T::Bool, false},
                           {"temp_c", T::Number, false},
                           {"power_w", T::Number, false}},
                          90'000);
  auto* pile = addProfile(*c, "ev_pile_mqtt", "ev_pile",
                          {{"state", T::String, false},
                           {"power_kw", T::Number, false},
                           {"energy_kwh", T::Number, false}});
  auto* co = addProfile(*c, "co_sensor_mqtt", "co_sensor", {{"co_ppm", T::Number, false}});
  auto* fan = addProfile(*c, "fan_modbus", "fan", {{"fan_stage1", T::Bool, true}, {"fan_stage2", T::Bool, true}});
  auto* meter = addProfile(*c, "meter_sdm120", "meter",
                           {{"power_w", T::Number, false}, {"energy_kwh", T::Number, false}});
  auto* display = addProfile(*c, "display_modbus", "display",
                             {{"free_total", T::Number, true},
                              {"free_B1", T::Number, true},
                              {"free_B2", T::Number, true},
                              {"free_B1_A", T::Number, true},
                              {"free_visitor", T::Number, true}});

  auto add = [&](const std::string& id, const model::Profile* prof, model::Location loc,
                 std::string grid) -> model::Device& {
    model::Device d;
    d.id = id;
    d.profile = prof;
    d.location = std::move(loc);
    d.grid = std::move(grid);
    d.index = static_cast<model::DeviceIndex>(c->devices.size());
    c->devices.push_back(std::move(d));
    return c->devices.back();
  };
  const int per_zone = std::max(1, spec.spaces_per_level / 4);
  for (const char* level : {"B1", "B2"}) {
    for (int n = 1; n <= spec.spaces_per_level; ++n) {
      std::string zone(1, "ABCD"[std::min(3, (n - 1) / per_zone)]);
      std::string id = std::string("P-") + level + "-" + pad(n, 4);
      model::Device& sp = add(id, parking, {"", level, zone, id}, "G1");
      sp.category = std::string(level) == "B1" && n <= spec.visitor_spaces ? "visitor" : "leased";
    }
  }
  auto add_shed = [&](const std::string& id, int ports) {
    model::DeviceIndex s = add(id, shed, {"3号楼", "", "", ""}, "G2").index;
    for (int p = 1; p <= ports; ++p) {
      model::Device& d = add(id + "/P" + pad(p, 2), port, {"3号楼", "", "", "P" + pad(p, 2)}, "G2");
      d.parent = s;
      d.child_number = p;
      c->devices[s].children.push_back(d.index);
    }
  };
  for (int s = 1; s <= spec.sheds; ++s) {
    add_shed("S" + pad(s, 2), spec.ports);
  }
  for (int s = 1; s <= spec.modbus_sheds; ++s) {
    add_shed("M" + pad(s, 2), 12);
  }
  for (int p = 1; p <= spec.piles; ++p) {
    int space = spec.spaces_per_level - spec.piles + p;
    std::string space_id = "P-B2-" + pad(space, 4);
    model::Device& d = add("EV-" + pad(p, 2), pile, {"", "B2", "D", ""}, "G1");
    d.linked_id = space_id;
    for (auto& sp : c->devices) {
      if (sp.id == space_id) {
        sp.linked_id = d.id;
        sp.category = "ev";
      }
    }
  }
  for (const char* level : {"B1", "B2"}) {
    for (int i = 1; i <= spec.co_sensors_per_level; ++i) {
      add(std::string("CO-") + level + "-" + std::to_string(i), co, {"", level, "A", ""}, "G1");
    }
    for (int i = 1; i <= spec.fans_per_level; ++i) {
      add(std::string("FAN-") + level + "-" + std::to_string(i), fan, {"", level, "A", ""}, "G1");
    }
  }
  for (int i = 1; i <= spec.meters; ++i) {
    add("MTR-" + pad(i, 2), meter, {}, "G1");
  }
  if (spec.display) {
    add("DISP-ENTRANCE", display, {"", "B1", "", ""}, "G1");
  }
  c->buildIndexes();
  return c;
}

void RecordingSink::raiseAlert(const AlertRaise& a) {
  raised.push_back({std::string(a.rule), a.device, a.severity, a.message, a.value, a.source_ms,
                    a.actions_taken, a.escalate_now});
}

void RecordingSink::clearAlert(const AlertClear& c) {
  cleared.push_back({std::string(c.rule), c.device});
}

void RecordingSink::writePoint(const WriteAction& w) {
  writes.push_back({std::string(w.rule), w.device, w.point, w.value, w.safety});
}

void RecordingSink::reset() {
  raised.clear();
  cleared.clear();
  writes.clear();
}

size_t RecordingSink::raisedCount(const std::string& rule) const {
  size_t n = 0;
  for (const auto& r : raised) {
    n += r.rule == rule ? 1 : 0;
  }
  return n;
}

std::string Rig::problems(const std::string& rules_yaml, model::Compound& compound) {
  core::Diagnostics diag;
  auto root = core::loadYamlText(rules_yaml, "rules.yaml", diag);
  if (root) {
    parseRulesConfig(*root, compound);
  }
  return diag.format();
}

Rig::Rig(const std::string& rules_yaml, const CompoundSpec& spec) {
  compound = makeCompound(spec);
  core::Diagnostics diag;
  auto root = core::loadYamlText(rules_yaml, "rules.yaml", diag);
  REQUIRE(root);
  config = std::make_unique<RulesConfig>(parseRulesConfig(*root, *compound));
  INFO(diag.format());
  REQUIRE(diag.ok());
  state = std::make_unique<model::StateTable>(*compound);
  engine = std::make_unique<Engine>(*config, *compound, clock);
}

model::DeviceIndex Rig::dev(const std::string& id) const {
  auto d = compound->deviceIndex(id);
  REQUIRE(d != model::kNoDevice);
  return d;
}

model::PointId Rig::pt(const std::string& name) const {
  auto p = compound->pointId(name);
  REQUIRE(p);
  return *p;
}

void Rig::feed(const std::string& device, const std::string& point, model::Value value,
               model::Quality quality) {
  model::Reading r;
  r.device = dev(device);
  r.point = pt(point);
  r.value = std::move(value);
  r.quality = quality;
  r.source_ms = clock.wallMs();
  r.ingest_ms = clock.wallMs();
  auto res = state->apply(r, clock.steadyNow());
  engine->onReading(r, res, *state, sink);
}

void Rig::run(std::chrono::milliseconds d) {
  auto end = clock.steadyNow() + d;
  while (clock.steadyNow() < end) {
    clock.advance(std::chrono::milliseconds(200));
    tick();
  }
}

void Rig::offline(const std::string& device) {
  state->markOffline(dev(device));
  engine->onDeviceOffline(dev(device), *state, sink);
}

void Rig::restart() {
  state = std::make_unique<model::StateTable>(*compound);
  engine = std::make_unique<Engine>(*config, *compound, clock);
}

} // namespace hgj::rules::test
