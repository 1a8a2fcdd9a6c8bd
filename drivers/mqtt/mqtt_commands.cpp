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

} // namespace

CommandMessage refreshMessage(const model::Compound& compound, const RefreshRequest& req) {
  CommandMessage m;
  if (req.device >= compound.devices.size()) {
    m.error = "unknown device";
    return m;
  }
  const model::Device& dev = compound.devices[req.device];
  const auto* spec = profiles::mqttSpec(*dev.profile);
  if (!spec || !spec->refresh) {
    m.error = "profile " + dev.profile->name + " declares no MQTT refresh";
    return m;
  }
  m.topic = expandDeviceTopic(compound, dev, spec->refresh->topic);
  m.payload = spec->refresh->payload;
  return m;
}

CommandMessage commandMessage(const model::Compound& compound, const WriteRequest& req) {
  CommandMessage m;
  if (req.device >= compound.devices.size()) {
    m.error = "unknown device";
    return m;
  }
  const model::Device& dev = compound.devices[req.device];
  const auto* spec = profiles::mqttSpec(*dev.profile);
  if (!spec || !spec->command) {
    m.error = "profile " + dev.profile->name + " has no MQTT command topic";
    return m;
  }
  m.topic = expandDeviceTopic(compound, dev, spec->command->topic);
  nlohmann::json body;
  body[compound.pointName(req.point)] = model::toJson(req.value);
  body[spec->command->id_field] = std::to_string(req.id);
  m.payload = body.dump();
  return m;
}

void reportWriteFailed(SampleSink& sink, const WriteRequest& req, std::string why, int64_t ts_ms) {
  sink.deliverResult(
      std::make_shared<const WriteResult>(WriteResult::failure(req, std::move(why), 1, ts_ms)));
}

} // namespace hgj::drivers::mqtt
