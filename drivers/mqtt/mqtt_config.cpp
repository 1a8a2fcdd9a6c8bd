#include "drivers/mqtt/mqtt_config.h"

#include <algorithm>
#include <cstring>

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


MqttConfig parseMqttConfig(const core::ConfigNode& n, const std::string& site_id) {
  MqttConfig c;
  n.allowKeys({"client", "url", "client_id", "username", "password", "password_file", "tls",
               "keepalive", "session_expiry", "queue_capacity", "max_payload_bytes",
               "max_topic_length", "reconnect_min", "reconnect_max", "packet_timeout",
               "command_queue"});
  const bool paho = n.choice("client", "batched", {"batched", "paho"}) == "paho";
  c.client = paho ? MqttClient::Paho : MqttClient::Batched;
  c.url = n.str("url", c.url);
  std::string host;
  std::string port;
  if (c.usesTls() && !paho) {
    n.errorAt("url", "a TLS connection to the local broker needs `client: paho` (the batched "
                     "client speaks plain TCP, for a broker on the box or the compound LAN)");
  } else if (!c.usesTls() && !parseBrokerUrl(c.url, host, port)) {
    n.errorAt("url", "expected tcp://HOST:PORT or ssl://HOST:PORT, got \"" + c.url + "\"");
  }
  if (n.has("tls")) {
    core::parseTlsConfig(n.child("tls"), c.tls);
    if (!c.usesTls()) {
      n.errorAt("tls", "tls settings need an ssl:// or mqtts:// url");
    }
  }
  c.client_id = n.str("client_id", "hgj-gateway-" + site_id);
  c.username = n.str("username", "");
  c.password = n.secret("password");
  if (!c.password.empty() && c.username.empty()) {
    n.errorAt(n.has("password") ? "password" : "password_file",
              "a password needs mqtt.username too (MQTT sends no password without a user name)");
  }
  c.keepalive_s = static_cast<int>(n.duration("keepalive", std::chrono::seconds(30),
                                              std::chrono::seconds(2), std::chrono::minutes(30))
                                       .count() /
                                   1000);
  if (n.has("session_expiry")) {
    // MQTT 3.1.1, which both clients speak, has no session expiry: the broker decides how long
    // it keeps the gateway's session. A key that changed nothing is refused rather than kept.
    n.errorAt("session_expiry",
              "not an MQTT 3.1.1 setting: the broker decides how long it keeps the session "
              "(mosquitto: persistent_client_expiration); remove the key");
  }
  c.queue_capacity = static_cast<size_t>(n.integer("queue_capacity", 2048, 16, 10'000'000));
  c.max_payload_bytes =
      static_cast<size_t>(n.integer("max_payload_bytes", 64 * 1024, 64, 16 * 1024 * 1024));
  c.max_topic_length = static_cast<size_t>(n.integer("max_topic_length", 256, 16, 65535));
  c.reconnect_min_ms = n.duration("reconnect_min", std::chrono::milliseconds(500),
                                  std::chrono::milliseconds(10), std::chrono::minutes(1))
                           .count();
  c.reconnect_max_ms = n.duration("reconnect_max", std::chrono::seconds(30),
                                  std::chrono::milliseconds(100), std::chrono::hours(1))
                           .count();
  if (c.reconnect_max_ms < c.reconnect_min_ms) {
    n.errorAt("reconnect_max", "expected at least mqtt.reconnect_min (" +
                                   std::to_string(c.reconnect_min_ms) + " ms), got " +
                                   std::to_string(c.reconnect_max_ms) + " ms");
  }
  c.packet_timeout_ms = n.duration("packet_timeout", std::chrono::seconds(10),
                                   std::chrono::milliseconds(500), std::chrono::minutes(10))
                            .count();
  c.command_queue = static_cast<size_t>(n.integer("command_queue", 256, 1, 100'000));
  return c;
}

} // namespace hgj::drivers::mqtt
