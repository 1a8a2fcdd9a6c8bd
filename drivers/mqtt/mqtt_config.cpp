#include "drivers/mqtt/mqtt_config.h"

#include <algorithm>
#include <cstring>

#include <nlohmann/json.hpp>

#include "drivers/mqtt/batched_ingest.h"
#include "drivers/mqtt/mqtt_ingest.h"
#include "drivers/mqtt/paho_ingest.h"
#include "drivers/profiles/mqtt_profile.h"

namespace hgj::drivers::mqtt {

bool parseBrokerUrl(const std::string& url, std::string& host, std::string& port) {
  std::string rest;
  for (const char* scheme : {"tcp://", "mqtt://"}) {
    if (url.rfind(scheme, 0) == 0) {
      rest = url.substr(std::strlen(scheme));
      break;
    }
  }
  if (rest.empty()) {
    return false;
  }
  std::string hostpart = rest;
  port = "1883";
  if (rest.front() == '[') {
    size_t close = rest.find(']');
    if (close == std::string::npos) {
      return false;
    }
    hostpart = rest.substr(1, close - 1);
    if (close + 1 < rest.size()) {
      if (rest[close + 1] != ':') {
        return false;
      }
      port = rest.substr(close + 2);
    }
  } else if (size_t colon = rest.rfind(':'); colon != std::string::npos) {
    hostpart = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  if (!port.empty() && port.back() == '/') {
    port.pop_back();
  }
  host = hostpart;
  // A port outside 1..65535 would only show as an endless "cannot connect" at run time.
  return !host.empty() && !port.empty() && port.size() <= 5 &&
         std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
         std::stoi(port) >= 1 && std::stoi(port) <= 65535;
}


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
  const auto& spec = dev.profile->mqtt;
  if (!spec || !spec->refresh) {
    m.error = "profile " + dev.profile->name + " declares no MQTT refresh";
    return m;
  }
  m.topic = expandDeviceTopic(compound, dev, spec->refresh->topic);
  m.payload = spec->refresh->payload;
  return m;
}

CommandMessage commandMessage(const model::Compound& compound, const WriteRequest& req) {
  const model::Device& dev = compound.devices[req.device];
  const auto& spec = dev.profile->mqtt;
  CommandMessage m;
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

std::unique_ptr<MqttIngest> makeMqttIngest(MqttDriverConfig cfg, const model::Compound& compound,
                                           SampleSink& sink, core::MetricsRegistry& metrics,
                                           const core::Clock& clock) {
  if (cfg.client == MqttClient::Paho) {
    return std::make_unique<PahoIngest>(std::move(cfg), compound, sink, metrics, clock);
  }
  return std::make_unique<BatchedIngest>(std::move(cfg), compound, sink, metrics, clock);
}

} // namespace hgj::drivers::mqtt
