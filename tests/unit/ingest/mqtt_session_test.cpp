// The MQTT 3.1.1 client session without a socket (drivers/mqtt/mqtt_session.h): conformance of
// every packet type and field a broker sends, streams split at every byte, QoS 2 duplicates,
// acknowledgement after hand-over, huge declared lengths, slow drips and the timers, all on an
// injected clock (the `now` passed in).
#include <map>
#include <random>

#include <catch2/catch.hpp>

#include "drivers/mqtt/mqtt_session.h"
#include "tests/support/scripted_broker.h"

namespace wire = hgj::drivers::mqtt::wire;
using hgj::drivers::MqttMessage;
using hgj::drivers::mqtt::Session;
using hgj::drivers::mqtt::SessionObserver;
using hgj::drivers::mqtt::SessionOptions;
using hgj::test::Bytes;
using V = wire::Violation;
using Raw = std::vector<uint8_t>;

namespace {

constexpr int64_t kT0 = 1'000'000;
const std::string kTopic = "compound/parking/P-B1-0001/state";

struct Counts final : SessionObserver {
  std::vector<std::pair<std::string, size_t>> oversized;
  std::vector<uint16_t> duplicates;
  std::vector<std::vector<std::string>> subacks;
  void onOversized(std::string_view topic, size_t bytes) override {
    oversized.emplace_back(std::string(topic), bytes);
  }
  void onDuplicate(uint16_t id) override { duplicates.push_back(id); }
  void onSubscribed(const std::vector<std::string>& refused) override {
    subacks.push_back(refused);
  }
};

SessionOptions options() {
  SessionOptions o;
  o.client_id = "gw";
  o.keepalive_s = 30;
  o.subscriptions = {"compound/#", "application/+/device/+/event/up"};
  o.max_publish_bytes = 1024;
  o.packet_timeout_ms = 10'000;
  return o;
}

/// A session and what came out of it, every offered message taken at once.
struct Harness {
  Counts counts;
  Session s;
  std::vector<std::pair<std::string, std::string>> delivered;
  Raw output;  ///< everything the session wanted to send, in order

  explicit Harness(SessionOptions o = options()) : s(std::move(o), &counts) {}

  void drainOutput(int64_t now = kT0) {
    output.insert(output.end(), s.output(), s.output() + s.outputSize());
    s.sent(s.outputSize(), now);
  }
  void feed(const Raw& bytes, int64_t now = kT0) {
    s.feed(bytes.data(), bytes.size(), now);
    MqttMessage m;
    while (s.nextMessage(m, now, 42)) {
      delivered.emplace_back(std::string(m.topic), std::string(m.payload));
      s.messageTaken(now);
    }
    drainOutput(now);
  }
  /// CONNECT out, CONNACK in, SUBSCRIBE out, SUBACK in.
  void connect(bool session_present = false) {
    s.open(kT0);
    feed({0x20, 2, static_cast<uint8_t>(session_present ? 1 : 0), 0});
    REQUIRE(s.connected());
    feed({0x90, 4, 0, Session::kSubscribeId, 1, 1});
    REQUIRE(s.subscribed());
    output.clear();
  }
  /// The packets sent so far (lenient scan), as (type, packet id).
  std::vector<std::pair<int, uint16_t>> sentPackets() const {
    std::vector<std::pair<int, uint16_t>> out;
    wire::scanPackets(output.data(), output.size(), [&](const wire::Packet& p) {
      const int type = static_cast<int>(p.type());
      // Types 4 (PUBACK) to 11 (UNSUBACK) start with a packet id.
      out.emplace_back(type, type >= 4 && type <= 11 && p.body_len >= 2 ? p.packetId() : 0);
    });
    return out;
  }
};

Raw cat(std::initializer_list<Raw> parts) {
  Raw out;
  for (const auto& p : parts) {
    out.insert(out.end(), p.begin(), p.end());
  }
  return out;
}

Raw ack(uint8_t first, uint16_t id) {
  return {first, 2, static_cast<uint8_t>(id >> 8), static_cast<uint8_t>(id)};
}

/// A PUBLISH with a raw topic (any bytes).
Raw publishRawTopic(const std::string& topic, int qos, uint16_t id) {
  Bytes b;
  b.str(topic);
  if (qos > 0) {
    b.u16(id);
  }
  b.raw("p");
  return Bytes::packet(static_cast<uint8_t>(0x30 | (qos << 1)), b);
}

struct Case {
  std::string name;
  Raw bytes;
  V expected;
};

/// Malformed packets of every type and field, each arriving on a connected, subscribed session.
std::vector<Case> malformedCases() {
  return {
      // Fixed header.
      {"remaining length of 5 bytes", {0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}, V::kBadRemainingLength},
      {"reserved type 0", {0x00, 0x00}, V::kUnexpectedType},
      {"reserved type 15", {0xF0, 0x00}, V::kUnexpectedType},
      {"CONNECT from the broker", {0x10, 0x00}, V::kUnexpectedType},
      {"SUBSCRIBE from the broker", {0x82, 0x00}, V::kUnexpectedType},
      {"UNSUBSCRIBE from the broker", {0xA2, 0x00}, V::kUnexpectedType},
      {"PINGREQ from the broker", {0xC0, 0x00}, V::kUnexpectedType},
      {"DISCONNECT from the broker", {0xE0, 0x00}, V::kUnexpectedType},
      // CONNACK after the connection is up.
      {"second CONNACK", {0x20, 2, 0, 0}, V::kUnexpectedType},
      {"CONNACK flags", {0x21, 2, 0, 0}, V::kBadFlags},
      {"CONNACK too long", {0x20, 3, 0, 0, 0}, V::kTooLarge},
      {"CONNACK too short", {0x20, 1, 0}, V::kBadLength},
      // PUBLISH.
      {"PUBLISH QoS 3", Bytes::packet(0x36, Bytes().str(kTopic).u16(5).raw("x")), V::kPublishQos3},
      {"PUBLISH QoS 3 with DUP", Bytes::packet(0x3E, Bytes().str(kTopic).u16(5)), V::kPublishQos3},
      {"PUBLISH DUP at QoS 0", Bytes::packet(0x38, Bytes().str(kTopic).raw("x")), V::kBadFlags},
      {"PUBLISH without topic length", {0x30, 1, 0}, V::kBadLength},
      {"PUBLISH QoS 1 without packet id", Bytes::packet(0x32, Bytes().str("ab")), V::kBadLength},
      {"PUBLISH topic length past the packet", {0x30, 4, 0, 9, 't', 'x'}, V::kBadLength},
      {"PUBLISH empty topic", Bytes::packet(0x32, Bytes().str("").u16(4).raw("x")), V::kBadTopic},
      {"PUBLISH topic with +", publishRawTopic("compound/+/x", 1, 3), V::kBadTopic},
      {"PUBLISH topic with #", publishRawTopic("compound/#", 0, 0), V::kBadTopic},
      {"PUBLISH topic with U+0000", publishRawTopic(std::string("a\0b", 3), 1, 3), V::kBadTopic},
      {"PUBLISH topic overlong UTF-8", publishRawTopic("a\xC0\x80", 1, 3), V::kBadTopic},
      {"PUBLISH topic invalid byte", publishRawTopic("a\xFF", 1, 3), V::kBadTopic},
      {"PUBLISH topic surrogate", publishRawTopic("a\xED\xA0\x80", 1, 3), V::kBadTopic},
      {"PUBLISH topic truncated UTF-8", publishRawTopic("a\xE4\xB8", 1, 3), V::kBadTopic},
      {"PUBLISH QoS 1 packet id 0", Bytes::publish(kTopic, "x", 1, 0), V::kPacketIdZero},
      {"PUBLISH QoS 2 packet id 0", Bytes::publish(kTopic, "x", 2, 0), V::kPacketIdZero},
      {"oversized PUBLISH with packet id 0",
       Bytes().u8(0x32).varint(300'000).str(kTopic).u16(0).vec(), V::kPacketIdZero},
      {"oversized PUBLISH with a bad topic",
       Bytes().u8(0x30).varint(300'000).str("a/#").vec(), V::kBadTopic},
      // PUBACK (answers our commands).
      {"PUBACK flags", {0x42, 2, 0, 7}, V::kBadFlags},
      {"PUBACK too short", {0x40, 0}, V::kBadLength},
      {"PUBACK too long", {0x40, 3, 0, 7, 0}, V::kTooLarge},
      {"PUBACK packet id 0", ack(0x40, 0), V::kPacketIdZero},
      {"PUBACK declaring 256 MiB", Bytes().u8(0x40).varint(268'435'455).vec(), V::kTooLarge},
      // PUBREC and PUBCOMP answer QoS 2 publishes and PUBRELs the client never sends.
      {"PUBREC", ack(0x50, 7), V::kUnexpectedType},
      {"PUBREC flags", ack(0x52, 7), V::kBadFlags},
      {"PUBCOMP", ack(0x70, 7), V::kUnexpectedType},
      {"PUBCOMP too long", {0x70, 3, 0, 7, 0}, V::kTooLarge},
      // PUBREL.
      {"PUBREL flags 0", ack(0x60, 7), V::kBadFlags},
      {"PUBREL flags 3", ack(0x63, 7), V::kBadFlags},
      {"PUBREL without packet id", {0x62, 0}, V::kBadLength},
      {"PUBREL too long", {0x62, 3, 0, 7, 0}, V::kTooLarge},
      {"PUBREL packet id 0", ack(0x62, 0), V::kPacketIdZero},
      // SUBACK (only one is ever expected per connection).
      {"second SUBACK", {0x90, 4, 0, 1, 1, 1}, V::kUnexpectedType},
      {"SUBACK flags", {0x91, 4, 0, 1, 1, 1}, V::kBadFlags},
      {"SUBACK without codes", {0x90, 2, 0, 1}, V::kBadLength},
      {"SUBACK declaring 256 MiB", Bytes().u8(0x90).varint(268'435'455).vec(), V::kTooLarge},
      // UNSUBACK (the client never unsubscribes).
      {"UNSUBACK", ack(0xB0, 1), V::kUnexpectedType},
      {"UNSUBACK flags", ack(0xB1, 1), V::kBadFlags},
      {"UNSUBACK too long", {0xB0, 3, 0, 1, 0}, V::kTooLarge},
      // PINGRESP.
      {"PINGRESP flags", {0xD1, 0}, V::kBadFlags},
      {"PINGRESP with a body", {0xD0, 1, 0}, V::kTooLarge},
      {"PINGRESP declaring 256 MiB", Bytes().u8(0xD0).varint(268'435'455).vec(), V::kTooLarge},
  };
}

/// SUBACK cases: they arrive in place of the answer to our SUBSCRIBE.
std::vector<Case> subackCases() {
  return {
      {"SUBACK one code short", {0x90, 3, 0, 1, 1}, V::kBadSuback},
      {"SUBACK one code too many", {0x90, 5, 0, 1, 1, 1, 1}, V::kTooLarge},
      {"SUBACK code 3", {0x90, 4, 0, 1, 1, 3}, V::kBadSuback},
      {"SUBACK code 0x81", {0x90, 4, 0, 1, 0x81, 1}, V::kBadSuback},
      {"SUBACK wrong packet id", {0x90, 4, 0, 9, 1, 1}, V::kUnexpectedType},
      {"SUBACK packet id 0", {0x90, 4, 0, 0, 1, 1}, V::kPacketIdZero},
  };
}

/// CONNACK cases: they answer our CONNECT.
std::vector<Case> connackCases() {
  return {
      {"CONNACK reserved bit 1", {0x20, 2, 0x02, 0}, V::kBadConnack},
      {"CONNACK reserved bit 7", {0x20, 2, 0x80, 0}, V::kBadConnack},
      {"CONNACK return code 6", {0x20, 2, 0, 6}, V::kBadConnack},
      {"CONNACK session present with a refusal", {0x20, 2, 1, 5}, V::kBadConnack},
      {"CONNACK flags", {0x22, 2, 0, 0}, V::kBadFlags},
      {"CONNACK too long", {0x20, 3, 0, 0, 0}, V::kTooLarge},
      {"CONNACK declaring 256 MiB", Bytes().u8(0x20).varint(268'435'455).vec(), V::kTooLarge},
      {"PUBLISH before CONNACK", Bytes::publish(kTopic, "x", 0, 0), V::kUnexpectedType},
      {"SUBACK before CONNACK", {0x90, 3, 0, 1, 1}, V::kUnexpectedType},
  };
}

enum class Stage { kConnecting, kSubscribing, kSubscribed };

/// Feeds `c.bytes` (after "before", a good message) split in two at `cut`, and checks that the
/// session closed with the expected violation, delivered nothing of it and acked nothing of it.
void checkCase(const Case& c, Stage stage, size_t cut) {
  Harness h;
  h.s.open(kT0);
  if (stage != Stage::kConnecting) {
    h.feed({0x20, 2, 0, 0});
  }
  if (stage == Stage::kSubscribed) {
    h.feed({0x90, 4, 0, 1, 1, 1});
    h.feed(Bytes::publish(kTopic, "before", 1, 1));
  }
  h.drainOutput();
  h.output.clear();
  Raw first(c.bytes.begin(), c.bytes.begin() + static_cast<long>(cut));
  Raw rest(c.bytes.begin() + static_cast<long>(cut), c.bytes.end());
  h.feed(first);
  if (!h.s.closed()) {
    h.feed(rest);
  }
  INFO(c.name << ", split at " << cut);
  REQUIRE(h.s.closed());
  CHECK(h.s.violation() == c.expected);
  CHECK(h.delivered.size() == (stage == Stage::kSubscribed ? 1u : 0u));
  CHECK(h.output.empty());  // nothing acknowledged, no PUBCOMP, no SUBSCRIBE
  MqttMessage m;
  CHECK_FALSE(h.s.nextMessage(m, kT0, 0));
  CHECK(h.s.tick(kT0 + 1'000'000) == -1);
}

} // namespace

TEST_CASE("mqtt session: CONNECT, CONNACK, SUBSCRIBE and SUBACK in order", "[mqtt][session]") {
  Harness h;
  h.s.open(kT0);
  h.drainOutput();
  REQUIRE(h.sentPackets() == std::vector<std::pair<int, uint16_t>>{{1, 0}});
  CHECK(h.output[9] == 0x00);  // clean session off
  h.output.clear();
  h.feed({0x20, 2, 0, 0});
  CHECK(h.s.connected());
  CHECK_FALSE(h.s.subscribed());
  REQUIRE(h.sentPackets() == std::vector<std::pair<int, uint16_t>>{{8, Session::kSubscribeId}});
  h.feed({0x90, 4, 0, 1, 1, 0x80});
  CHECK(h.s.subscribed());
  REQUIRE(h.counts.subacks.size() == 1);
  CHECK(h.counts.subacks[0] == std::vector<std::string>{"application/+/device/+/event/up"});
}

TEST_CASE("mqtt session: a refused CONNACK closes without a violation", "[mqtt][session]") {
  Harness h;
  h.s.open(kT0);
  h.feed({0x20, 2, 0, 5});
  CHECK(h.s.closed());
  CHECK(h.s.refused());
  CHECK(h.s.violation() == V::kNone);
  CHECK(h.s.closeReason() == "connection refused: not authorized");
}

TEST_CASE("mqtt session: every malformed packet closes the session, split at every byte",
          "[mqtt][session][conformance]") {
  for (const auto& c : malformedCases()) {
    for (size_t cut = 0; cut <= c.bytes.size(); ++cut) {
      checkCase(c, Stage::kSubscribed, cut);
    }
  }
  for (const auto& c : subackCases()) {
    for (size_t cut = 0; cut <= c.bytes.size(); ++cut) {
      checkCase(c, Stage::kSubscribing, cut);
    }
  }
  for (const auto& c : connackCases()) {
    for (size_t cut = 0; cut <= c.bytes.size(); ++cut) {
      checkCase(c, Stage::kConnecting, cut);
    }
  }
}

TEST_CASE("mqtt session: a packet over its type's limit is refused at its fixed header",
          "[mqtt][session][conformance]") {
  // Only the header of a SUBACK declaring 256 MiB is needed to close: nothing of the body is
  // waited for or buffered.
  Harness h;
  h.s.open(kT0);
  h.feed({0x20, 2, 0, 0});
  h.feed(Bytes().u8(0x90).varint(268'435'455).vec());
  CHECK(h.s.closed());
  CHECK(h.s.violation() == V::kTooLarge);
  CHECK(h.s.bufferCapacity() <= 64 * 1024);
}

TEST_CASE("mqtt session: a valid stream gives the same messages and acks however it is split",
          "[mqtt][session]") {
  const Raw stream = cat({
      {0x20, 2, 0, 0},
      {0x90, 4, 0, 1, 1, 1},
      Bytes::publish(kTopic, R"({"occupied":true})", 0, 0),
      Bytes::publish("compound/ebike/S03/P07/telemetry", std::string(300, 'x'), 1, 7),
      Bytes::publish("日本/温度", "utf-8 topic", 1, 8, false, true),
      Bytes::publish(kTopic, "q2", 2, 9),
      Bytes::publish(kTopic, "q2", 2, 9, true),  // its PUBREC was lost: a resend
      ack(0x62, 9),
      {0xD0, 0},
      ack(0x40, 2),  // a PUBACK of one of our commands
      Bytes::publish(kTopic, std::string(2000, 'o'), 1, 10),  // over max_publish_bytes
      Bytes::publish(kTopic, "", 1, 11),
  });
  Harness whole;
  whole.s.open(kT0);
  whole.feed(stream);
  REQUIRE_FALSE(whole.s.closed());
  const std::vector<std::pair<std::string, std::string>> expected_msgs = {
      {kTopic, R"({"occupied":true})"},
      {"compound/ebike/S03/P07/telemetry", std::string(300, 'x')},
      {"日本/温度", "utf-8 topic"},
      {kTopic, "q2"},
      {kTopic, ""}};
  REQUIRE(whole.delivered == expected_msgs);
  const std::vector<std::pair<int, uint16_t>> expected_out = {
      {1, 0}, {8, 1}, {4, 7}, {4, 8}, {5, 9}, {5, 9}, {7, 9}, {4, 10}, {4, 11}};
  REQUIRE(whole.sentPackets() == expected_out);
  CHECK(whole.counts.duplicates == std::vector<uint16_t>{9});
  REQUIRE(whole.counts.oversized.size() == 1);

  auto check = [&](Harness& h, const std::string& how) {
    INFO(how);
    REQUIRE_FALSE(h.s.closed());
    CHECK(h.delivered == expected_msgs);
    CHECK(h.sentPackets() == expected_out);
  };
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    Harness h;
    h.s.open(kT0);
    h.feed(Raw(stream.begin(), stream.begin() + static_cast<long>(cut)));
    h.feed(Raw(stream.begin() + static_cast<long>(cut), stream.end()));
    check(h, "split at " + std::to_string(cut));
  }
  Harness drip;
  drip.s.open(kT0);
  for (uint8_t b : stream) {
    drip.feed({b});
  }
  check(drip, "one byte at a time");
  std::mt19937 rng(7);
  for (int round = 0; round < 50; ++round) {
    Harness h;
    h.s.open(kT0);
    for (size_t at = 0; at < stream.size();) {
      size_t n = std::min<size_t>(stream.size() - at, 1 + rng() % 700);
      h.feed(Raw(stream.begin() + static_cast<long>(at),
                 stream.begin() + static_cast<long>(at + n)));
      at += n;
    }
    check(h, "random chunks, round " + std::to_string(round));
  }
}

TEST_CASE("mqtt session: a QoS 2 message is delivered once until its PUBREL, across reconnects",
          "[mqtt][session]") {
  Harness h;
  h.connect();
  h.feed(Bytes::publish(kTopic, "a", 2, 5));
  h.feed(Bytes::publish(kTopic, "a", 2, 5, true));
  CHECK(h.delivered.size() == 1);
  CHECK(h.s.pendingQos2() == 1);
  // The connection drops before the PUBREL; the broker kept the session and resends.
  h.connect(/*session_present=*/true);
  h.feed(Bytes::publish(kTopic, "a", 2, 5, true));
  CHECK(h.delivered.size() == 1);
  CHECK(h.sentPackets() == std::vector<std::pair<int, uint16_t>>{{5, 5}});
  h.feed(ack(0x62, 5));
  CHECK(h.s.pendingQos2() == 0);
  h.feed(Bytes::publish(kTopic, "b", 2, 5));  // the id is free again: a new message
  CHECK(h.delivered.size() == 2);
  // A broker that lost the session sends no PUBREL: the ids are forgotten.
  h.connect(/*session_present=*/false);
  CHECK(h.s.pendingQos2() == 0);
  h.feed(Bytes::publish(kTopic, "b", 2, 5));
  CHECK(h.delivered.size() == 3);
}

TEST_CASE("mqtt session: a message is acknowledged only once the sink took it",
          "[mqtt][session]") {
  Harness h;
  h.connect();
  const Raw two = cat({Bytes::publish(kTopic, "1", 1, 1), Bytes::publish(kTopic, "2", 2, 2)});
  h.s.feed(two.data(), two.size(), kT0);
  MqttMessage m;
  REQUIRE(h.s.nextMessage(m, kT0, 0));
  CHECK(m.payload == "1");
  CHECK(h.s.outputSize() == 0);
  MqttMessage again;
  CHECK_FALSE(h.s.nextMessage(again, kT0, 0));  // one at a time
  h.s.messageTaken(kT0);
  h.drainOutput();
  CHECK(h.sentPackets() == std::vector<std::pair<int, uint16_t>>{{4, 1}});
  REQUIRE(h.s.nextMessage(m, kT0, 0));
  CHECK(m.payload == "2");
  h.drainOutput();
  CHECK(h.sentPackets().size() == 1);
  h.s.messageTaken(kT0);
  h.drainOutput();
  CHECK(h.sentPackets().back() == std::pair<int, uint16_t>{5, 2});
}

TEST_CASE("mqtt session: a PUBLISH declaring 256 MiB is acked at its head and skipped in "
          "bounded memory",
          "[mqtt][session]") {
  Harness h;
  h.connect();
  constexpr size_t kDeclared = 268'435'455;
  Raw head = Bytes().u8(0x32).varint(kDeclared).str(kTopic).u16(77).vec();
  h.feed(head);
  CHECK(h.sentPackets() == std::vector<std::pair<int, uint16_t>>{{4, 77}});
  REQUIRE(h.counts.oversized.size() == 1);
  CHECK(h.counts.oversized[0].second == kDeclared + 5);
  size_t left = kDeclared - (head.size() - 5);
  const Raw chunk(64 * 1024, 'z');
  size_t max_cap = 0;
  int64_t now = kT0;
  while (left > 0) {
    size_t n = std::min(left, chunk.size());
    h.s.feed(chunk.data(), n, now);
    MqttMessage m;
    REQUIRE_FALSE(h.s.nextMessage(m, now, 0));
    max_cap = std::max(max_cap, h.s.bufferCapacity());
    if (n < left) {
      CHECK(h.s.stuckReceived() == kDeclared + 5 - left + n);
      CHECK(h.s.stuckDeclared() == kDeclared + 5);
    }
    left -= n;
  }
  CHECK(max_cap <= 128 * 1024);
  h.feed(Bytes::publish(kTopic, "after", 1, 78));
  REQUIRE(h.delivered.size() == 1);
  CHECK(h.delivered[0].second == "after");
  CHECK_FALSE(h.s.closed());
}

TEST_CASE("mqtt session: a packet dripped a byte at a time is cut at the packet timeout",
          "[mqtt][session]") {
  Harness h;
  h.connect();
  int64_t now = kT0;
  h.feed(Bytes().u8(0x30).varint(100'000).vec(), now);
  for (int i = 0; i < 4; ++i) {
    now += 2'000;
    h.feed({'x'}, now);  // a byte every 2 s does not restart the clock
    CHECK(h.s.tick(now) == kT0 + 10'000);
    CHECK(h.s.stuckMs(now) == now - kT0);
  }
  CHECK(h.s.stuckDeclared() == 100'000 + 4);
  CHECK_FALSE(h.s.closed());
  h.s.tick(kT0 + 9'999);
  CHECK_FALSE(h.s.closed());
  h.s.tick(kT0 + 10'000);
  CHECK(h.s.closed());
  CHECK(h.s.violation() == V::kPacketTimeout);
}

TEST_CASE("mqtt session: a whole packet resets the packet clock, idle is not stuck",
          "[mqtt][session]") {
  Harness h;
  h.connect();
  Raw p = Bytes::publish(kTopic, "slow but whole", 1, 3);
  h.feed(Raw(p.begin(), p.begin() + 5), kT0);
  h.feed(Raw(p.begin() + 5, p.end()), kT0 + 9'000);
  CHECK(h.delivered.size() == 1);
  CHECK(h.s.stuckMs(kT0 + 9'000) == 0);
  h.s.tick(kT0 + 60'000);
  CHECK_FALSE(h.s.closed());
}

TEST_CASE("mqtt session: time waiting for a full sink does not count against the broker",
          "[mqtt][session]") {
  Harness h;
  h.connect();
  const Raw held = Bytes::publish(kTopic, "held", 1, 4);
  h.s.feed(held.data(), held.size(), kT0);
  MqttMessage m;
  REQUIRE(h.s.nextMessage(m, kT0, 0));
  // Two minutes with the pipeline full: PINGREQs go out, but nothing times out.
  for (int64_t t = kT0; t <= kT0 + 120'000; t += 500) {
    h.s.tick(t);
    h.drainOutput(t);
    REQUIRE_FALSE(h.s.closed());
  }
  h.s.messageTaken(kT0 + 120'000);
  h.s.tick(kT0 + 120'000);
  CHECK_FALSE(h.s.closed());
  auto sent = h.sentPackets();
  CHECK(std::count(sent.begin(), sent.end(), std::pair<int, uint16_t>{12, 0}) == 1);
}

TEST_CASE("mqtt session: keepalive pings and a broker that stops answering",
          "[mqtt][session]") {
  Harness h;
  h.connect();
  h.s.sent(0, kT0);
  CHECK(h.s.tick(kT0) == kT0 + 22'500);
  h.s.tick(kT0 + 22'500);
  h.drainOutput(kT0 + 22'500);
  REQUIRE(h.sentPackets() == std::vector<std::pair<int, uint16_t>>{{12, 0}});
  h.feed({0xD0, 0}, kT0 + 23'000);  // PINGRESP
  h.s.tick(kT0 + 60'000);
  h.drainOutput(kT0 + 60'000);
  CHECK(h.sentPackets().size() == 2);
  h.s.tick(kT0 + 89'999);
  CHECK_FALSE(h.s.closed());
  h.s.tick(kT0 + 90'000);
  CHECK(h.s.closed());
  CHECK(h.s.violation() == V::kNone);
  CHECK(h.s.closeReason() == "no answer to PINGREQ within the keepalive");
}

TEST_CASE("mqtt session: no CONNACK, or a socket that takes nothing, ends the connection",
          "[mqtt][session]") {
  Harness a;
  a.s.open(kT0);
  a.s.tick(kT0 + 9'999);
  CHECK_FALSE(a.s.closed());
  a.s.tick(kT0 + 10'000);
  CHECK(a.s.closed());
  CHECK(a.s.closeReason() == "no CONNACK within 10 s");
  Harness b;
  b.connect();
  b.s.publish("compound/ebike/S03/P07/set", R"({"relay":false})");
  b.s.tick(kT0 + 9'999);
  CHECK_FALSE(b.s.closed());
  b.s.tick(kT0 + 10'000);
  CHECK(b.s.closed());
  CHECK(b.s.closeReason() == "the broker took no bytes for 10 s");
}

TEST_CASE("mqtt session: commands get packet ids 2..65535 and are not resent after a reconnect",
          "[mqtt][session]") {
  Harness h;
  CHECK(h.s.publish("t", "before connect") == 0);
  h.connect();
  std::map<uint16_t, int> seen;
  uint16_t last = 0;
  for (int i = 0; i < 70'000; ++i) {
    last = h.s.publish("t", "x");
    h.s.sent(h.s.outputSize(), kT0);
    ++seen[last];
  }
  CHECK(seen.count(0) == 0);
  CHECK(seen.count(1) == 0);
  CHECK(seen.size() == 65534);
  h.s.publish("compound/ebike/S03/P07/set", R"({"relay":true})");
  h.connect(true);
  h.drainOutput();
  CHECK(h.sentPackets().empty());
  CHECK(last != 0);
}
