// The batched MQTT client against a scripted hostile broker (docs/reliability.md row 25, issue
// #20): every malformed packet closes the connection (counted by reason) and the client reconnects;
// QoS 2 duplicates are delivered once; huge declared lengths and slow drips cost bounded memory,
// CPU and time. The byte-level cases (every field, every split) are in
// tests/unit/ingest/mqtt_session_test.cpp; these run the real client over loopback TCP.
#include <catch2/catch.hpp>

#include "tests/integration/ingest/ingest_rig.h"
#include "tests/support/scripted_broker.h"

using namespace std::chrono_literals;
using hgj::test::Bytes;
using hgj::test::ClientPacket;
using hgj::test::ScriptedBroker;
using hgj::test::ScriptedConn;
using hgj::test::waitFor;
using hgj::test::ingest::clientConfig;
using hgj::test::ingest::Rig;

namespace {

constexpr int kPuback = 4;
constexpr int kPubrec = 5;
constexpr int kPubcomp = 7;
constexpr int kSubscribe = 8;

const std::string kTopic = "compound/parking/P-B1-0001/state";

/// A broker whose first connection gets `hostile` after the handshake and a good message before
/// it; later connections only get the handshake (so a reconnect shows).
ScriptedBroker::Script afterHandshake(std::vector<uint8_t> hostile) {
  return [hostile](ScriptedConn& c, int index) {
    if (!c.handshake()) {
      return;
    }
    if (index == 0) {
      c.send(Bytes::publish(kTopic, "before", 1, 1));
      c.expect(kPuback, 5s);
      c.send(hostile);
    }
  };
}

/// The client closed the first connection and came back; nothing but "before" was delivered.
void requireClosedAndReconnected(ScriptedBroker& broker, Rig& rig) {
  REQUIRE(waitFor([&] { return broker.ended(0); }, 15s));
  CHECK(broker.record(0)->closed_by_client);
  REQUIRE(waitFor([&] { return broker.accepted() >= 2 && rig.client->subscribed(); }, 15s));
  auto got = rig.sink.texts();
  REQUIRE(got.size() == 1);
  CHECK(got[0].second == "before");
}

} // namespace

TEST_CASE("hostile broker: a QoS 3 PUBLISH closes the connection and is not delivered "
          "(MQTT-3.3.1-4)",
          "[integration][ingest][mqtt][hostile]") {
  ScriptedBroker broker(afterHandshake(Bytes::packet(0x36, Bytes().str(kTopic).u16(5).raw("x"))));
  Rig rig(clientConfig(broker.url(), "gw-qos3"));
  requireClosedAndReconnected(broker, rig);
  CHECK(broker.record(0)->received.size() >= 3);  // CONNECT, SUBSCRIBE, PUBACK of "before"
  CHECK(rig.metric("hgj_mqtt_protocol_errors_total{reason=\"publish_qos3\"}") == 1);
}

TEST_CASE("hostile broker: a PUBREL without a packet id closes the connection and gets no "
          "PUBCOMP",
          "[integration][ingest][mqtt][hostile]") {
  ScriptedBroker broker(afterHandshake({0x62, 0x00}));
  Rig rig(clientConfig(broker.url(), "gw-pubrel0"));
  requireClosedAndReconnected(broker, rig);
  auto first = broker.record(0);
  CHECK(first->received.size() == 3);
  CHECK(first->of(kPubcomp).empty());
  CHECK(rig.metric("hgj_mqtt_protocol_errors_total{reason=\"bad_length\"}") == 1);
}

TEST_CASE("hostile broker: a QoS 1 PUBLISH with packet id 0 closes the connection, unacked and "
          "undelivered",
          "[integration][ingest][mqtt][hostile]") {
  ScriptedBroker broker(afterHandshake(Bytes::publish(kTopic, "id-zero", 1, 0)));
  Rig rig(clientConfig(broker.url(), "gw-id0"));
  requireClosedAndReconnected(broker, rig);
  auto acks = broker.record(0)->of(kPuback);
  REQUIRE(acks.size() == 1);  // only the ack of "before"
  CHECK(acks[0].id() == 1);
  CHECK(rig.metric("hgj_mqtt_protocol_errors_total{reason=\"packet_id_zero\"}") == 1);
}

TEST_CASE("hostile broker: wrong fixed-header flags close the connection",
          "[integration][ingest][mqtt][hostile]") {
  // PUBACK, PINGRESP and PUBREL with flags the spec fixes (MQTT-2.2.2-2).
  const std::vector<std::vector<uint8_t>> cases = {
      {0x41, 0x02, 0x00, 0x07}, {0xD8, 0x00}, {0x60, 0x02, 0x00, 0x07}};
  for (const auto& bad : cases) {
    DYNAMIC_SECTION("first byte " << static_cast<int>(bad[0])) {
      ScriptedBroker broker(afterHandshake(bad));
      Rig rig(clientConfig(broker.url(), "gw-flags"));
      requireClosedAndReconnected(broker, rig);
      CHECK(rig.metric("hgj_mqtt_protocol_errors_total{reason=\"bad_flags\"}") == 1);
    }
  }
}

TEST_CASE("hostile broker: a CONNACK with reserved bits set is refused",
          "[integration][ingest][mqtt][hostile]") {
  const std::vector<std::vector<uint8_t>> cases = {
      {0x20, 0x02, 0x02, 0x00},   // acknowledge flags bits 7-1 reserved (MQTT-3.2.2)
      {0x21, 0x02, 0x00, 0x00},   // fixed-header flags
      {0x20, 0x02, 0x01, 0x05}};  // session present with a refusal (MQTT-3.2.2-4)
  for (const auto& bad : cases) {
    DYNAMIC_SECTION("connack " << static_cast<int>(bad[0]) << " " << static_cast<int>(bad[2])
                               << " " << static_cast<int>(bad[3])) {
      ScriptedBroker broker([bad](ScriptedConn& c, int) {
        if (c.expect(1, 10s)) {
          c.send(bad);
        }
      });
      Rig rig(clientConfig(broker.url(), "gw-connack"));
      REQUIRE(waitFor([&] { return broker.ended(1); }, 15s));
      CHECK(broker.record(0)->closed_by_client);
      // The client never took it for a connection: no SUBSCRIBE on it.
      CHECK(broker.record(0)->received.size() == 1);
      CHECK_FALSE(rig.client->connected());
      CHECK(rig.metric("hgj_mqtt_protocol_errors_total{reason=\"bad_connack\"}") +
                rig.metric("hgj_mqtt_protocol_errors_total{reason=\"bad_flags\"}") >=
            2);
    }
  }
}

TEST_CASE("hostile broker: a QoS 2 message repeated with DUP is delivered once until its PUBREL "
          "(MQTT 4.3.3)",
          "[integration][ingest][mqtt][hostile]") {
  ScriptedBroker broker([](ScriptedConn& c, int index) {
    if (!c.handshake() || index != 0) {
      return;
    }
    c.send(Bytes::publish(kTopic, "q2-first", 2, 9));
    c.expect(kPubrec, 5s);
    c.send(Bytes::publish(kTopic, "q2-first", 2, 9, /*dup=*/true));
    c.expect(kPubrec, 5s);
    c.send(std::vector<uint8_t>{0x62, 0x02, 0x00, 0x09});
    c.expect(kPubcomp, 5s);
    // The id is free again: a new message with it is a new message.
    c.send(Bytes::publish(kTopic, "q2-second", 2, 9));
    c.expect(kPubrec, 5s);
    c.send(std::vector<uint8_t>{0x62, 0x02, 0x00, 0x09});
    c.expect(kPubcomp, 5s);
    c.send(Bytes::publish(kTopic, "end", 0, 0));
  });
  Rig rig(clientConfig(broker.url(), "gw-qos2"));
  REQUIRE(waitFor([&] { return rig.sink.count() >= 3; }, 15s));
  auto got = rig.sink.texts();
  REQUIRE(got.size() == 3);
  CHECK(got[0].second == "q2-first");
  CHECK(got[1].second == "q2-second");
  CHECK(got[2].second == "end");
  CHECK(broker.accepted() == 1);
}

TEST_CASE("hostile broker: a SUBACK declaring 256 MiB is refused at its fixed header",
          "[integration][ingest][mqtt][hostile]") {
  ScriptedBroker broker([](ScriptedConn& c, int index) {
    if (!c.expect(1, 10s)) {
      return;
    }
    c.send(std::vector<uint8_t>{0x20, 2, 0, 0});
    auto sub = c.expect(kSubscribe, 10s);
    if (!sub || index != 0) {
      if (sub) {
        c.send(std::vector<uint8_t>{0x90, 3, static_cast<uint8_t>(sub->id() >> 8),
                                    static_cast<uint8_t>(sub->id()), 1});
      }
      return;
    }
    c.send(Bytes().u8(0x90).varint(268'435'455).vec());
    c.stream(268'435'455);
  });
  Rig rig(clientConfig(broker.url(), "gw-suback"));
  REQUIRE(waitFor([&] { return broker.ended(0); }, 30s));
  CHECK(broker.record(0)->closed_by_client);
  // Closed at the header: what got through is what the socket buffers held, not the packet.
  CHECK(broker.record(0)->bytes_sent < 32u * 1024 * 1024);
  REQUIRE(waitFor([&] { return rig.client->subscribed(); }, 15s));
  CHECK(rig.metric("hgj_mqtt_protocol_errors_total{reason=\"too_large\"}") == 1);
}

TEST_CASE("hostile broker: a PUBLISH dripped one byte at a time is cut at the packet time limit, "
          "and health says degraded meanwhile",
          "[integration][ingest][mqtt][hostile]") {
  ScriptedBroker broker([](ScriptedConn& c, int index) {
    if (!c.handshake() || index != 0) {
      return;
    }
    // Declares 256 MiB, then one byte every 500 ms: forever, unless the client hangs up.
    c.send(Bytes().u8(0x32).varint(268'435'455).vec());
    std::vector<uint8_t> body(100'000, 'x');
    c.drip(body, 500ms);
  });
  auto cfg = clientConfig(broker.url(), "gw-drip");
  cfg.packet_timeout_ms = 4'000;
  Rig rig(cfg);
  REQUIRE(rig.subscribed());
  bool degraded = false;
  REQUIRE(waitFor(
      [&] {
        degraded = degraded || rig.client->health().rfind("degraded", 0) == 0;
        return broker.ended(0);
      },
      40s));
  CHECK(degraded);
  CHECK(broker.record(0)->closed_by_client);
  CHECK(rig.metric("hgj_mqtt_protocol_errors_total{reason=\"packet_timeout\"}") == 1);
}

TEST_CASE("hostile broker: a 256 MiB PUBLISH streamed at full speed is skipped at linear cost "
          "in bounded memory",
          "[integration][ingest][mqtt][hostile]") {
  constexpr uint64_t kDeclared = 268'435'455;
  std::atomic<bool> streamed{false};
  ScriptedBroker broker([&](ScriptedConn& c, int index) {
    if (!c.handshake() || index != 0) {
      return;
    }
    Bytes head;
    head.u8(0x32).varint(kDeclared).str(kTopic).u16(11);
    c.send(head.vec());
    if (c.stream(kDeclared - (head.vec().size() - 5))) {
      streamed = true;
      c.expect(kPuback, 10s);
      c.send(Bytes::publish(kTopic, "after", 1, 12));
    }
  });
  Rig rig(clientConfig(broker.url(), "gw-bigpub"));
  REQUIRE(rig.subscribed());
  const double rss_before = hgj::test::ingest::residentBytes();
  const double cpu_before = hgj::test::ingest::threadCpuSeconds("hgj-mqtt");
  REQUIRE(waitFor([&] { return rig.sink.count() == 1; }, 120s));
  const double cpu = hgj::test::ingest::threadCpuSeconds("hgj-mqtt") - cpu_before;
  const double rss_growth = hgj::test::ingest::residentBytes() - rss_before;
  INFO("client thread CPU " << cpu << " s, RSS growth " << rss_growth / 1048576 << " MiB");
  CHECK(streamed);
  CHECK(rig.sink.texts()[0].second == "after");
  CHECK(rig.metric("hgj_readings_dropped_total{reason=\"oversized\"}") == 1);
  CHECK(broker.accepted() == 1);
  // Memory: one receive buffer, not the packet. CPU: one pass over 256 MiB of socket reads (a
  // fraction of a second; quadratic buffering took 100 s for 16 MiB). CPU time, not wall time,
  // so a loaded machine does not make it flaky.
  CHECK(rss_growth < 16.0 * 1024 * 1024);
  CHECK(cpu < 10.0);
}

TEST_CASE("hostile broker: a 256 MiB packet dripped a byte at a time costs no memory or CPU and "
          "is cut at the packet time limit",
          "[integration][ingest][mqtt][hostile]") {
  std::atomic<int64_t> header_sent_ms{0};
  ScriptedBroker broker([&](ScriptedConn& c, int index) {
    if (!c.handshake() || index != 0) {
      return;
    }
    c.send(Bytes().u8(0x30).varint(268'435'455).vec());
    header_sent_ms = hgj::core::Heartbeat::nowMs();
    c.drip(std::vector<uint8_t>(1'000'000, 'x'), 100ms);
  });
  auto cfg = clientConfig(broker.url(), "gw-drip256");
  cfg.packet_timeout_ms = 2'000;
  Rig rig(cfg);
  REQUIRE(rig.subscribed());
  const double rss_before = hgj::test::ingest::residentBytes();
  const double cpu_before = hgj::test::ingest::threadCpuSeconds("hgj-mqtt");
  REQUIRE(waitFor([&] { return broker.ended(0); }, 30s));
  const int64_t took = hgj::core::Heartbeat::nowMs() - header_sent_ms;
  const double cpu = hgj::test::ingest::threadCpuSeconds("hgj-mqtt") - cpu_before;
  INFO("cut after " << took << " ms; client thread CPU " << cpu << " s");
  CHECK(broker.record(0)->closed_by_client);
  CHECK(rig.metric("hgj_mqtt_protocol_errors_total{reason=\"packet_timeout\"}") == 1);
  // The limit is 2 s; the thread checks it at least every 500 ms. The upper bound is generous
  // for a loaded machine; without the limit the session never ends.
  CHECK(took >= 2'000);
  CHECK(took < 12'000);
  CHECK(cpu < 1.0);
  CHECK(hgj::test::ingest::residentBytes() - rss_before < 4.0 * 1024 * 1024);
  REQUIRE(waitFor([&] { return broker.accepted() >= 2 && rig.client->subscribed(); }, 15s));
}

TEST_CASE("hostile broker: after a dropped connection and a refused reconnect, the client "
          "still connects with MQTT 3.1.1, never the library's own fallback to MQTT 3.1",
          "[integration][ingest][mqtt][hostile]") {
  // Paho C left at its default protocol version answers a failed 3.1.1 connect by queueing a
  // 3.1 CONNECT of its own behind ours: two connects race (ours fails with -18, "connect
  // ignored"), a failure callback can land on a connect token the C++ layer has already
  // dropped (a leaked error string under ASan, 1 run in 10 of the broker-restart test), and the
  // session comes back as MQTT 3.1. Both clients must speak MQTT 3.1.1 only.
  const std::string client = GENERATE(as<std::string>{}, "batched", "paho");
  INFO("mqtt.client=" << client);
  std::mutex mu;
  std::vector<std::string> connects;  // "<protocol name>/<level>" of every CONNECT, in order
  auto protocolOf = [](const ClientPacket& con) {
    const auto& b = con.body;
    if (b.size() < 2) {
      return std::string("?");
    }
    const size_t len = static_cast<size_t>((b[0] << 8) | b[1]);
    if (b.size() < 3 + len) {
      return std::string("?");
    }
    return std::string(b.begin() + 2, b.begin() + 2 + static_cast<long>(len)) + "/" +
           std::to_string(b[2 + len]);
  };
  ScriptedBroker broker([&](ScriptedConn& c, int index) {
    if (index == 1) {
      // The broker is still restarting: it takes the CONNECT and hangs up without a CONNACK.
      if (auto con = c.expect(1, 10s)) {
        std::lock_guard lock(mu);
        connects.push_back(protocolOf(*con));
      }
      ::shutdown(c.fd(), SHUT_RDWR);
      return;
    }
    const bool up = c.handshake();
    for (const auto& con : c.received(1)) {
      std::lock_guard lock(mu);
      connects.push_back(protocolOf(con));
    }
    if (up && index == 0) {
      ::shutdown(c.fd(), SHUT_RDWR);  // the broker drops the connection
    }
  });
  auto cfg = clientConfig(broker.url(), "gw-drop-" + client);
  cfg.client = client == "paho" ? hgj::drivers::mqtt::MqttClient::Paho
                                : hgj::drivers::mqtt::MqttClient::Batched;
  Rig rig(cfg, {"compound/#"});
  REQUIRE(waitFor(
      [&] {
        std::lock_guard lock(mu);
        return connects.size() >= 3 && rig.client->connected();
      },
      20s));
  std::lock_guard lock(mu);
  for (const auto& c : connects) {
    CHECK(c == "MQTT/4");
  }
}
