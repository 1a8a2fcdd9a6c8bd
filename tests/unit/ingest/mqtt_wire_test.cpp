#include <catch2/catch.hpp>

#include "drivers/mqtt/mqtt_wire.h"

namespace wire = hgj::drivers::mqtt::wire;

namespace {

std::vector<wire::Packet> scanAll(const std::vector<uint8_t>& buf, size_t& consumed,
                                  bool* malformed = nullptr) {
  std::vector<wire::Packet> out;
  consumed = wire::scanPackets(
      buf.data(), buf.size(), [&](const wire::Packet& p) { out.push_back(p); }, malformed);
  return out;
}

} // namespace

TEST_CASE("mqtt wire: remaining length at the 1/2/3-byte boundaries round-trips",
          "[mqtt][wire]") {
  for (size_t payload : {size_t{0}, size_t{100}, size_t{123}, size_t{124}, size_t{16'379},
                         size_t{16'380}, size_t{70'000}}) {
    std::vector<uint8_t> buf;
    wire::appendPublish(buf, "t/x", std::string(payload, 'p'), 1, 513);
    size_t body = 0;
    int hdr = wire::parseFixedHeader(buf.data(), buf.size(), body);
    INFO("payload " << payload);
    REQUIRE(hdr > 0);
    CHECK(static_cast<size_t>(hdr) + body == buf.size());
    CHECK(body == 2 + 3 + 2 + payload);
    size_t consumed = 0;
    auto packets = scanAll(buf, consumed);
    REQUIRE(packets.size() == 1);
    CHECK(consumed == buf.size());
    CHECK(packets[0].type() == wire::PacketType::kPublish);
    CHECK(packets[0].publishQos() == 1);
    CHECK(packets[0].packetId() == 513);
    CHECK(packets[0].publishTopic() == "t/x");
    CHECK(packets[0].publishPayload().size() == payload);
  }
}

TEST_CASE("mqtt wire: a trailing partial packet is left for the next read", "[mqtt][wire]") {
  std::vector<uint8_t> buf;
  wire::appendPublish(buf, "a", "1", 0, 0);
  wire::appendPublish(buf, "b", "22", 1, 7);
  const size_t two = buf.size();
  wire::appendPublish(buf, "c", std::string(300, 'x'), 1, 8);
  for (size_t cut = two; cut < buf.size(); ++cut) {
    std::vector<uint8_t> part(buf.begin(), buf.begin() + static_cast<long>(cut));
    size_t consumed = 0;
    auto packets = scanAll(part, consumed);
    INFO("cut at " << cut);
    REQUIRE(packets.size() == 2);
    CHECK(consumed == two);
    CHECK(packets[0].publishQos() == 0);
    CHECK(packets[0].packetId() == 0);
    CHECK(packets[0].publishPayload() == "1");
    CHECK(packets[1].publishTopic() == "b");
    CHECK(packets[1].publishPayload() == "22");
  }
}

TEST_CASE("mqtt wire: a remaining length of more than 4 bytes is malformed", "[mqtt][wire]") {
  std::vector<uint8_t> buf{0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0x00};
  size_t body = 0;
  CHECK(wire::parseFixedHeader(buf.data(), buf.size(), body) == -1);
  bool malformed = false;
  size_t consumed = 0;
  CHECK(scanAll(buf, consumed, &malformed).empty());
  CHECK(malformed);
  CHECK(consumed == 0);
  // Four continuation bytes so far is still only incomplete.
  CHECK(wire::parseFixedHeader(buf.data(), 5, body) == 0);
}

TEST_CASE("mqtt wire: a PUBLISH whose topic length runs past the packet is not well formed",
          "[mqtt][wire]") {
  std::vector<uint8_t> buf{0x32, 0x04, 0x00, 0x09, 't', 'x'};
  size_t consumed = 0;
  auto packets = scanAll(buf, consumed);
  REQUIRE(packets.size() == 1);
  CHECK_FALSE(packets[0].publishWellFormed());
  CHECK(packets[0].publishTopic().empty());
  CHECK(packets[0].packetId() == 0);
}

TEST_CASE("mqtt wire: CONNECT carries clean session, keepalive and credentials in order",
          "[mqtt][wire]") {
  std::vector<uint8_t> buf;
  wire::ConnectOptions o;
  o.client_id = "gw";
  o.clean_session = false;
  o.keepalive_s = 300;
  o.username = "u";
  o.password = "pw";
  wire::appendConnect(buf, o);
  const std::vector<uint8_t> expected{0x10, 21,  0,   4,   'M', 'Q', 'T', 'T', 4,   0xC0, 0x01,
                                      0x2C, 0,   2,   'g', 'w', 0,   1,   'u', 0,   2,    'p',
                                      'w'};
  CHECK(buf == expected);
  buf.clear();
  o.username = {};
  o.clean_session = true;
  wire::appendConnect(buf, o);
  CHECK(buf[9] == 0x02);
  CHECK(buf.size() == 2 + 10 + 2 + 2);
}

TEST_CASE("mqtt wire: one SUBSCRIBE holds every filter, and PUBREL has its reserved flags",
          "[mqtt][wire]") {
  std::vector<uint8_t> buf;
  wire::appendSubscribe(buf, 1, std::vector<std::string>{"a/#", "b/+"}, 1);
  const std::vector<uint8_t> expected{0x82, 14, 0, 1, 0, 3, 'a', '/', '#', 1,
                                      0,    3,  'b', '/', '+', 1};
  CHECK(buf == expected);
  buf.clear();
  wire::appendAck(buf, wire::PacketType::kPubrel, 0x1234);
  wire::appendPuback(buf, 9);
  CHECK(buf == std::vector<uint8_t>{0x62, 2, 0x12, 0x34, 0x40, 2, 0, 9});
  size_t consumed = 0;
  auto packets = scanAll(buf, consumed);
  REQUIRE(packets.size() == 2);
  CHECK(packets[0].type() == wire::PacketType::kPubrel);
  CHECK(packets[0].packetId() == 0x1234);
  CHECK(packets[1].packetId() == 9);
}

TEST_CASE("mqtt wire: CONNACK return codes read as words", "[mqtt][wire]") {
  CHECK(wire::connackReason(0) == "accepted");
  CHECK(wire::connackReason(4) == "bad user name or password");
  CHECK(wire::connackReason(5) == "not authorized");
  CHECK(wire::connackReason(42) == "return code 42");
}

TEST_CASE("mqtt wire: MQTT strings are well-formed UTF-8 without U+0000", "[mqtt][wire]") {
  CHECK(wire::validMqttString("compound/parking/P-B1-0001/state"));
  CHECK(wire::validMqttString("日本/温度/\xF0\x9F\x94\xA5"));
  CHECK(wire::validMqttString(""));
  CHECK_FALSE(wire::validMqttString(std::string("a\0b", 3)));
  CHECK_FALSE(wire::validMqttString("\xC0\x80"));          // overlong U+0000
  CHECK_FALSE(wire::validMqttString("\xE0\x80\xAF"));      // overlong '/'
  CHECK_FALSE(wire::validMqttString("\xED\xA0\x80"));      // surrogate U+D800
  CHECK_FALSE(wire::validMqttString("\xF4\x90\x80\x80"));  // over U+10FFFF
  CHECK_FALSE(wire::validMqttString("\xE6\x97"));          // cut short
  CHECK_FALSE(wire::validMqttString("\x80"));              // a lone continuation byte
  CHECK_FALSE(wire::validMqttString("\xFF"));
}

TEST_CASE("mqtt wire: the fixed header decides a packet's fate before its body", "[mqtt][wire]") {
  wire::FixedHeader h;
  const uint8_t huge_suback[] = {0x90, 0xFF, 0xFF, 0xFF, 0x7F};
  REQUIRE(wire::readFixedHeader(huge_suback, sizeof huge_suback, h) ==
          wire::HeaderStatus::kComplete);
  CHECK(h.remaining == 268'435'455);
  CHECK(h.size == 5);
  CHECK(wire::checkHeader(h, 3) == wire::Violation::kTooLarge);
  const uint8_t incomplete[] = {0x30, 0xFF, 0xFF, 0xFF};
  CHECK(wire::readFixedHeader(incomplete, sizeof incomplete, h) ==
        wire::HeaderStatus::kIncomplete);
  const uint8_t pubrel[] = {0x62, 0x02};
  REQUIRE(wire::readFixedHeader(pubrel, 2, h) == wire::HeaderStatus::kComplete);
  CHECK(wire::checkHeader(h, 1) == wire::Violation::kNone);
  const uint8_t big_publish[] = {0x32, 0xFF, 0xFF, 0xFF, 0x7F};
  REQUIRE(wire::readFixedHeader(big_publish, 5, h) == wire::HeaderStatus::kComplete);
  CHECK(wire::checkHeader(h, 1) == wire::Violation::kNone);  // skipped, not refused
  CHECK(std::string(wire::label(wire::Violation::kPublishQos3)) == "publish_qos3");
}
