#include "tests/integration/sim/sim_fixture.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include <unistd.h>

#include <mqtt/async_client.h>

#include "core/config_node.h"

namespace hgj::sim::test {

nlohmann::json Message::json() const { return nlohmann::json::parse(payload, nullptr, false); }

Recorder::Recorder(const std::string& url, const std::string& filter) {
  static int n = 0;
  client_ = std::make_unique<mqtt::async_client>(url, "recorder-" + std::to_string(getpid()) +
                                                          "-" + std::to_string(++n));
  client_->set_message_callback([this](mqtt::const_message_ptr m) {
    std::lock_guard lock(mu_);
    messages_.push_back({m->get_topic(), m->to_string()});
  });
  client_->set_connected_handler([this, filter](const std::string&) {
    client_->subscribe(filter, 1);
  });
  auto opts = mqtt::connect_options_builder()
                  .clean_session(true)
                  .automatic_reconnect(std::chrono::milliseconds(100), std::chrono::seconds(1))
                  .finalize();
  client_->connect(opts)->wait_for(std::chrono::seconds(10));
  hgj::test::waitFor([&] { return client_->is_connected(); });
}

Recorder::~Recorder() {
  try {
    if (client_->is_connected()) {
      client_->disconnect()->wait_for(std::chrono::seconds(2));
    }
  } catch (const mqtt::exception&) {
  }
}

std::vector<Message> Recorder::messages() const {
  std::lock_guard lock(mu_);
  return messages_;
}

std::vector<Message> Recorder::on(const std::string& topic) const {
  std::lock_guard lock(mu_);
  std::vector<Message> out;
  for (const auto& m : messages_) {
    if (m.topic == topic) {
      out.push_back(m);
    }
  }
  return out;
}

bool Recorder::waitFor(const std::string& topic,
                       const std::function<bool(const nlohmann::json&)>& pred,
                       std::chrono::milliseconds timeout) const {
  size_t seen = 0;
  return hgj::test::waitFor(
      [&] {
        std::lock_guard lock(mu_);
        for (; seen < messages_.size(); ++seen) {
          if (messages_[seen].topic == topic) {
            auto j = messages_[seen].json();
            if (!j.is_discarded() && pred(j)) {
              return true;
            }
          }
        }
        return false;
      },
      timeout);
}

void Recorder::publish(const std::string& topic, const std::string& payload) {
  client_->publish(topic, payload.data(), payload.size(), 1, false)->wait_for(
      std::chrono::seconds(5));
}

bool Recorder::connected() const { return client_->is_connected(); }

void Recorder::clear() {
  std::lock_guard lock(mu_);
  messages_.clear();
}

namespace {

model::Profile* addProfile(model::Compound& c, const std::string& name, const std::string& type,
                           const std::string& transport) {
  auto p = std::make_unique<model::Profile>();
  p->name = name;
  p->device_type = type;
  p->transport = transport;
  c.profiles.push_back(std::move(p));
  return c.profiles.back().get();
}

model::Device& addDevice(model::Compound& c, const std::string& id, const model::Profile* p) {
  model::Device d;
  d.id = id;
  d.profile = p;
  d.grid = "G1";
  d.index = static_cast<model::DeviceIndex>(c.devices.size());
  c.devices.push_back(d);
  return c.devices.back();
}

void addShed(model::Compound& c, const std::string& id, const model::Profile* shed,
             const model::Profile* port, int ports, const std::string& line, int unit) {
  auto parent = static_cast<model::DeviceIndex>(c.devices.size());
  model::Device& s = addDevice(c, id, shed);
  s.modbus.line = line;
  s.modbus.unit_id = unit;
  for (int n = 1; n <= ports; ++n) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "/P%02d", n);
    model::Device& d = addDevice(c, id + buf, port);
    d.parent = parent;
    d.child_number = n;
    c.devices[parent].children.push_back(d.index);
  }
}

} // namespace

std::shared_ptr<model::Compound> smallCompound() {
  auto c = std::make_shared<model::Compound>();
  c->site_id = "test-site";
  auto* parking = addProfile(*c, "parking_sensor_mqtt", "parking_sensor", "mqtt");
  auto* lora = addProfile(*c, "parking_sensor_lorawan", "parking_sensor", "mqtt");
  auto* pile = addProfile(*c, "ev_pile_mqtt", "ev_pile", "mqtt");
  auto* shed = addProfile(*c, "ebike_shed_mqtt", "ebike_shed", "mqtt");
  auto* port = addProfile(*c, "ebike_port_mqtt", "ebike_port", "mqtt");
  auto* mshed = addProfile(*c, "shed_controller_modbus", "ebike_shed", "modbus");
  auto* mport = addProfile(*c, "ebike_port_modbus", "ebike_port", "modbus");
  auto* smoke = addProfile(*c, "smoke_detector_mqtt", "smoke_detector", "mqtt");
  auto* meter = addProfile(*c, "eastron_sdm120", "meter", "modbus");
  auto* co = addProfile(*c, "co_sensor_mqtt", "co_sensor", "mqtt");
  auto* co_mb = addProfile(*c, "co_sensor_modbus", "co_sensor", "modbus");
  auto* display = addProfile(*c, "guidance_display", "display", "modbus");
  for (int n = 1; n <= 10; ++n) {
    char id[32];
    std::snprintf(id, sizeof(id), "P-B1-%04d", n);
    model::Device& d = addDevice(*c, id, n == 4 ? lora : parking);
    d.location.level = "B1";
    d.location.zone = "A";
    if (n == 3) {
      d.linked_id = "EV-01";
    }
    if (n == 4) {
      d.dev_eui = "a84041000181c0de";
    }
  }
  addDevice(*c, "EV-01", pile).linked_id = "P-B1-0003";
  addDevice(*c, "EV-02", pile);
  addShed(*c, "S01", shed, port, 3, "", 0);
  addDevice(*c, "SD-S01", smoke);
  addShed(*c, "M01", mshed, mport, 3, "sheds", 1);
  model::Device& m = addDevice(*c, "MT-EV-01", meter);
  m.modbus.line = "garage";
  m.modbus.unit_id = 10;
  m.linked_id = "EV-01";
  addDevice(*c, "CO-B1-01", co);
  model::Device& co2 = addDevice(*c, "CO-B1-02", co_mb);
  co2.modbus.line = "garage";
  co2.modbus.unit_id = 20;
  model::Device& dsp = addDevice(*c, "DSP-01", display);
  dsp.modbus.line = "garage";
  dsp.modbus.unit_id = 30;
  c->buildIndexes();
  return c;
}

Scenario scenarioFromText(const std::string& yaml) {
  core::Diagnostics diag;
  auto root = core::loadYamlText(yaml, "test.yaml", diag);
  if (!root) {
    throw core::ConfigError(std::move(diag));
  }
  Scenario s = parseScenario(*root, ".");
  if (!diag.ok()) {
    throw core::ConfigError(std::move(diag));
  }
  return s;
}

} // namespace hgj::sim::test
