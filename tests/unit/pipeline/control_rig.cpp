#include "tests/unit/pipeline/control_rig.h"

#include <fstream>
#include <stdexcept>

#include <spdlog/spdlog.h>

namespace hgj::pipeline::test {

ControlRig::ControlRig(const std::string& rules_yaml, bool upstream_override) {
  // The actuator logs every write; thousands of property steps need quiet.
  spdlog::set_level(spdlog::level::err);
  std::ofstream(dir.file("gateway.yaml")) << "site: {id: rig}\n"
                                          << "include:\n"
                                          << "  grids: " << hgj::test::sourcePath("conf/grids.yaml")
                                          << "\n"
                                          << "  alerts: "
                                          << hgj::test::sourcePath("conf/alerts.yaml") << "\n"
                                          << "  devices: devices.yaml\n"
                                          << "  rules: rules.yaml\n"
                                          << "  profiles: "
                                          << hgj::test::sourcePath("conf/profiles") << "\n"
                                          << "modbus:\n"
                                          << "  lines: [{id: bus, type: tcp, host: 127.0.0.1, "
                                             "port: 1502}]\n"
                                          << "uplink: {commands: {enabled: true, "
                                             "write_points: ['*.*'], allow_override: "
                                          << (upstream_override ? "true" : "false") << "}}\n";
  std::ofstream(dir.file("devices.yaml"))
      << "devices:\n"
      << "  - {id: S01, profile: ebike_shed_mqtt, grid: G3, ports: 3}\n"
      << "  - {id: M01, profile: hgj_ebike_shed_m12, grid: G3, ports: 12,\n"
      << "     modbus: {line: bus, unit: 1, poll_interval: 1s}}\n";
  std::ofstream(dir.file("rules.yaml")) << rules_yaml;
  core::Diagnostics diag;
  cfg = config::loadConfig(dir.file("gateway.yaml"), {}, diag);
  if (!diag.ok()) {
    throw std::runtime_error("rig config: " + diag.format());
  }
  reset(upstream_override);
}

void ControlRig::reset(bool upstream_override) {
  control.reset();
  journal = FakeJournal();
  driver.writes.clear();
  driver.refreshes.clear();
  driver.on_write = nullptr;
  outputs = RecordingOutputs();
  outcomes.clear();
  state = std::make_unique<model::StateTable>(*cfg.compound);
  control = std::make_unique<Control>(
      *cfg.compound, *state, std::make_shared<const rules::RulesConfig>(cfg.rules), journal,
      outputs, metrics, clock, upstream_override);
  control->addDriver(&driver);
}

model::DeviceIndex ControlRig::dev(const std::string& id) const {
  auto d = cfg.compound->deviceIndex(id);
  if (d == model::kNoDevice) {
    throw std::runtime_error("no device " + id);
  }
  return d;
}

model::PointId ControlRig::pt(const std::string& name) const {
  return *cfg.compound->pointId(name);
}

void ControlRig::feed(model::DeviceIndex device, model::PointId point, model::Value value,
                      model::Quality quality) {
  model::Reading r{device, point, quality, std::move(value), clock.wallMs(), clock.wallMs()};
  auto applied = state->apply(r, clock.steadyNow());
  control->onReading(r, applied);
}

void ControlRig::feed(const std::string& device, const std::string& point, model::Value value,
                      model::Quality quality) {
  feed(dev(device), pt(point), std::move(value), quality);
}

void ControlRig::run(std::chrono::milliseconds d) {
  while (d.count() > 0) {
    auto step = std::min(d, std::chrono::milliseconds(100));
    clock.advance(step);
    d -= step;
    control->tick();
  }
}

void ControlRig::commitRecords(bool durable) {
  auto ids = std::move(journal.waiting);
  journal.waiting.clear();
  for (uint64_t id : ids) {
    if (durable) {
      journal.committed.insert(id);
    }
    control->onRecorded(id, durable);
  }
}

void ControlRig::result(const drivers::WriteRequest& req, bool ok, int attempts) {
  drivers::WriteResult r;
  r.request_id = req.id;
  r.device = req.device;
  r.point = req.point;
  r.value = req.value;
  r.ok = ok;
  r.attempts = attempts;
  r.error = ok ? "" : "read-back mismatch";
  r.ts_ms = clock.wallMs();
  control->onResult(r);
}

void ControlRig::command(const std::string& device, const std::string& point, model::Value value,
                         rules::Writer writer, bool override_latch) {
  control->write(dev(device), pt(point), std::move(value), writer,
                 writer == rules::Writer::Upstream ? "upstream:rig#1" : "api:operator",
                 override_latch, [this](const ActuationOutcome& o) { outcomes.push_back(o); });
}

std::vector<drivers::WriteRequest> ControlRig::writesTo(const std::string& device,
                                                        const std::string& point) const {
  std::vector<drivers::WriteRequest> out;
  for (const auto& w : driver.writes) {
    if (w.device == dev(device) && w.point == pt(point)) {
      out.push_back(w);
    }
  }
  return out;
}

} // namespace hgj::pipeline::test
