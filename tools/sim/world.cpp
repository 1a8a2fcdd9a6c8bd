#include "tools/sim/world.h"

#include <algorithm>
#include <cmath>
#include <set>

#include <spdlog/spdlog.h>

#include "core/time_format.h"

namespace hgj::sim {

namespace {

using model::Device;
using model::DeviceIndex;
using model::kNoDevice;
using ojson = nlohmann::ordered_json;

constexpr double kDayMs = 86'400'000.0;
constexpr double kHourMs = 3'600'000.0;
constexpr int64_t kForever = INT64_MAX;
constexpr int64_t kMaxChunkMs = 60'000;
constexpr int64_t kMaxQuantaPerStep = 5000;
constexpr int64_t kDisplayLogMs = 1000;

double round1(double x) { return std::round(x * 10.0) / 10.0; }
double round2(double x) { return std::round(x * 100.0) / 100.0; }

std::string base64(const std::vector<uint8_t>& in) {
  static const char* kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  while (i + 2 < in.size()) {
    uint32_t v = (in[i] << 16) | (in[i + 1] << 8) | in[i + 2];
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
    i += 3;
  }
  size_t rest = in.size() - i;
  if (rest == 1) {
    uint32_t v = in[i] << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (rest == 2) {
    uint32_t v = (in[i] << 16) | (in[i + 1] << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

uint64_t fnv1a(std::string_view s) {
  uint64_t h = 1469598103934665603ULL;
  for (char c : s) {
    h = (h ^ static_cast<uint8_t>(c)) * 1099511628211ULL;
  }
  return h;
}

std::string hex(uint64_t v, int digits) {
  static const char* kDigits = "0123456789abcdef";
  std::string out(static_cast<size_t>(digits), '0');
  for (int i = digits - 1; i >= 0; --i) {
    out[static_cast<size_t>(i)] = kDigits[v & 15];
    v >>= 4;
  }
  return out;
}

void replaceAll(std::string& s, std::string_view what, std::string_view with) {
  size_t pos = 0;
  while ((pos = s.find(what, pos)) != std::string::npos) {
    s.replace(pos, what.size(), with);
    pos += with.size();
  }
}

const char* pileStateName(int st) {
  static const char* kNames[] = {"Available", "Preparing", "Charging",
                                 "SuspendedEV", "Finishing", "Faulted"};
  return kNames[st];
}

/// Device types the simulator plays, with the names profiles commonly use for them.
enum class Type { Unknown, Parking, Pile, Shed, Port, Co, Smoke, Meter, Display, Fan };

Type typeOf(const std::string& t) {
  if (t == "parking_sensor" || t == "parking" || t == "parking_space") {
    return Type::Parking;
  }
  if (t == "ev_pile" || t == "ev_charger" || t == "charging_pile") {
    return Type::Pile;
  }
  if (t == "ebike_shed" || t == "shed_controller") {
    return Type::Shed;
  }
  if (t == "ebike_port") {
    return Type::Port;
  }
  if (t == "co_sensor" || t == "gas_sensor") {
    return Type::Co;
  }
  if (t == "smoke_detector" || t == "smoke_sensor") {
    return Type::Smoke;
  }
  if (t == "meter" || t == "energy_meter" || t == "ev_meter") {
    return Type::Meter;
  }
  if (t == "display" || t == "guidance_display" || t == "led_display") {
    return Type::Display;
  }
  if (t == "fan" || t == "fan_controller") {
    return Type::Fan;
  }
  return Type::Unknown;
}

} // namespace

double World::Ramp::at(int64_t now) const {
  if (ramp_ms <= 0) {
    return to;
  }
  double f = std::clamp(static_cast<double>(now - start) / static_cast<double>(ramp_ms), 0.0, 1.0);
  return from + (to - from) * f;
}

World::World(const Scenario& scenario, std::shared_ptr<const model::Compound> compound,
             Publisher& publisher, const ModbusServers& servers, int64_t start_ms)
    : scenario_(scenario),
      compound_(std::move(compound)),
      publisher_(publisher),
      rng_(scenario.seed),
      start_ms_(start_ms),
      now_ms_(start_ms),
      model_ms_(start_ms),
      quantum_ms_(std::clamp<int64_t>(
          static_cast<int64_t>(static_cast<double>(scenario.tick.count()) * scenario.speed),
          1000, kMaxChunkMs)) {
  core::Diagnostics diag;
  build(servers, diag);
  validateEvents(diag);
  if (!diag.ok()) {
    throw core::ConfigError(std::move(diag));
  }
}

ModbusTcpServer* World::serverFor(const Device& d, const ModbusServers& servers,
                                  core::Diagnostics& /*diag*/, const std::string& what) {
  auto it = servers.find(d.modbus.line);
  if (d.modbus.line.empty() || it == servers.end()) {
    // Not an error: a compound may have RTU lines the simulator cannot serve; the devices on
    // them are simply not played.
    if (missing_lines_.insert(d.modbus.line).second) {
      spdlog::warn("no simulated Modbus TCP server for line \"{}\" (used by {} {}): its devices "
                   "are not played; give it a port under modbus.lines of the scenario",
                   d.modbus.line, what, d.id);
    }
    return nullptr;
  }
  return it->second;
}

Layout World::layoutFor(const Device& d, Layout def) const {
  auto it = scenario_.modbus.layouts.find(d.profile->name);
  if (it != scenario_.modbus.layouts.end()) {
    if (auto l = parseLayout(it->second)) {
      return *l;
    }
  }
  return def;
}

void World::build(const ModbusServers& servers, core::Diagnostics& diag) {
  const auto& devices = compound_->devices;
  slots_.assign(devices.size(), Slot{});
  for (const auto& [profile, layout] : scenario_.modbus.layouts) {
    if (!parseLayout(layout)) {
      diag.error({scenario_.file, 0}, "modbus.layouts." + profile,
                 "unknown layout \"" + layout +
                     "\" (expected sdm120, shed_controller, co_sensor or display)");
    }
  }
  auto unplayed = [&](const Device& d) { unplayed_.push_back(d.id); };
  auto addUnit = [&](const Device& d, Layout def, int ports) -> std::pair<ModbusTcpServer*, int> {
    ModbusTcpServer* srv = serverFor(d, servers, diag, d.type());
    if (!srv) {
      unplayed(d);
      return {nullptr, 0};
    }
    if (srv->hasUnit(d.modbus.unit_id)) {
      diag.error({scenario_.file, 0}, "modbus.lines." + d.modbus.line,
                 "two devices share unit " + std::to_string(d.modbus.unit_id) + " (" + d.id + ")");
      return {nullptr, 0};
    }
    srv->addUnit(d.modbus.unit_id, layoutTables(layoutFor(d, def), ports));
    modbus_units_[d.index] = {srv, d.modbus.unit_id};
    return {srv, d.modbus.unit_id};
  };

  for (const auto& d : devices) {
    if (!d.profile) {
      unplayed(d);
      continue;
    }
    bool modbus = d.profile->transport == "modbus";
    Type t = typeOf(d.type());
    Slot& slot = slots_[d.index];
    switch (t) {
    case Type::Parking:
      if (modbus) {
        unplayed(d);
        break;
      }
      slot = {Kind::Space, static_cast<int>(spaces_.size())};
      spaces_.push_back(Space{d.index});
      break;
    case Type::Pile:
      if (modbus) {
        unplayed(d);
        break;
      }
      slot = {Kind::Pile, static_cast<int>(piles_.size())};
      piles_.push_back(Pile{d.index});
      break;
    case Type::Shed: {
      Shed s{d.index};
      s.modbus = modbus;
      if (modbus) {
        int ports = static_cast<int>(d.children.size());
        if (ports > shed::kMaxPorts) {
          diag.error({scenario_.file, 0}, "", d.id + " has " + std::to_string(ports) +
                                                  " ports; the shed layout holds at most " +
                                                  std::to_string(shed::kMaxPorts));
        }
        auto [srv, unit] = addUnit(d, Layout::ShedController, ports);
        if (!srv) {
          break;
        }
        s.server = srv;
        s.unit = unit;
      }
      slot = {Kind::Shed, static_cast<int>(sheds_.size())};
      sheds_.push_back(std::move(s));
      break;
    }
    case Type::Co: {
      CoSensor c{d.index};
      c.modbus = modbus;
      if (modbus) {
        auto [srv, unit] = addUnit(d, Layout::CoSensor, 0);
        if (!srv) {
          break;
        }
        c.server = srv;
        c.unit = unit;
      }
      slot = {Kind::Co, static_cast<int>(cos_.size())};
      cos_.push_back(c);
      break;
    }
    case Type::Smoke:
      if (modbus) {
        unplayed(d);
        break;
      }
      slot = {Kind::Smoke, static_cast<int>(smokes_.size())};
      smokes_.push_back(SmokeDetector{d.index});
      break;
    case Type::Meter: {
      if (!modbus) {
        unplayed(d);
        break;
      }
      Meter m{d.index};
      m.layout = layoutFor(d, d.profile->name.find("ddsu666") != std::string::npos
                                  ? Layout::Ddsu666
                                  : Layout::Sdm120);
      auto [srv, unit] = addUnit(d, m.layout, 0);
      if (!srv) {
        break;
      }
      m.server = srv;
      m.unit = unit;
      slot = {Kind::Meter, static_cast<int>(meters_.size())};
      meters_.push_back(m);
      break;
    }
    case Type::Display: {
      if (!modbus) {
        unplayed(d);
        break;
      }
      Display disp{d.index};
      auto [srv, unit] = addUnit(d, Layout::Display, 0);
      if (!srv) {
        break;
      }
      disp.server = srv;
      disp.unit = unit;
      slot = {Kind::Display, static_cast<int>(displays_.size())};
      displays_.push_back(disp);
      break;
    }
    case Type::Fan: {
      if (!modbus) {
        unplayed(d);
        break;
      }
      Fan f{d.index};
      auto [srv, unit] = addUnit(d, Layout::Fan, 0);
      if (!srv) {
        break;
      }
      f.server = srv;
      f.unit = unit;
      slot = {Kind::Fan, static_cast<int>(fans_.size())};
      fans_.push_back(f);
      break;
    }
    case Type::Port:
    case Type::Unknown:
      break;
    }
    if (t == Type::Unknown) {
      unplayed(d);
    }
  }
  // Ports need their shed, which may come later in the device list.
  for (const auto& d : devices) {
    if (!d.profile || typeOf(d.type()) != Type::Port) {
      continue;
    }
    Port p{d.index};
    const Slot* parent = d.parent != kNoDevice ? &slots_[d.parent] : nullptr;
    if (parent && parent->kind == Kind::Shed) {
      p.shed = parent->index;
      p.modbus = sheds_[static_cast<size_t>(p.shed)].modbus;
    } else if (d.profile->transport == "modbus") {
      unplayed(d);
      continue;
    }
    p.number = d.child_number > 0 ? d.child_number : 1;
    if (p.modbus && p.number > shed::kMaxPorts) {
      unplayed(d);
      continue;
    }
    slots_[d.index] = {Kind::Port, static_cast<int>(ports_.size())};
    if (p.shed >= 0) {
      sheds_[static_cast<size_t>(p.shed)].ports.push_back(static_cast<int>(ports_.size()));
    }
    ports_.push_back(p);
  }
  // A space and the pile that serves it may be linked from either side.
  for (const auto& d : devices) {
    if (d.linked == kNoDevice || slots_[d.index].kind == Kind::None) {
      continue;
    }
    const Slot& a = slots_[d.index];
    const Slot& b = slots_[d.linked];
    if (a.kind == Kind::Space && b.kind == Kind::Pile) {
      spaces_[static_cast<size_t>(a.index)].pile = b.index;
      piles_[static_cast<size_t>(b.index)].space = a.index;
    } else if (a.kind == Kind::Pile && b.kind == Kind::Space) {
      piles_[static_cast<size_t>(a.index)].space = b.index;
      spaces_[static_cast<size_t>(b.index)].pile = a.index;
    } else if (a.kind == Kind::Meter && b.kind == Kind::Pile) {
      meters_[static_cast<size_t>(a.index)].pile = b.index;
    }
  }
  // A meter may name its pile in a tag instead (`tags: {pile: EV-01}`).
  for (auto& m : meters_) {
    auto it = dev(m.dev).tags.find("pile");
    if (m.pile < 0 && it != dev(m.dev).tags.end()) {
      DeviceIndex pi = compound_->deviceIndex(it->second);
      if (pi != kNoDevice && slots_[pi].kind == Kind::Pile) {
        m.pile = slots_[pi].index;
      }
    }
  }
  played_ = devices.size() - unplayed_.size();

  const auto& beh = scenario_.behaviour;
  for (size_t i = 0; i < spaces_.size(); ++i) {
    spaces_[i].rep.interval_ms = beh.parking.heartbeat_ms;
    reporters_.push_back({Kind::Space, static_cast<int>(i)});
  }
  for (size_t i = 0; i < piles_.size(); ++i) {
    piles_[i].rep.interval_ms = beh.ev.report_ms;
    reporters_.push_back({Kind::Pile, static_cast<int>(i)});
  }
  for (size_t i = 0; i < sheds_.size(); ++i) {
    sheds_[i].rep.interval_ms = beh.ebike.shed_report_ms;
    if (!sheds_[i].modbus) {
      reporters_.push_back({Kind::Shed, static_cast<int>(i)});
    }
  }
  for (size_t i = 0; i < ports_.size(); ++i) {
    ports_[i].rep.interval_ms = beh.ebike.report_ms;
    if (!ports_[i].modbus) {
      reporters_.push_back({Kind::Port, static_cast<int>(i)});
    }
  }
  for (size_t i = 0; i < cos_.size(); ++i) {
    cos_[i].rep.interval_ms = beh.co.report_ms;
    if (!cos_[i].modbus) {
      reporters_.push_back({Kind::Co, static_cast<int>(i)});
    }
  }
  for (size_t i = 0; i < smokes_.size(); ++i) {
    smokes_[i].rep.interval_ms = beh.ebike.shed_report_ms;
    reporters_.push_back({Kind::Smoke, static_cast<int>(i)});
  }
  for (auto& r : reporters_) {
    reportOf(r)->next_ms = start_ms_;
  }

  auto seeded = [&](model::DeviceIndex i) { return Rng(scenario_.seed ^ fnv1a(dev(i).id)); };
  for (auto& x : spaces_) {
    x.rng = seeded(x.dev);
  }
  for (auto& x : piles_) {
    x.rng = seeded(x.dev);
  }
  for (auto& x : sheds_) {
    x.rng = seeded(x.dev);
  }
  for (auto& x : ports_) {
    x.rng = seeded(x.dev);
  }
  for (auto& x : cos_) {
    x.rng = seeded(x.dev);
  }

  // The state the compound is in when the run starts.
  int64_t now = start_ms_;
  for (auto& s : spaces_) {
    if (scenario_.realistic && s.rng.chance(occupancyTarget(now))) {
      s.occupied = true;
      s.since_ms = now - static_cast<int64_t>(s.rng.exponential(beh.parking.mean_cycle_ms));
      if (s.pile >= 0 && s.rng.chance(beh.parking.ev_share)) {
        Pile& p = piles_[static_cast<size_t>(s.pile)];
        startPileSession(p, now);
        p.state = PileState::Charging;
        p.session_kwh = p.rng.uniform(0, p.need_kwh * 0.9);
      }
    } else {
      s.since_ms = now - static_cast<int64_t>(s.rng.exponential(beh.parking.mean_cycle_ms));
    }
  }
  for (auto& p : piles_) {
    p.total_kwh = p.rng.uniform(200, 4000);
  }
  for (auto& m : meters_) {
    m.total_kwh = rng_.uniform(1000, 9000);
  }
  for (auto& s : sheds_) {
    s.temp_c = ambient(now);
  }
  for (auto& p : ports_) {
    p.temp_c = ambient(now) + p.rng.normal(0, 0.3);
    if (scenario_.realistic && p.rng.chance(0.3)) {
      const auto& eb = beh.ebike;
      p.plugged = true;
      p.need_wh = p.rng.uniform(eb.session_wh_min, eb.session_wh_max);
      p.peak_w = p.rng.uniform(eb.peak_w_min, eb.peak_w_max);
      p.delivered_wh = p.rng.uniform(0, p.need_wh * 0.6);
      p.session_start = now - static_cast<int64_t>(p.delivered_wh / p.peak_w * kHourMs);
    }
  }
  for (auto& c : cos_) {
    c.ppm = beh.co.baseline_ppm;
    if (c.server) {
      c.server->withUnit(c.unit, [](modbus_mapping_t& m) {
        m.tab_registers[co::kThreshold] = co::kDefaultThreshold;
      });
    }
  }
  for (auto& s : sheds_) {
    if (s.modbus && s.server) {
      s.server->withUnit(s.unit, [&](modbus_mapping_t& m) {
        m.tab_bits[shed::kMainRelayCoil] = 1;
        for (int idx : s.ports) {
          m.tab_bits[shed::kPortCoilBase + ports_[static_cast<size_t>(idx)].number - 1] = 1;
        }
      });
    }
  }
}

const World::Slot* World::slotOf(const std::string& id) const {
  DeviceIndex i = compound_->deviceIndex(id);
  if (i == kNoDevice) {
    return nullptr;
  }
  return &slots_[i];
}

void World::validateEvents(core::Diagnostics& diag) {
  std::vector<std::string> ids;
  for (size_t i = 0; i < scenario_.events.size(); ++i) {
    const auto& ev = scenario_.events[i];
    auto fail = [&](const std::string& msg) {
      diag.error(ev.where, ev.key_path + ".device", msg);
    };
    DeviceIndex di = compound_->deviceIndex(ev.device);
    if (di == kNoDevice) {
      if (ids.empty()) {
        for (const auto& d : compound_->devices) {
          ids.push_back(d.id);
        }
      }
      std::string msg = "no device \"" + ev.device + "\" in the gateway config";
      if (auto near = core::closestMatch(ev.device, ids)) {
        msg += " (did you mean \"" + *near + "\"?)";
      }
      fail(msg);
      continue;
    }
    const Slot& s = slots_[di];
    const std::string& type = compound_->devices[di].type();
    auto expect = [&](bool ok, const std::string& what) {
      if (!ok) {
        fail(std::string(eventTypeName(ev.type)) + " needs " + what + ", but " + ev.device +
             " is a " + (type.empty() ? "device" : type));
      }
      return ok;
    };
    bool ok = true;
    switch (ev.type) {
    case EventType::PortOverheat:
    case EventType::PlugIn:
      ok = expect(s.kind == Kind::Port, "a charging port");
      break;
    case EventType::Smoke:
      ok = expect(s.kind == Kind::Shed || s.kind == Kind::Smoke, "a shed or smoke detector");
      break;
    case EventType::FuelCar:
      ok = expect((s.kind == Kind::Space && spaces_[static_cast<size_t>(s.index)].pile >= 0) ||
                      (s.kind == Kind::Pile && piles_[static_cast<size_t>(s.index)].space >= 0),
                  "a parking space linked to an EV pile (or the pile)");
      break;
    case EventType::LongStay:
      ok = expect(s.kind == Kind::Space, "a parking space");
      break;
    case EventType::Silent:
      ok = expect(s.kind != Kind::None, "a device the simulator plays");
      break;
    case EventType::ModbusException: {
      const auto& d = compound_->devices[di];
      bool has = modbus_units_.count(di) ||
                 (d.parent != kNoDevice && modbus_units_.count(d.parent));
      ok = expect(has, "a Modbus device");
      break;
    }
    case EventType::CoRise:
      ok = expect(s.kind == Kind::Co, "a CO sensor");
      break;
    case EventType::IgnoreCommands:
      ok = expect(s.kind == Kind::Port || (s.kind == Kind::Shed &&
                                           sheds_[static_cast<size_t>(s.index)].modbus),
                  "a charging port or a Modbus shed controller");
      break;
    case EventType::SetPoint: {
      ok = expect(reportOf(s) != nullptr &&
                      !(s.kind == Kind::Port && ports_[static_cast<size_t>(s.index)].modbus) &&
                      !(s.kind == Kind::Shed && sheds_[static_cast<size_t>(s.index)].modbus) &&
                      !(s.kind == Kind::Co && cos_[static_cast<size_t>(s.index)].modbus),
                  "a device reporting over MQTT");
      break;
    }
    }
    if (!ok) {
      continue;
    }
    pending_.push_back({i, false, ev.at_ms});
    bool has_end = ev.duration_ms > 0 && ev.type != EventType::LongStay;
    if (has_end) {
      pending_.push_back({i, true, ev.at_ms + ev.duration_ms});
    }
  }
  std::stable_sort(pending_.begin(), pending_.end(),
                   [](const Pending& a, const Pending& b) { return a.at_ms < b.at_ms; });
}

double World::localHour(int64_t now) const {
  double local = std::fmod(static_cast<double>(now + scenario_.utc_offset_ms), kDayMs);
  if (local < 0) {
    local += kDayMs;
  }
  return local / kHourMs;
}

double World::occupancyTarget(int64_t now) const {
  const auto& p = scenario_.behaviour.parking;
  double h = localHour(now);
  if (h < 6 || h >= 22) {
    return p.night_occupancy;
  }
  if (h < 9) {
    return p.night_occupancy + (p.day_occupancy - p.night_occupancy) * (h - 6) / 3;
  }
  if (h < 17) {
    return p.day_occupancy;
  }
  return p.day_occupancy + (p.night_occupancy - p.day_occupancy) * (h - 17) / 5;
}

double World::ambient(int64_t now) const {
  constexpr double kPi = 3.14159265358979;
  return 20.0 + 5.0 * std::sin((localHour(now) - 9.0) / 24.0 * 2 * kPi);
}

void World::step(int64_t now, int64_t wall_ms, int budget) {
  now = std::max(now, now_ms_);
  // The models advance in fixed quanta of scenario time, so a seed replays the same run
  // whatever the wall-clock jitter between steps.
  fireEvents(model_ms_);
  int64_t quanta = 0;
  while (model_ms_ + quantum_ms_ <= now && quanta < kMaxQuantaPerStep) {
    model_ms_ += quantum_ms_;
    ++quanta;
    fireEvents(model_ms_);
    advance(model_ms_, static_cast<double>(quantum_ms_));
  }
  if (model_ms_ + quantum_ms_ <= now) {
    // Far behind (a stalled process): skip ahead rather than spin.
    model_ms_ = now - (now - model_ms_) % quantum_ms_;
    fireEvents(model_ms_);
  }
  now_ms_ = now;
  syncModbus(now);
  publishDue(now, scenario_.scenario_timestamps ? now : wall_ms, budget);
}

void World::advance(int64_t t, double dt) {
  for (auto& s : spaces_) {
    stepParking(s, t, dt);
  }
  for (auto& p : piles_) {
    stepPile(p, t, dt);
  }
  for (auto& s : sheds_) {
    stepShed(s, t, dt);
  }
  for (auto& p : ports_) {
    stepPort(p, t, dt);
  }
  for (auto& c : cos_) {
    stepCo(c, t, dt);
  }
}

void World::fireEvents(int64_t now) {
  while (next_pending_ < pending_.size() &&
         start_ms_ + pending_[next_pending_].at_ms <= now) {
    const Pending& p = pending_[next_pending_++];
    const auto& ev = scenario_.events[p.event];
    applyEvent(ev, p.end, start_ms_ + p.at_ms);
  }
}

void World::setSilent(DeviceIndex di, bool on, int64_t until, bool end) {
  const Slot& s = slots_[di];
  if (Report* r = reportOf(s)) {
    r->silent_until = on ? until : 0;
    if (end) {
      r->dirty = true;
    }
  }
  // A shed controller going quiet takes its ports with it.
  if (s.kind == Kind::Shed) {
    for (int idx : sheds_[static_cast<size_t>(s.index)].ports) {
      ports_[static_cast<size_t>(idx)].rep.silent_until = on ? until : 0;
      if (end) {
        ports_[static_cast<size_t>(idx)].rep.dirty = true;
      }
    }
  }
  auto it = modbus_units_.find(di);
  if (it == modbus_units_.end() && compound_->devices[di].parent != kNoDevice) {
    it = modbus_units_.find(compound_->devices[di].parent);
  }
  if (it != modbus_units_.end() && it->second.first) {
    it->second.first->setFault(it->second.second, on ? UnitFault::Silent : UnitFault::None);
  }
}

void World::applyEvent(const ScenarioEvent& ev, bool end, int64_t now) {
  ++stats_.events_fired;
  DeviceIndex di = compound_->deviceIndex(ev.device);
  const Slot& s = slots_[di];
  int64_t until = ev.duration_ms > 0 ? now + ev.duration_ms : kForever;
  spdlog::info("event {} {}: {} at +{}s", eventTypeName(ev.type), end ? "ends" : "starts",
               ev.device, (now - start_ms_) / 1000);
  switch (ev.type) {
  case EventType::PortOverheat: {
    Port& p = ports_[static_cast<size_t>(s.index)];
    if (end) {
      p.heat.active = false;
    } else {
      p.heat = Ramp{true, p.temp_c, ev.value, now, ev.ramp_ms};
    }
    p.rep.dirty = true;
    break;
  }
  case EventType::Smoke:
    if (s.kind == Kind::Shed) {
      sheds_[static_cast<size_t>(s.index)].smoke = !end;
      sheds_[static_cast<size_t>(s.index)].rep.dirty = true;
    } else {
      smokes_[static_cast<size_t>(s.index)].smoke = !end;
      smokes_[static_cast<size_t>(s.index)].rep.dirty = true;
    }
    break;
  case EventType::FuelCar: {
    Space& sp = s.kind == Kind::Space
                    ? spaces_[static_cast<size_t>(s.index)]
                    : spaces_[static_cast<size_t>(piles_[static_cast<size_t>(s.index)].space)];
    if (end) {
      sp.pinned_until = now;
      break;
    }
    if (sp.occupied) {
      leave(sp, now);
    }
    arrive(sp, now, false);
    sp.fuel_car = true;
    sp.pinned_until = until;
    break;
  }
  case EventType::LongStay: {
    Space& sp = spaces_[static_cast<size_t>(s.index)];
    if (!sp.occupied) {
      arrive(sp, now, false);
    }
    sp.pinned_until = until;
    break;
  }
  case EventType::Silent:
    setSilent(di, !end, until, end);
    break;
  case EventType::ModbusException: {
    auto it = modbus_units_.find(di);
    if (it == modbus_units_.end()) {
      it = modbus_units_.find(compound_->devices[di].parent);
    }
    if (it != modbus_units_.end() && it->second.first) {
      it->second.first->setFault(it->second.second,
                                 end ? UnitFault::None : UnitFault::Exception, ev.code);
    }
    break;
  }
  case EventType::CoRise: {
    CoSensor& c = cos_[static_cast<size_t>(s.index)];
    if (end) {
      c.rise.active = false;
    } else {
      c.rise = Ramp{true, c.ppm, ev.value, now, ev.ramp_ms};
    }
    c.rep.dirty = true;
    break;
  }
  case EventType::IgnoreCommands: {
    Shed* sh = nullptr;
    if (s.kind == Kind::Port) {
      Port& p = ports_[static_cast<size_t>(s.index)];
      p.ignore_commands = !end;
      sh = p.modbus ? &sheds_[static_cast<size_t>(p.shed)] : nullptr;
    } else {
      sh = &sheds_[static_cast<size_t>(s.index)];
      sh->ignore_main = !end;
      for (int idx : sh->ports) {
        ports_[static_cast<size_t>(idx)].ignore_commands = !end;
      }
    }
    if (sh && sh->server) {
      std::set<int> coils;
      if (sh->ignore_main) {
        coils.insert(shed::kMainRelayCoil);
      }
      for (int idx : sh->ports) {
        if (ports_[static_cast<size_t>(idx)].ignore_commands) {
          coils.insert(shed::kPortCoilBase + ports_[static_cast<size_t>(idx)].number - 1);
        }
      }
      sh->server->setIgnoredCoils(sh->unit, std::move(coils));
    }
    break;
  }
  case EventType::PlugIn: {
    Port& p = ports_[static_cast<size_t>(s.index)];
    p.plugged = true;
    p.full = false;
    p.need_wh = ev.value;
    p.peak_w = ev.power;
    p.delivered_wh = 0;
    p.session_start = now;
    p.unplug_at = 0;
    p.rep.dirty = true;
    break;
  }
  case EventType::SetPoint: {
    Report* r = reportOf(s);
    if (end) {
      r->overrides.erase(ev.point);
    } else {
      auto parsed = ojson::parse(ev.text, nullptr, false);
      r->overrides[ev.point] = parsed.is_discarded() ? ojson(ev.text) : parsed;
    }
    r->dirty = true;
    break;
  }
  }
}

void World::arrive(Space& s, int64_t now, bool allow_ev) {
  s.occupied = true;
  s.since_ms = now;
  s.fuel_car = false;
  s.rep.dirty = true;
  if (s.pile >= 0 && allow_ev && s.rng.chance(scenario_.behaviour.parking.ev_share)) {
    startPileSession(piles_[static_cast<size_t>(s.pile)], now);
  }
}

void World::leave(Space& s, int64_t now) {
  s.occupied = false;
  s.since_ms = now;
  s.fuel_car = false;
  s.pinned_until = 0;
  s.rep.dirty = true;
  if (s.pile >= 0) {
    Pile& p = piles_[static_cast<size_t>(s.pile)];
    if (p.state != PileState::Available && p.state != PileState::Faulted) {
      setPileState(p, PileState::Finishing, now);
    }
  }
}

void World::startPileSession(Pile& p, int64_t now) {
  const auto& eb = scenario_.behaviour.ev;
  p.need_kwh = p.rng.uniform(eb.session_kwh_min, eb.session_kwh_max);
  p.session_kwh = 0;
  setPileState(p, PileState::Preparing, now);
}

void World::setPileState(Pile& p, PileState st, int64_t now) {
  if (p.state == st) {
    return;
  }
  p.state = st;
  p.state_since = now;
  if (st != PileState::Charging) {
    p.power_kw = 0;
  }
  if (st == PileState::Available) {
    p.session_kwh = 0;
  }
  p.rep.dirty = true;
}

void World::stepParking(Space& s, int64_t now, double dt) {
  const auto& pb = scenario_.behaviour.parking;
  if (s.flap_until != 0 && now >= s.flap_until) {
    s.flap_until = 0;
    s.rep.dirty = true;
  }
  if (s.pinned_until != 0) {
    if (now < s.pinned_until) {
      return;
    }
    leave(s, now);
    return;
  }
  if (!scenario_.realistic) {
    return;
  }
  double target = occupancyTarget(now);
  double cycle = static_cast<double>(pb.mean_cycle_ms);
  if (!s.occupied) {
    if (s.rng.chance(probabilityWithin(target / cycle, dt))) {
      arrive(s, now, true);
    }
  } else {
    bool charging = s.pile >= 0 && (piles_[static_cast<size_t>(s.pile)].state ==
                                         PileState::Charging ||
                                     piles_[static_cast<size_t>(s.pile)].state ==
                                         PileState::Preparing);
    if (!charging && s.rng.chance(probabilityWithin((1.0 - target) / cycle, dt))) {
      leave(s, now);
    }
  }
  if (s.flap_until == 0 && s.rng.chance(probabilityWithin(pb.flaps_per_day / kDayMs, dt))) {
    s.flap_until = now + pb.flap_ms;
    s.rep.dirty = true;
  }
}

void World::stepPile(Pile& p, int64_t now, double dt) {
  const auto& eb = scenario_.behaviour.ev;
  switch (p.state) {
  case PileState::Available:
    if (p.space < 0 && scenario_.realistic) {
      double h = localHour(now);
      double weight = (h >= 18 && h < 23) ? 2.5 : (h >= 8 && h < 18) ? 0.8 : 0.3;
      if (p.rng.chance(probabilityWithin(eb.sessions_per_day * weight / kDayMs, dt))) {
        startPileSession(p, now);
      }
    }
    break;
  case PileState::Preparing:
    if (now - p.state_since >= 60'000) {
      setPileState(p, PileState::Charging, now);
    }
    break;
  case PileState::Charging: {
    double remaining = p.need_kwh - p.session_kwh;
    double taper = remaining < 0.1 * p.need_kwh ? std::max(0.3, remaining / (0.1 * p.need_kwh))
                                                : 1.0;
    p.power_kw = std::max(0.0, eb.power_kw * taper * (1.0 + p.rng.normal(0, 0.01)));
    double kwh = p.power_kw * dt / kHourMs;
    p.session_kwh += kwh;
    p.total_kwh += kwh;
    if (p.session_kwh >= p.need_kwh) {
      setPileState(p, PileState::SuspendedEV, now);
      p.leave_at = now + static_cast<int64_t>(p.rng.exponential(static_cast<double>(eb.sit_ms)));
    }
    break;
  }
  case PileState::SuspendedEV:
    if (p.space < 0 && now >= p.leave_at) {
      setPileState(p, PileState::Finishing, now);
    }
    break;
  case PileState::Finishing:
    if (now - p.state_since >= 60'000) {
      setPileState(p, PileState::Available, now);
    }
    break;
  case PileState::Faulted:
    break;
  }
}

void World::stepShed(Shed& s, int64_t now, double dt) {
  double target = ambient(now) + (s.smoke ? 15.0 : 0.0);
  s.temp_c += (target - s.temp_c) * (1.0 - std::exp(-dt / 600'000.0)) + s.rng.normal(0, 0.02);
}

void World::stepPort(Port& p, int64_t now, double dt) {
  const auto& eb = scenario_.behaviour.ebike;
  double h = localHour(now);
  bool powered = p.relay && (p.shed < 0 || sheds_[static_cast<size_t>(p.shed)].main_relay);
  if (!p.plugged) {
    p.power_w = 0;
    if (scenario_.realistic) {
      double weight = (h >= 18 && h < 23) ? 3.0 : (h >= 7 && h < 18) ? 0.6 : 0.3;
      if (p.rng.chance(probabilityWithin(eb.sessions_per_day * weight / kDayMs, dt))) {
        p.plugged = true;
        p.full = false;
        p.need_wh = p.rng.uniform(eb.session_wh_min, eb.session_wh_max);
        p.peak_w = p.rng.uniform(eb.peak_w_min, eb.peak_w_max);
        p.delivered_wh = 0;
        p.session_start = now;
        p.unplug_at = 0;
        p.rep.dirty = true;
      }
    }
  } else if (powered && !p.full) {
    // Constant power, then the charger's constant-voltage phase: power falls as the battery
    // fills, and the charger cuts itself off below the "full" threshold.
    double f = p.need_wh > 0 ? p.delivered_wh / p.need_wh : 1.0;
    double shape = f < 0.7 ? 1.0 : std::pow(std::max(0.0, 1.0 - f) / 0.3, 1.5);
    p.power_w = std::max(0.0, p.peak_w * shape * (1.0 + p.rng.normal(0, 0.02)));
    if (p.power_w < eb.full_below_w) {
      p.full = true;
      p.power_w = 0;
      p.unplug_at = now + static_cast<int64_t>(p.rng.exponential(
                              static_cast<double>(eb.unplug_after_ms)));
      p.rep.dirty = true;
    }
    p.delivered_wh += p.power_w * dt / kHourMs;
  } else {
    p.power_w = 0;
    if (!powered && p.unplug_at == 0) {
      p.unplug_at = now + static_cast<int64_t>(p.rng.exponential(
                              static_cast<double>(eb.unplug_after_ms)));
    }
  }
  if (p.plugged && p.unplug_at != 0 && now >= p.unplug_at && scenario_.realistic) {
    p.plugged = false;
    p.full = false;
    p.power_w = 0;
    p.unplug_at = 0;
    p.rep.dirty = true;
  }
  double amb = p.shed >= 0 ? sheds_[static_cast<size_t>(p.shed)].temp_c : ambient(now);
  if (p.heat.active && (powered || p.ignore_commands)) {
    p.temp_c = p.heat.at(now) + p.rng.normal(0, 0.1);
  } else {
    // Once the relay is open the hot connector cools toward the shed's air.
    p.heat.active = false;
    double target = amb + p.power_w * 0.04;
    p.temp_c += (target - p.temp_c) * (1.0 - std::exp(-dt / 600'000.0)) + p.rng.normal(0, 0.02);
  }
}

void World::stepCo(CoSensor& c, int64_t now, double dt) {
  const auto& cb = scenario_.behaviour.co;
  if (c.rise.active) {
    c.ppm = std::max(0.0, c.rise.at(now) + c.rng.normal(0, 0.3));
    return;
  }
  double h = localHour(now);
  double target = cb.baseline_ppm +
                  cb.rush_ppm * (std::exp(-(h - 8) * (h - 8) / 2) + std::exp(-(h - 18) * (h - 18) / 2));
  c.ppm += (target - c.ppm) * (1.0 - std::exp(-dt / 300'000.0));
  c.ppm = std::max(0.0, c.ppm + c.rng.normal(0, 0.05));
}

void World::syncModbus(int64_t now) {
  const double volts = scenario_.behaviour.ebike.volts;
  for (auto& s : sheds_) {
    if (!s.modbus || !s.server) {
      continue;
    }
    s.server->withUnit(s.unit, [&](modbus_mapping_t& m) {
      bool main_on = m.tab_bits[shed::kMainRelayCoil] != 0;
      if (main_on != s.main_relay) {
        ++stats_.commands;
        s.main_relay = main_on;
        spdlog::info("shed {} main relay {} (Modbus write)", dev(s.dev).id, main_on ? "on" : "off");
      }
      double total = 0;
      for (int idx : s.ports) {
        Port& p = ports_[static_cast<size_t>(idx)];
        bool coil = m.tab_bits[shed::kPortCoilBase + p.number - 1] != 0;
        if (coil != p.relay) {
          ++stats_.commands;
          p.relay = coil;
          if (!coil) {
            p.power_w = 0;
          } else if (!p.full) {
            p.unplug_at = 0;
          }
          spdlog::info("port {} relay {} (Modbus write)", dev(p.dev).id, coil ? "on" : "off");
        }
        double power = p.relay && s.main_relay ? p.power_w : 0.0;
        total += power;
        uint16_t* r = m.tab_input_registers + shed::kPortBase + (p.number - 1) * shed::kPortStride;
        putU16(r, shed::kCurrent, power / volts * 100.0);
        putU16(r, shed::kPower, power);
        putI16(r, shed::kTemp, p.temp_c * 10.0);
        putU32(r, shed::kSessionSeconds,
               p.plugged ? static_cast<uint32_t>((now - p.session_start) / 1000) : 0);
        putU32(r, shed::kEnergyWh, p.plugged ? static_cast<uint32_t>(p.delivered_wh) : 0);
        r[shed::kStatus] = static_cast<uint16_t>((p.plugged ? 1 : 0) | (p.full ? 2 : 0));
      }
      putI16(m.tab_input_registers, shed::kAmbientTemp, s.temp_c * 10.0);
      putU32(m.tab_input_registers, shed::kTotalPower, static_cast<uint32_t>(std::lround(total)));
      m.tab_input_registers[shed::kFaultCode] = 0;
      m.tab_input_bits[shed::kSmokeInput] = s.smoke ? 1 : 0;
    });
  }
  for (auto& mt : meters_) {
    if (!mt.server) {
      continue;
    }
    double kw = 0;
    double kwh = mt.total_kwh;
    if (mt.pile >= 0) {
      kw = piles_[static_cast<size_t>(mt.pile)].power_kw;
      kwh += piles_[static_cast<size_t>(mt.pile)].total_kwh;
    } else {
      for (const auto& p : piles_) {
        kw += p.power_kw;
        kwh += p.total_kwh;
      }
    }
    double volts = 228.0 + 4.0 * std::sin(static_cast<double>(now) / 7.0e5);
    double hz = 50.0 + 0.02 * std::sin(static_cast<double>(now) / 1.3e5);
    mt.server->withUnit(mt.unit, [&](modbus_mapping_t& m) {
      if (mt.layout == Layout::Ddsu666) {
        uint16_t* r = m.tab_registers;
        putFloatAbcd(r, ddsu666::kVoltage, volts);
        putFloatAbcd(r, ddsu666::kCurrent, kw * 1000.0 / volts);
        putFloatAbcd(r, ddsu666::kPowerKw, kw);
        putFloatAbcd(r, ddsu666::kFrequency, hz);
        putFloatAbcd(r, ddsu666::kImportEnergy, kwh);
        return;
      }
      uint16_t* r = m.tab_input_registers;
      putFloatAbcd(r, sdm120::kVoltage, volts);
      putFloatAbcd(r, sdm120::kCurrent, kw * 1000.0 / volts);
      double pf = kw > 0 ? 0.99 : 1.0;
      double va = kw * 1000.0 / pf;
      putFloatAbcd(r, sdm120::kActivePower, kw * 1000.0);
      putFloatAbcd(r, sdm120::kApparentPower, va);
      putFloatAbcd(r, sdm120::kReactivePower, std::sqrt(std::max(0.0, va * va - kw * kw * 1e6)));
      putFloatAbcd(r, sdm120::kPowerFactor, pf);
      putFloatAbcd(r, sdm120::kFrequency, hz);
      putFloatAbcd(r, sdm120::kImportEnergy, kwh);
      putFloatAbcd(r, sdm120::kExportEnergy, 0);
      putFloatAbcd(r, sdm120::kTotalEnergy, kwh);
    });
  }
  for (auto& f : fans_) {
    f.server->withUnit(f.unit, [&](modbus_mapping_t& m) {
      bool s1 = m.tab_bits[fan::kStage1Coil] != 0;
      bool s2 = m.tab_bits[fan::kStage2Coil] != 0;
      if (s1 != f.stage1 || s2 != f.stage2) {
        ++stats_.commands;
        spdlog::info("fans {}: stage 1 {}, stage 2 {}", dev(f.dev).id, s1 ? "on" : "off",
                     s2 ? "on" : "off");
        f.stage1 = s1;
        f.stage2 = s2;
      }
      m.tab_input_bits[fan::kRunningInput] = (s1 || s2) ? 1 : 0;
      m.tab_input_bits[fan::kFaultInput] = 0;
    });
  }
  for (auto& c : cos_) {
    if (!c.modbus || !c.server) {
      continue;
    }
    double temp = ambient(now) - 4.0;
    c.server->withUnit(c.unit, [&](modbus_mapping_t& m) {
      uint16_t* r = m.tab_registers;
      putU16(r, co::kPpm, c.ppm);
      putI16(r, co::kTemp, temp * 10.0);
      bool alarm = r[co::kThreshold] > 0 && c.ppm >= r[co::kThreshold];
      r[co::kStatus] = static_cast<uint16_t>(alarm ? 2 : 0);
    });
  }
  for (auto& d : displays_) {
    if (!d.server) {
      continue;
    }
    std::vector<uint16_t> regs;
    d.server->withUnit(d.unit, [&](modbus_mapping_t& m) {
      regs.assign(m.tab_registers, m.tab_registers + m.nb_registers);
    });
    if (regs != d.regs) {
      d.regs = std::move(regs);
      d.log_pending = true;
    }
    // The gateway writes a board register by register: log the board once it has settled.
    if (d.log_pending && now - d.logged_ms >= kDisplayLogMs) {
      std::string shown;
      for (size_t i = 0; i < d.regs.size(); ++i) {
        const char* name = display::registerName(static_cast<int>(i));
        if (*name && d.regs[i] != 0) {
          shown += fmt::format("{}{}={}", shown.empty() ? "" : " ", name,
                               d.regs[i] == 0xFFFF ? std::string("----")
                                                   : std::to_string(d.regs[i]));
        }
      }
      spdlog::info("display {} shows {}", dev(d.dev).id, shown.empty() ? "nothing" : shown);
      d.log_pending = false;
      d.logged_ms = now;
    }
  }
}

World::Report* World::reportOf(const Slot& s) {
  auto i = static_cast<size_t>(s.index);
  switch (s.kind) {
  case Kind::Space:
    return &spaces_[i].rep;
  case Kind::Pile:
    return &piles_[i].rep;
  case Kind::Shed:
    return &sheds_[i].rep;
  case Kind::Port:
    return &ports_[i].rep;
  case Kind::Co:
    return &cos_[i].rep;
  case Kind::Smoke:
    return &smokes_[i].rep;
  default:
    return nullptr;
  }
}

std::string World::topicFor(const std::string& tmpl, const Device& d) const {
  std::string t = tmpl;
  replaceAll(t, "{id}", d.id);
  replaceAll(t, "{app}", scenario_.mqtt.chirpstack_application);
  replaceAll(t, "{dev_eui}", d.dev_eui);
  return t;
}

bool World::send(const std::string& topic, ojson payload, Report& r) {
  for (const auto& [k, v] : r.overrides) {
    payload[k] = v;
  }
  if (!publisher_.publish(topic, payload.dump())) {
    return false;
  }
  ++stats_.published;
  r.dirty = false;
  r.next_ms = now_ms_ + static_cast<int64_t>(static_cast<double>(r.interval_ms) *
                                             rng_.uniform(0.9, 1.1));
  return true;
}

bool World::sendSpace(Space& s, int64_t stamp) {
  const Device& d = dev(s.dev);
  bool shown = s.flap_until != 0 ? !s.occupied : s.occupied;
  if (d.dev_eui.empty()) {
    ojson j;
    j["occupied"] = shown;
    j["ts"] = stamp;
    return send(topicFor(scenario_.mqtt.topics.parking, d), std::move(j), s.rep);
  }
  // A geomagnetic sensor behind ChirpStack v4: the uplink event as the network server
  // publishes it, with the codec's decoded fields in `object`.
  ++s.fcnt;
  double battery = 3.6 - 0.0001 * static_cast<double>(s.fcnt % 2000);
  std::vector<uint8_t> raw = {static_cast<uint8_t>(shown ? 1 : 0),
                              static_cast<uint8_t>(std::lround(battery * 10))};
  ojson j;
  j["deduplicationId"] = hex(rng_.next(), 8) + "-" + hex(rng_.next(), 4) + "-4" +
                         hex(rng_.next(), 3) + "-a" + hex(rng_.next(), 3) + "-" +
                         hex(rng_.next(), 12);
  j["time"] = core::rfc3339(stamp);
  j["deviceInfo"] = {{"tenantId", scenario_.mqtt.chirpstack_tenant},
                     {"tenantName", "hgj"},
                     {"applicationId", scenario_.mqtt.chirpstack_application},
                     {"applicationName", "parking"},
                     {"deviceProfileId", "9a1f3b52-5d1e-4c39-8f6e-2b7c0e4d8a11"},
                     {"deviceProfileName", "geomagnetic-parking"},
                     {"deviceName", d.id},
                     {"devEui", d.dev_eui},
                     {"tags", ojson::object()}};
  j["devAddr"] = hex(std::hash<std::string>{}(d.dev_eui) & 0xffffffffu, 8);
  j["adr"] = true;
  j["dr"] = 5;
  j["fCnt"] = s.fcnt;
  j["fPort"] = 1;
  j["confirmed"] = false;
  j["data"] = base64(raw);
  j["object"] = {{"occupied", shown}, {"battery_v", round2(battery)}};
  double rssi = -70.0 - static_cast<double>(std::hash<std::string>{}(d.id) % 40) +
                rng_.normal(0, 2);
  j["rxInfo"] = ojson::array({{{"gatewayId", "0016c001f1500001"},
                               {"uplinkId", rng_.next() & 0xffff},
                               {"rssi", std::lround(rssi)},
                               {"snr", round1(rng_.uniform(2, 11))},
                               {"channel", static_cast<int>(s.fcnt % 8)},
                               {"context", "AAAAAA=="},
                               {"metadata", {{"region_common_name", "CN470"}}}}});
  j["txInfo"] = {{"frequency", 486300000 + 200000 * static_cast<int>(s.fcnt % 8)},
                 {"modulation",
                  {{"lora", {{"bandwidth", 125000}, {"spreadingFactor", 7}, {"codeRate",
                                                                              "CR_4_5"}}}}}};
  return send(topicFor(scenario_.mqtt.topics.chirpstack, d), std::move(j), s.rep);
}

bool World::sendReport(const Slot& slot, int64_t stamp) {
  auto i = static_cast<size_t>(slot.index);
  const auto& topics = scenario_.mqtt.topics;
  switch (slot.kind) {
  case Kind::Space:
    return sendSpace(spaces_[i], stamp);
  case Kind::Pile: {
    Pile& p = piles_[i];
    ojson j;
    j["state"] = pileStateName(static_cast<int>(p.state));
    j["power_kw"] = round2(p.power_kw);
    j["energy_kwh"] = round2(p.session_kwh);
    j["ts"] = stamp;
    return send(topicFor(topics.ev, dev(p.dev)), std::move(j), p.rep);
  }
  case Kind::Shed: {
    Shed& s = sheds_[i];
    ojson j;
    j["smoke"] = s.smoke;
    j["temp_c"] = round1(s.temp_c);
    j["ts"] = stamp;
    return send(topicFor(topics.shed, dev(s.dev)), std::move(j), s.rep);
  }
  case Kind::Port: {
    Port& p = ports_[i];
    double power = p.relay ? p.power_w : 0.0;
    ojson j;
    j["current_a"] = round2(power / scenario_.behaviour.ebike.volts);
    j["power_w"] = round1(power);
    j["temp_c"] = round1(p.temp_c);
    j["relay"] = p.relay;
    j["session_s"] = p.plugged ? (now_ms_ - p.session_start) / 1000 : 0;
    j["energy_kwh"] = p.plugged ? std::round(p.delivered_wh) / 1000.0 : 0.0;
    j["ts"] = stamp;
    return send(topicFor(topics.port, dev(p.dev)), std::move(j), p.rep);
  }
  case Kind::Co: {
    CoSensor& c = cos_[i];
    ojson j;
    j["co_ppm"] = round1(c.ppm);
    j["ts"] = stamp;
    return send(topicFor(topics.co, dev(c.dev)), std::move(j), c.rep);
  }
  case Kind::Smoke: {
    SmokeDetector& s = smokes_[i];
    ojson j;
    j["smoke"] = s.smoke;
    j["ts"] = stamp;
    return send(topicFor(topics.smoke, dev(s.dev)), std::move(j), s.rep);
  }
  default:
    return false;
  }
}

void World::publishDue(int64_t now, int64_t stamp, int budget) {
  int room = std::min(budget, publisher_.capacity());
  // State changes and command confirmations first: they are what the gateway acts on.
  for (const auto& r : reporters_) {
    Report* rep = reportOf(r);
    if (rep->dirty && rep->silent_until <= now) {
      if (!sendReport(r, stamp)) {
        return;
      }
      --room;
    }
  }
  if (reporters_.empty()) {
    return;
  }
  for (size_t n = 0; n < reporters_.size(); ++n) {
    size_t k = (cursor_ + n) % reporters_.size();
    Report* rep = reportOf(reporters_[k]);
    if (rep->silent_until > now || rep->next_ms > now) {
      continue;
    }
    if (room <= 0) {
      ++stats_.deferred;
      cursor_ = k;
      return;
    }
    if (!sendReport(reporters_[k], stamp)) {
      cursor_ = k;
      return;
    }
    --room;
  }
}

namespace {

// The id in `topic` when it fits `tmpl` ("compound/ebike/{id}/set"), else empty.
std::string idIn(const std::string& tmpl, const std::string& topic) {
  size_t at = tmpl.find("{id}");
  if (at == std::string::npos) {
    return {};
  }
  std::string prefix = tmpl.substr(0, at);
  std::string suffix = tmpl.substr(at + 4);
  if (topic.size() <= prefix.size() + suffix.size() || topic.rfind(prefix, 0) != 0 ||
      topic.compare(topic.size() - suffix.size(), suffix.size(), suffix) != 0) {
    return {};
  }
  return topic.substr(prefix.size(), topic.size() - prefix.size() - suffix.size());
}

} // namespace

std::vector<std::string> World::subscriptions() const {
  std::vector<std::string> out;
  std::set<size_t> depths;      // of MQTT ports' ids
  std::set<size_t> get_depths;  // of MQTT ports' and sheds' ids
  for (const auto& p : ports_) {
    if (!p.modbus) {
      const std::string& id = dev(p.dev).id;
      depths.insert(static_cast<size_t>(std::count(id.begin(), id.end(), '/')));
    }
  }
  get_depths = depths;
  for (const auto& sh : sheds_) {
    if (!sh.modbus) {
      const std::string& id = dev(sh.dev).id;
      get_depths.insert(static_cast<size_t>(std::count(id.begin(), id.end(), '/')));
    }
  }
  auto add = [&](const std::string& tmpl, const std::set<size_t>& ds) {
    for (size_t depth : ds) {
      std::string wild = "+";
      for (size_t i = 0; i < depth; ++i) {
        wild += "/+";
      }
      std::string t = tmpl;
      replaceAll(t, "{id}", wild);
      out.push_back(t);
    }
  };
  add(scenario_.mqtt.topics.port_set, depths);
  add(scenario_.mqtt.topics.ebike_get, get_depths);
  return out;
}

void World::handleMessage(const std::string& topic, const std::string& payload) {
  if (std::string id = idIn(scenario_.mqtt.topics.ebike_get, topic); !id.empty()) {
    const Slot* slot = slotOf(id);
    Report* rep = nullptr;
    if (slot && slot->kind == Kind::Port && !ports_[static_cast<size_t>(slot->index)].modbus) {
      rep = &ports_[static_cast<size_t>(slot->index)].rep;
    } else if (slot && slot->kind == Kind::Shed &&
               !sheds_[static_cast<size_t>(slot->index)].modbus) {
      rep = &sheds_[static_cast<size_t>(slot->index)].rep;
    }
    if (rep == nullptr) {
      ++stats_.bad_messages;
      bad_log_.warn("ignoring a refresh request for {}: not a simulated MQTT shed or port", id);
      return;
    }
    // Answered with the next step's report, like a controller asked for its state.
    ++stats_.refreshes;
    rep->dirty = true;
    return;
  }
  std::string id = idIn(scenario_.mqtt.topics.port_set, topic);
  if (id.empty()) {
    ++stats_.bad_messages;
    bad_log_.warn("ignoring a message on {}: not a port command topic", topic);
    return;
  }
  const Slot* slot = slotOf(id);
  if (!slot || slot->kind != Kind::Port || ports_[static_cast<size_t>(slot->index)].modbus) {
    ++stats_.bad_messages;
    bad_log_.warn("ignoring a command for {}: not a simulated MQTT port", id);
    return;
  }
  auto j = nlohmann::json::parse(payload, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("relay") || !j["relay"].is_boolean()) {
    ++stats_.bad_messages;
    bad_log_.warn("ignoring a command for {}: expected {{\"relay\":true|false}}, got {:.80}", id,
                  payload);
    return;
  }
  Port& p = ports_[static_cast<size_t>(slot->index)];
  bool relay = j["relay"].get<bool>();
  std::string cmd_id = j.contains("id") && j["id"].is_string() ? j["id"].get<std::string>() : "";
  if (p.ignore_commands) {
    ++stats_.commands_ignored;
    spdlog::info("port {} ignores relay command {} (scripted fault)", id, cmd_id);
    p.rep.dirty = true;
    return;
  }
  ++stats_.commands;
  spdlog::info("port {} relay {} (command {})", id, relay ? "on" : "off", cmd_id);
  p.relay = relay;
  if (!relay) {
    p.power_w = 0;
  } else if (!p.full) {
    p.unplug_at = 0;
  }
  p.rep.dirty = true;
}

std::optional<bool> World::relay(const std::string& port_id) const {
  const Slot* s = slotOf(port_id);
  if (!s || s->kind != Kind::Port) {
    return std::nullopt;
  }
  return ports_[static_cast<size_t>(s->index)].relay;
}

std::optional<double> World::portPower(const std::string& port_id) const {
  const Slot* s = slotOf(port_id);
  if (!s || s->kind != Kind::Port) {
    return std::nullopt;
  }
  const Port& p = ports_[static_cast<size_t>(s->index)];
  return p.relay ? p.power_w : 0.0;
}

std::optional<bool> World::spaceOccupied(const std::string& space_id) const {
  const Slot* s = slotOf(space_id);
  if (!s || s->kind != Kind::Space) {
    return std::nullopt;
  }
  return spaces_[static_cast<size_t>(s->index)].occupied;
}

std::optional<std::string> World::pileState(const std::string& pile_id) const {
  const Slot* s = slotOf(pile_id);
  if (!s || s->kind != Kind::Pile) {
    return std::nullopt;
  }
  return std::string(pileStateName(static_cast<int>(piles_[static_cast<size_t>(s->index)].state)));
}

std::vector<uint16_t> World::displayRegisters(const std::string& display_id) const {
  const Slot* s = slotOf(display_id);
  if (!s || s->kind != Kind::Display) {
    return {};
  }
  return displays_[static_cast<size_t>(s->index)].regs;
}

} // namespace hgj::sim
