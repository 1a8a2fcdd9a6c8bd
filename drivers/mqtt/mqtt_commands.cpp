#include "drivers/mqtt/mqtt_commands.h"

#include <nlohmann/json.hpp>

#include "drivers/profiles/mqtt_profile.h"

namespace hgj::drivers::mqtt {
namespace {

// The variables a command or refresh topic may use: {device}, {parent} and {child}.
std::string expandDeviceTopic(const model::Compound& compound, const model::Device& dev,
                              const profiles::TopicTemplate& topic) {
  std::string parent = dev.parent != model::kNoDevice ? compound.devices[dev.parent].id : "";
  std::string child = parent.empty() ? dev.id : dev.id.substr(parent.size() + 1);
  return topic.expand(
      {{"device", dev.id}, {"parent", parent.empty() ? dev.id : parent}, {"child", child}});
}

// The device and its profile's `part` (its command or its refresh), or nullptrs with `m.error`
// saying which is missing.
template <typename Part>
std::pair<const model::Device*, const Part*>
partOf(const model::Compound& compound, model::DeviceIndex device,
       const std::optional<Part> profiles::MqttSpec::*part, std::string_view missing,
       CommandMessage& m) {
  if (device >= compound.devices.size()) {
    m.error = "unknown device";
    return {nullptr, nullptr};
  }
  const model::Device& dev = compound.devices[device];
  const auto* spec = profiles::mqttSpec(*dev.profile);
  if (!spec || !(spec->*part)) {
    m.error = "profile " + dev.profile->name + " " + std::string(missing);
    return {nullptr, nullptr};
  }
  return {&dev, &*(spec->*part)};
}

} // namespace

CommandMessage refreshMessage(const model::Compound& compound, const RefreshRequest& req) {
  CommandMessage m;
  const auto [dev, refresh] =
      partOf(compound, req.device, &profiles::MqttSpec::refresh, "declares no MQTT refresh", m);
  if (refresh == nullptr) {
    return m;
  }
  m.topic = expandDeviceTopic(compound, *dev, refresh->topic);
  m.payload = refresh->payload;
  return m;
}

CommandMessage commandMessage(const model::Compound& compound, const WriteRequest& req) {
  CommandMessage m;
  const auto [dev, command] =
      partOf(compound, req.device, &profiles::MqttSpec::command, "has no MQTT command topic", m);
  if (command != nullptr) {
    m.topic = expandDeviceTopic(compound, *dev, command->topic);
    nlohmann::json body;
    body[compound.pointName(req.point)] = model::toJson(req.value);
    body[command->id_field] = std::to_string(req.id);
    m.payload = body.dump();
  }
  return m;
}

void reportWriteFailed(SampleSink& sink, const WriteRequest& req, std::string why, int64_t ts_ms) {
  sink.deliverResult(
      std::make_shared<const WriteResult>(WriteResult::failure(req, std::move(why), 1, ts_ms)));
}

} // namespace hgj::drivers::mqtt
