#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/config_node.h"
#include "core/tls_config.h"

namespace hgj::drivers::mqtt {

/// Which client reads the local broker (`mqtt.client`), see MqttIngest.
enum class MqttClient { Batched, Paho };

/// TLS to the local broker (`mqtt.tls`, ssl:// URLs, Paho only).
using MqttTlsConfig = core::TlsConfig;

/// The gateway.yaml `mqtt:` section: the local broker and the MQTT ingest (docs/configuration.md
/// lists every key and its default). The pipeline reads queue_capacity, max_payload_bytes and
/// max_topic_length; the rest is the driver's.
struct MqttConfig {
  MqttClient client = MqttClient::Batched;
  std::string url = "tcp://127.0.0.1:1883";
  std::string client_id;  ///< default "hgj-gateway-<site>"
  std::string username;
  std::string password;
  MqttTlsConfig tls;
  int keepalive_s = 30;
  size_t queue_capacity = 2048;  ///< the pipeline's queue, in messages
  size_t max_payload_bytes = 64 * 1024;
  size_t max_topic_length = 256;
  int64_t reconnect_min_ms = 500;
  int64_t reconnect_max_ms = 30'000;
  /// The longest one packet from the broker may take to arrive (batched client).
  int64_t packet_timeout_ms = 10'000;
  /// Writes and refreshes waiting for the client's thread; a write beyond is refused at once.
  size_t command_queue = 256;

  /// The largest PUBLISH packet the batched client buffers; larger ones are acknowledged and
  /// discarded as they stream in (the pipeline would drop them as oversized anyway).
  size_t maxPublishBytes() const { return max_payload_bytes + max_topic_length + 16; }
  bool usesTls() const {
    return url.rfind("ssl://", 0) == 0 || url.rfind("mqtts://", 0) == 0;
  }
};

/// Parses the `mqtt:` section (undefined: every default). Problems go to the node's
/// diagnostics as `FILE:LINE: mqtt.key: message`. Config-loading thread only.
MqttConfig parseMqttConfig(const core::ConfigNode& section, const std::string& site_id);

/// Host and port of a tcp:// or mqtt:// URL (port 1883 when left out; "tcp://[::1]:1883" for
/// IPv6). False when the URL is not one.
bool parseBrokerUrl(const std::string& url, std::string& host, std::string& port);

} // namespace hgj::drivers::mqtt
