#include "tools/sim/scenario.h"

#include <algorithm>
#include <filesystem>

#include "core/time_format.h"

namespace hgj::sim {

namespace {

using std::chrono::milliseconds;

constexpr milliseconds kDay = std::chrono::hours(24);

struct EventName {
  const char* name;
  EventType type;
};

constexpr EventName kEventNames[] = {
    {"port_overheat", EventType::PortOverheat},
    {"smoke", EventType::Smoke},
    {"fuel_car", EventType::FuelCar},
    {"long_stay", EventType::LongStay},
    {"silent", EventType::Silent},
    {"modbus_exception", EventType::ModbusException},
    {"co_rise", EventType::CoRise},
    {"ignore_commands", EventType::IgnoreCommands},
    {"set", EventType::SetPoint},
    {"plug_in", EventType::PlugIn},
};

int64_t ms(milliseconds d) { return d.count(); }

void parseTopics(const core::ConfigNode& n, TopicTemplates& t) {
  n.allowKeys({"parking", "chirpstack", "ev", "shed", "port", "port_set", "ebike_get", "co",
               "smoke"});
  t.parking = n.str("parking", t.parking);
  t.chirpstack = n.str("chirpstack", t.chirpstack);
  t.ev = n.str("ev", t.ev);
  t.shed = n.str("shed", t.shed);
  t.port = n.str("port", t.port);
  t.port_set = n.str("port_set", t.port_set);
  t.ebike_get = n.str("ebike_get", t.ebike_get);
  t.co = n.str("co", t.co);
  t.smoke = n.str("smoke", t.smoke);
  for (const auto& [key, value] : n.entries()) {
    auto text = value.asStr();
    if (text && text->find("{id}") == std::string::npos && key != "chirpstack") {
      value.error("a topic template needs {id}, got \"" + *text + "\"");
    }
  }
}

void parseMqtt(const core::ConfigNode& n, MqttSettings& m) {
  n.allowKeys({"url", "client_id", "qos", "max_rate", "max_in_flight", "max_buffered",
               "keep_alive", "topics", "chirpstack_application", "chirpstack_tenant"});
  m.url = n.str("url", m.url);
  if (m.url.rfind("tcp://", 0) != 0 && m.url.rfind("mqtt://", 0) != 0 &&
      m.url.rfind("ssl://", 0) != 0) {
    n.errorAt("url", "expected tcp://HOST:PORT, got \"" + m.url + "\"");
  }
  m.client_id = n.str("client_id", m.client_id);
  m.qos = static_cast<int>(n.integer("qos", m.qos, 0, 2));
  m.max_rate = static_cast<int>(n.integer("max_rate", m.max_rate, 1, 1'000'000));
  m.max_in_flight = static_cast<int>(n.integer("max_in_flight", m.max_in_flight, 1, 1'000'000));
  m.max_buffered = static_cast<int>(n.integer("max_buffered", m.max_buffered, 1, 10'000'000));
  m.keep_alive = n.duration("keep_alive", m.keep_alive, std::chrono::seconds(1),
                            std::chrono::hours(1));
  parseTopics(n.child("topics"), m.topics);
  m.chirpstack_application = n.str("chirpstack_application", m.chirpstack_application);
  m.chirpstack_tenant = n.str("chirpstack_tenant", m.chirpstack_tenant);
}

void parseModbus(const core::ConfigNode& n, ModbusSettings& m) {
  n.allowKeys({"bind", "lines", "layouts"});
  m.bind = n.str("bind", m.bind);
  if (m.bind != "127.0.0.1" && m.bind != "::1" && m.bind != "localhost") {
    n.errorAt("bind", "the simulator listens on loopback only (127.0.0.1 or ::1), got \"" +
                          m.bind + "\"");
  }
  auto lines = n.child("lines");
  if (lines.defined() && lines.requireMap()) {
    for (const auto& [name, value] : lines.entries()) {
      auto port = value.asNumber();
      if (!port || *port < 0 || *port > 65535 || *port != static_cast<int>(*port)) {
        value.error("expected a TCP port 0..65535 (0 = any free port)");
        continue;
      }
      m.lines[name] = static_cast<int>(*port);
    }
  }
  auto layouts = n.child("layouts");
  if (layouts.defined() && layouts.requireMap()) {
    for (const auto& [profile, value] : layouts.entries()) {
      auto text = value.asStr();
      if (!text) {
        value.error("expected a layout name");
        continue;
      }
      m.layouts[profile] = *text;
    }
  }
}

void parseRange(const core::ConfigNode& n, std::string_view key, double& lo, double& hi,
                double max) {
  auto r = n.child(key);
  if (!r.defined()) {
    return;
  }
  auto items = r.isSeq() ? r.items() : std::vector<core::ConfigNode>{};
  if (items.size() != 2) {
    r.error("expected [min, max]");
    return;
  }
  auto a = items[0].asNumber();
  auto b = items[1].asNumber();
  if (!a || !b || *a < 0 || *b < *a || *b > max) {
    r.error("expected [min, max] with 0 <= min <= max <= " + std::to_string(static_cast<int>(max)));
    return;
  }
  lo = *a;
  hi = *b;
}

void parseBehaviour(const core::ConfigNode& n, Behaviour& b) {
  n.allowKeys({"parking", "ev", "ebike", "co"});
  auto p = n.child("parking");
  p.allowKeys({"heartbeat", "night_occupancy", "day_occupancy", "mean_cycle", "flaps_per_day",
               "flap", "ev_share"});
  auto& pb = b.parking;
  pb.heartbeat_ms = ms(p.duration("heartbeat", milliseconds(pb.heartbeat_ms), milliseconds(100)));
  pb.night_occupancy = p.number("night_occupancy", pb.night_occupancy, 0, 1);
  pb.day_occupancy = p.number("day_occupancy", pb.day_occupancy, 0, 1);
  pb.mean_cycle_ms =
      ms(p.duration("mean_cycle", milliseconds(pb.mean_cycle_ms), std::chrono::minutes(1)));
  pb.flaps_per_day = p.number("flaps_per_day", pb.flaps_per_day, 0, 1000);
  pb.flap_ms = ms(p.duration("flap", milliseconds(pb.flap_ms), milliseconds(100)));
  pb.ev_share = p.number("ev_share", pb.ev_share, 0, 1);

  auto e = n.child("ev");
  e.allowKeys({"report", "power_kw", "session_kwh", "sit", "sessions_per_day"});
  auto& eb = b.ev;
  eb.report_ms = ms(e.duration("report", milliseconds(eb.report_ms), milliseconds(100)));
  eb.power_kw = e.number("power_kw", eb.power_kw, 0.5, 350);
  parseRange(e, "session_kwh", eb.session_kwh_min, eb.session_kwh_max, 200);
  eb.sit_ms = ms(e.duration("sit", milliseconds(eb.sit_ms)));
  eb.sessions_per_day = e.number("sessions_per_day", eb.sessions_per_day, 0, 100);

  auto k = n.child("ebike");
  k.allowKeys({"report", "shed_report", "sessions_per_day", "session_wh", "peak_w",
               "full_below_w", "unplug_after", "volts"});
  auto& kb = b.ebike;
  kb.report_ms = ms(k.duration("report", milliseconds(kb.report_ms), milliseconds(100)));
  kb.shed_report_ms =
      ms(k.duration("shed_report", milliseconds(kb.shed_report_ms), milliseconds(100)));
  kb.sessions_per_day = k.number("sessions_per_day", kb.sessions_per_day, 0, 100);
  parseRange(k, "session_wh", kb.session_wh_min, kb.session_wh_max, 5000);
  parseRange(k, "peak_w", kb.peak_w_min, kb.peak_w_max, 2000);
  kb.full_below_w = k.number("full_below_w", kb.full_below_w, 0, 200);
  kb.unplug_after_ms = ms(k.duration("unplug_after", milliseconds(kb.unplug_after_ms)));
  kb.volts = k.number("volts", kb.volts, 100, 400);

  auto c = n.child("co");
  c.allowKeys({"report", "baseline_ppm", "rush_ppm"});
  b.co.report_ms = ms(c.duration("report", milliseconds(b.co.report_ms), milliseconds(100)));
  b.co.baseline_ppm = c.number("baseline_ppm", b.co.baseline_ppm, 0, 1000);
  b.co.rush_ppm = c.number("rush_ppm", b.co.rush_ppm, 0, 1000);
}

std::optional<ScenarioEvent> parseEvent(const core::ConfigNode& n) {
  if (!n.requireMap()) {
    return std::nullopt;
  }
  std::vector<std::string> names;
  for (const auto& e : kEventNames) {
    names.emplace_back(e.name);
  }
  ScenarioEvent ev;
  ev.where = n.location();
  ev.key_path = n.path();
  std::string type = n.requiredStr("type");
  auto it = std::find_if(std::begin(kEventNames), std::end(kEventNames),
                         [&](const EventName& e) { return type == e.name; });
  if (it == std::end(kEventNames)) {
    if (!type.empty()) {
      std::string msg = "unknown event type \"" + type + "\"";
      if (auto near = core::closestMatch(type, names)) {
        msg += " (did you mean \"" + *near + "\"?)";
      }
      n.errorAt("type", msg);
    }
    return std::nullopt;
  }
  ev.type = it->type;
  ev.at_ms = ms(n.duration("at", milliseconds(0)));
  ev.device = n.requiredStr("device");
  ev.duration_ms = ms(n.duration("for", milliseconds(0)));
  switch (ev.type) {
  case EventType::PortOverheat:
    n.allowKeys({"type", "at", "device", "for", "temp_c", "ramp"});
    ev.value = n.number("temp_c", 75, -40, 200);
    ev.ramp_ms = ms(n.duration("ramp", std::chrono::seconds(20)));
    break;
  case EventType::CoRise:
    n.allowKeys({"type", "at", "device", "for", "ppm", "ramp"});
    ev.value = n.number("ppm", 120, 0, 2000);
    ev.ramp_ms = ms(n.duration("ramp", std::chrono::seconds(60)));
    break;
  case EventType::LongStay:
    n.allowKeys({"type", "at", "device", "for"});
    ev.duration_ms = ms(n.duration("for", 20 * kDay));
    break;
  case EventType::ModbusException:
    n.allowKeys({"type", "at", "device", "for", "code"});
    ev.code = static_cast<int>(n.integer("code", 4, 1, 11));
    break;
  case EventType::PlugIn:
    n.allowKeys({"type", "at", "device", "energy_wh", "power_w"});
    ev.value = n.number("energy_wh", 600, 1, 5000);
    ev.power = n.number("power_w", 200, 1, 2000);
    break;
  case EventType::SetPoint:
    n.allowKeys({"type", "at", "device", "for", "point", "value"});
    ev.point = n.requiredStr("point");
    ev.text = n.requiredStr("value");
    break;
  default:
    n.allowKeys({"type", "at", "device", "for"});
    break;
  }
  return ev;
}

} // namespace

const char* eventTypeName(EventType t) {
  for (const auto& e : kEventNames) {
    if (e.type == t) {
      return e.name;
    }
  }
  return "?";
}

Scenario parseScenario(const core::ConfigNode& root, const std::string& base_dir) {
  Scenario s;
  s.file = root.file();
  root.allowKeys({"gateway", "speed", "seed", "start", "utc_offset", "tick", "timestamps",
                  "realistic", "mqtt", "modbus", "behaviour", "events"});
  std::string gw = root.str("gateway", "../gateway.yaml");
  std::filesystem::path gp(gw);
  s.gateway = gp.is_absolute() ? gw : (std::filesystem::path(base_dir) / gp).lexically_normal().string();
  s.speed = root.number("speed", 1.0, 0.001, 10'000'000);
  s.seed = static_cast<uint64_t>(root.integer("seed", 1, 0, INT64_MAX));
  std::string start = root.str("start", "now");
  if (start != "now") {
    auto t = core::parseRfc3339(start);
    if (!t) {
      root.errorAt("start", "expected \"now\" or an RFC 3339 time like 2026-11-27T07:30:00+08:00, "
                            "got \"" + start + "\"");
    } else {
      s.start_ms = *t;
    }
  }
  s.utc_offset_ms = ms(root.duration("utc_offset", milliseconds(s.utc_offset_ms), milliseconds(0),
                                     std::chrono::hours(14)));
  s.tick = root.duration("tick", s.tick, milliseconds(5), std::chrono::seconds(10));
  s.scenario_timestamps = root.choice("timestamps", "scenario", {"scenario", "wall"}) == "scenario";
  s.realistic = root.boolean("realistic", true);
  parseMqtt(root.child("mqtt"), s.mqtt);
  parseModbus(root.child("modbus"), s.modbus);
  parseBehaviour(root.child("behaviour"), s.behaviour);
  auto events = root.child("events");
  if (events.defined() && events.requireSeq()) {
    for (const auto& item : events.items()) {
      if (auto ev = parseEvent(item)) {
        s.events.push_back(std::move(*ev));
      }
    }
  }
  std::stable_sort(s.events.begin(), s.events.end(),
                   [](const auto& a, const auto& b) { return a.at_ms < b.at_ms; });
  return s;
}

bool applyOverride(YAML::Node root, const std::string& assignment, std::string& error) {
  auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) {
    error = "expected key.path=value, got \"" + assignment + "\"";
    return false;
  }
  std::string path = assignment.substr(0, eq);
  std::string value = assignment.substr(eq + 1);
  YAML::Node node;
  node.reset(root);
  size_t pos = 0;
  while (true) {
    size_t dot = path.find('.', pos);
    std::string key = path.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    if (key.empty()) {
      error = "empty key in \"" + path + "\"";
      return false;
    }
    if (!node.IsMap() && node.IsDefined() && !node.IsNull()) {
      error = "\"" + path + "\" crosses a value that is not a mapping";
      return false;
    }
    if (dot == std::string::npos) {
      node[key] = value;
      return true;
    }
    YAML::Node next = node[key];
    node.reset(next);
    pos = dot + 1;
  }
}

Scenario loadScenario(const std::string& path, const std::vector<std::string>& overrides) {
  core::Diagnostics diag;
  auto root = core::loadYamlFile(path, diag);
  if (!root) {
    throw core::ConfigError(std::move(diag));
  }
  YAML::Node yaml = root->yaml();
  if (!yaml.IsMap() && !yaml.IsNull()) {
    root->error("expected a mapping at the top of a scenario");
    throw core::ConfigError(std::move(diag));
  }
  for (const auto& o : overrides) {
    std::string err;
    if (!applyOverride(yaml, o, err)) {
      diag.error({"--set", static_cast<int>(&o - overrides.data()) + 1},
                 o.substr(0, o.find('=')), err);
    }
  }
  core::ConfigNode node(yaml, std::make_shared<const std::string>(path), "", &diag);
  auto base = std::filesystem::path(path).parent_path().string();
  Scenario s = parseScenario(node, base.empty() ? "." : base);
  if (!diag.ok()) {
    // A value set on the command line has no line in the file: report it at `--set:N`, the
    // override's position, as the gateway does.
    core::Diagnostics located;
    for (const auto& p : diag.problems()) {
      core::SourceLocation where = p.where;
      for (size_t i = 0; i < overrides.size(); ++i) {
        if (where.line == 0 && overrides[i].substr(0, overrides[i].find('=')) == p.key_path) {
          where = {"--set", static_cast<int>(i + 1)};
        }
      }
      located.error(where, p.key_path, p.message);
    }
    throw core::ConfigError(std::move(located));
  }
  return s;
}

} // namespace hgj::sim
