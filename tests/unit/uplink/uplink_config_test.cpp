#include <catch2/catch.hpp>

#include "gateway/uplink/uplink_config.h"

using namespace hgj;

namespace {

uplink::UplinkConfig parse(const std::string& yaml, core::Diagnostics& diag) {
  auto root = core::loadYamlText(yaml, "gateway.yaml", diag);
  REQUIRE(root);
  return uplink::parseUplinkConfig(root->child("uplink"));
}

} // namespace

TEST_CASE("uplink config: an absent section gives the documented defaults", "[uplink][config]") {
  core::Diagnostics diag;
  auto c = parse("site: {id: x}\n", diag);
  CHECK(diag.ok());
  CHECK_FALSE(c.enabled);
  CHECK(c.url == "tcp://127.0.0.1:1883");
  CHECK(c.mode == uplink::Mode::Native);
  CHECK(c.inflight == 64);
  CHECK(c.outbox.max_rows == 200'000);
  CHECK(c.summaries.parking == std::chrono::seconds(60));
  CHECK(c.summaries.utc_offset_minutes == 480);
  CHECK(c.commands.allow.size() == 3);
  CHECK(c.replay.max_rate == 100);
  CHECK(c.replay.adaptive);
  CHECK(c.backoff_first == std::chrono::seconds(10));
  CHECK(c.summaries.coalesce);
}

TEST_CASE("uplink config: the replay pacing and the first reconnect's spread",
          "[uplink][config]") {
  core::Diagnostics diag;
  auto c = parse(R"(uplink:
  backoff: {min: 1s, max: 30s, first: 20s}
  summaries: {coalesce: false}
  replay: {max_rate: 40, min_rate: 2, start_rate: 8, increase: 4, slow_ack: 300ms, adaptive: true}
)",
                 diag);
  INFO(diag.format());
  CHECK(diag.ok());
  CHECK(c.backoff_first == std::chrono::seconds(20));
  CHECK_FALSE(c.summaries.coalesce);
  CHECK(c.replay.max_rate == 40);
  CHECK(c.replay.min_rate == 2);
  CHECK(c.replay.start_rate == 8);
  CHECK(c.replay.increase == 4);
  CHECK(c.replay.slow_ack == std::chrono::milliseconds(300));

  core::Diagnostics bad;
  parse("uplink:\n  replay_rate: 10\n  replay: {max_rate: 5, min_rate: 9, slow_ak: 1s}\n", bad);
  const std::string text = bad.format();
  INFO(text);
  CHECK(text.find("uplink.replay_rate") != std::string::npos);
  CHECK(text.find("uplink.replay.min_rate") != std::string::npos);
  CHECK(text.find("uplink.replay.slow_ak") != std::string::npos);
}

TEST_CASE("uplink config: every key is read", "[uplink][config]") {
  core::Diagnostics diag;
  auto c = parse(R"(uplink:
  enabled: true
  url: mqtts://platform.example:8883
  mode: thingsboard
  client_id: gw-1
  username: u
  password: p
  keepalive: 20s
  backoff: {min: 500ms, max: 2m}
  summaries: {parking: 10s, ev: 0, on_change: false, min_interval: 2s, utc_offset: "-05:30"}
  telemetry: {enabled: true, period: 5s, max_batch: 100}
  outbox: {max_rows: 5000, max_bytes: 1048576}
  inflight: 16
  replay_rate: 500
  commands: {allow: [ack_alert], timeout: 5s}
  thingsboard: {access_token: abc}
)",
                 diag);
  INFO(diag.format());
  CHECK(diag.ok());
  CHECK(c.enabled);
  CHECK(c.usesTls());
  CHECK(c.mode == uplink::Mode::ThingsBoard);
  CHECK(c.keepalive == std::chrono::seconds(20));
  CHECK(c.backoff_min == std::chrono::milliseconds(500));
  CHECK(c.backoff_max == std::chrono::minutes(2));
  CHECK(c.summaries.parking == std::chrono::seconds(10));
  CHECK(c.summaries.ev.count() == 0);
  CHECK_FALSE(c.summaries.on_change);
  CHECK(c.summaries.utc_offset_minutes == -330);
  CHECK(c.telemetry.enabled);
  CHECK(c.telemetry.max_batch == 100);
  CHECK(c.outbox.max_rows == 5000);
  CHECK(c.inflight == 16);
  CHECK(c.replay.max_rate == 500);
  CHECK(c.commands.allow == std::vector<std::string>{"ack_alert"});
  CHECK(c.thingsboard_access_token == "abc");
}

TEST_CASE("uplink config: unknown keys and bad values are reported with their line",
          "[uplink][config]") {
  core::Diagnostics diag;
  parse(R"(uplink:
  enabled: true
  url: http://x
  mode: tb
  inflght: 3
  backoff: {min: 10s, max: 1s}
  commands: {allow: [reboot]}
  tls: {ca_file: /nonexistent/ca.pem}
)",
        diag);
  const std::string text = diag.format();
  INFO(text);
  CHECK(text.find("gateway.yaml:3: uplink.url") != std::string::npos);
  CHECK(text.find("uplink.mode") != std::string::npos);
  CHECK(text.find("uplink.inflght") != std::string::npos);
  CHECK(text.find("inflight") != std::string::npos);  // did you mean
  CHECK(text.find("uplink.backoff.max") != std::string::npos);
  CHECK(text.find("reboot") != std::string::npos);
  CHECK(text.find("uplink.tls.ca_file") != std::string::npos);
  CHECK(text.find("uplink.tls: tls settings need an ssl://") != std::string::npos);
}

TEST_CASE("uplink config: thingsboard mode needs an access token", "[uplink][config]") {
  core::Diagnostics diag;
  parse("uplink: {enabled: true, mode: thingsboard}\n", diag);
  CHECK(diag.format().find("access_token") != std::string::npos);
}
