// The `mqtt:` section as drivers/mqtt parses it (the error cases are in tests/config_cases).
#include <fstream>

#include <catch2/catch.hpp>

#include "drivers/mqtt/mqtt_config.h"
#include "tests/support/test_support.h"

using hgj::drivers::mqtt::MqttClient;
using hgj::drivers::mqtt::parseMqttConfig;

namespace {

hgj::drivers::mqtt::MqttConfig parse(const std::string& yaml, const std::string& file,
                                     hgj::core::Diagnostics& diag) {
  hgj::core::ConfigNode root(YAML::Load(yaml), std::make_shared<const std::string>(file), "",
                             &diag);
  return parseMqttConfig(root.child("mqtt"), "site-1");
}

} // namespace

TEST_CASE("mqtt config: every key has its documented default", "[mqtt][config]") {
  hgj::core::Diagnostics diag;
  auto c = parse("{}", "gateway.yaml", diag);
  REQUIRE(diag.ok());
  CHECK(c.client == MqttClient::Batched);
  CHECK(c.url == "tcp://127.0.0.1:1883");
  CHECK(c.client_id == "hgj-gateway-site-1");
  CHECK(c.keepalive_s == 30);
  CHECK(c.queue_capacity == 2048);
  CHECK(c.max_payload_bytes == 65536);
  CHECK(c.max_topic_length == 256);
  CHECK(c.reconnect_min_ms == 500);
  CHECK(c.reconnect_max_ms == 30'000);
  CHECK(c.packet_timeout_ms == 10'000);
  CHECK(c.command_queue == 256);
  CHECK(c.maxPublishBytes() == 65536 + 256 + 16);
}

TEST_CASE("mqtt config: the password comes from a file next to the config", "[mqtt][config]") {
  hgj::test::TempDir dir;
  std::ofstream(dir.file("broker.secret")) << "  s3cret\n";
  hgj::core::Diagnostics diag;
  auto c = parse(R"({mqtt: {client: paho, url: "ssl://broker.lan:8883", username: gw,
                     password_file: broker.secret, packet_timeout: 2s, command_queue: 16,
                     tls: {verify: false}}})",
                 dir.file("gateway.yaml"), diag);
  REQUIRE(diag.format() == "");
  CHECK(c.client == MqttClient::Paho);
  CHECK(c.usesTls());
  CHECK(c.password == "s3cret");
  CHECK_FALSE(c.tls.verify);
  CHECK(c.packet_timeout_ms == 2'000);
  CHECK(c.command_queue == 16);
}
