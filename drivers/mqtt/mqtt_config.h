#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace hgj::drivers::mqtt {

/// Which client reads the local broker (`mqtt.client`), see MqttIngest.
enum class MqttClient { Batched, Paho };

/// What the MQTT ingest driver needs; filled from the `mqtt:` config section.
struct MqttDriverConfig {
  MqttClient client = MqttClient::Batched;
  std::string url;
  std::string client_id;
  std::string username;
  std::string password;
  int keepalive_s = 30;
  int64_t reconnect_min_ms = 500;
  int64_t reconnect_max_ms = 30'000;
  std::vector<std::string> subscriptions;  ///< topic filters, QoS 1
  /// Batched client: larger PUBLISH packets are acked and discarded as they stream in (counted
  /// as oversized).
  size_t max_packet_bytes = 64 * 1024 + 256 + 16;
};

/// Host and port of a tcp:// or mqtt:// URL (port 1883 when left out; "tcp://[::1]:1883" for
/// IPv6). False when the URL is not one.
bool parseBrokerUrl(const std::string& url, std::string& host, std::string& port);

} // namespace hgj::drivers::mqtt
