#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace hgj::drivers::mqtt {

/// What the MQTT ingest driver needs; filled from the `mqtt:` config section.
struct MqttDriverConfig {
  std::string url;
  std::string client_id;
  std::string username;
  std::string password;
  int keepalive_s = 30;
  int64_t reconnect_min_ms = 500;
  int64_t reconnect_max_ms = 30'000;
  std::vector<std::string> subscriptions;  ///< topic filters, QoS 1
};

} // namespace hgj::drivers::mqtt
