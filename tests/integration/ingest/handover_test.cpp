// The driver contract of drivers/driver.h for both MQTT clients (issue #13): write() and
// refresh() only queue to the client's own thread and return, whatever the broker does; a
// write that cannot be sent comes back as a failed WriteResult through the sink.
#include <thread>

#include <catch2/catch.hpp>

#include "tests/integration/ingest/ingest_rig.h"
#include "tests/support/scripted_broker.h"

using namespace std::chrono_literals;
using hgj::test::ScriptedBroker;
using hgj::test::ScriptedConn;
using hgj::test::waitFor;
using hgj::test::ingest::clientConfig;
using hgj::test::ingest::exampleConfig;
using hgj::test::ingest::Rig;

TEST_CASE("mqtt hand-over: a broker that stops reading never blocks the caller of write()",
          "[integration][ingest][mqtt]") {
  const std::string client = GENERATE(as<std::string>{}, "batched", "paho");
  INFO("mqtt.client=" << client);
  std::atomic<bool> resume{false};
  // Answers the handshake, then stops reading its socket (a wedged broker process): the
  // client's socket buffer fills and stays full.
  ScriptedBroker broker(
      [&](ScriptedConn& c, int index) {
        if (c.handshake() && index == 0) {
          waitFor([&] { return resume.load(); }, 120s);
        }
      },
      4096);
  auto cfg = clientConfig(broker.url(), "gw-stall-" + client);
  cfg.client = client == "paho" ? hgj::drivers::mqtt::MqttClient::Paho
                                : hgj::drivers::mqtt::MqttClient::Batched;
  Rig rig(cfg);
  REQUIRE(rig.subscribed());
  const auto& compound = *exampleConfig().compound;
  hgj::drivers::WriteRequest req;
  req.device = compound.deviceIndex("S03/P07");
  req.point = *compound.pointId("relay");
  req.value = false;
  req.origin = "test";
  // The pipeline thread's part: many commands, each call timed. Enough bytes to fill the
  // socket buffers many times over (each command is about 60 bytes).
  constexpr int kWrites = 100'000;
  std::atomic<bool> done{false};
  int64_t slowest_us = 0;
  std::thread pipeline([&] {
    for (int i = 0; i < kWrites; ++i) {
      req.id = static_cast<uint64_t>(i + 1);
      auto t0 = std::chrono::steady_clock::now();
      rig.client->write(req);
      auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                    std::chrono::steady_clock::now() - t0)
                    .count();
      slowest_us = std::max<int64_t>(slowest_us, us);
    }
    done = true;
  });
  const bool finished = waitFor([&] { return done.load(); }, 90s);
  resume = true;  // whatever happened, let the writer and the broker finish
  pipeline.join();
  REQUIRE(finished);
  INFO("slowest write() " << slowest_us << " us");
  // A generous bound for a call that only queues (microseconds); the old client sent from the
  // caller's thread and waited up to 10 s for the socket.
  CHECK(slowest_us < 1'000'000);
  // Still the first connection, never given up on by a timed-out send.
  CHECK(broker.accepted() == 1);
  CHECK(broker.closedByClient() == 0);
  // What could not be queued or sent was reported, not lost silently.
  CHECK_FALSE(rig.sink.failedWrites().empty());
}
