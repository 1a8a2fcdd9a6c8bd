#include <cmath>
#include <string>

#include <catch2/catch.hpp>

#include "drivers/profiles/mqtt_decoder.h"
#include "gateway/config/config.h"
#include "tests/support/test_support.h"

using hgj::drivers::profiles::DropReason;
using hgj::drivers::profiles::MqttDecoder;

namespace {

const hgj::config::GatewayConfig& example() {
  static hgj::config::GatewayConfig cfg = [] {
    hgj::core::Diagnostics diag;
    auto c = hgj::config::loadConfig(hgj::test::sourcePath("conf/gateway.yaml"), {}, diag);
    if (!diag.ok()) {
      throw std::runtime_error(diag.format());
    }
    return c;
  }();
  return cfg;
}

struct Fixture {
  const hgj::model::Compound& c = *example().compound;
  MqttDecoder dec{c, 64 * 1024, 256};
  std::vector<hgj::model::Reading> out;

  MqttDecoder::Result decode(const std::string& topic, const std::string& payload) {
    out.clear();
    return dec.decode(topic, payload, 1'800'000'000'000, out);
  }
  const hgj::model::Reading* find(const std::string& point) {
    auto id = c.pointId(point);
    for (const auto& r : out) {
      if (id && r.point == *id) {
        return &r;
      }
    }
    return nullptr;
  }
};

} // namespace

TEST_CASE("mqtt decode: a parking sensor state becomes one occupied reading", "[ingest]") {
  Fixture f;
  auto r = f.decode("compound/parking/P-B1-0042/state", R"({"occupied":true,"ts":1764252000000})");
  REQUIRE(r.drop == DropReason::None);
  REQUIRE(f.out.size() == 1);
  CHECK(f.c.devices[f.out[0].device].id == "P-B1-0042");
  CHECK(std::get<bool>(f.out[0].value) == true);
  CHECK(f.out[0].source_ms == 1764252000000);
  CHECK(f.out[0].ingest_ms == 1'800'000'000'000);
}

TEST_CASE("mqtt decode: an e-bike port report maps to its child device S03/P07", "[ingest]") {
  Fixture f;
  auto r = f.decode("compound/ebike/S03/P07/telemetry",
                    R"({"current_a":1.8,"power_w":400,"temp_c":35.2,"ts":1764252000000})");
  REQUIRE(r.drop == DropReason::None);
  REQUIRE(f.out.size() == 3);
  CHECK(f.c.devices[f.out[0].device].id == "S03/P07");
  CHECK(std::get<double>(f.find("temp_c")->value) == Approx(35.2));
  CHECK(f.find("relay") == nullptr);  // optional field absent
}

TEST_CASE("mqtt decode: shed status and EV pile status, with the OCPP state mapping",
          "[ingest]") {
  Fixture f;
  REQUIRE(f.decode("compound/ebike/S03/status", R"({"smoke":false,"temp_c":24.0,"ts":1})").drop ==
          DropReason::None);
  CHECK(f.c.devices[f.out[0].device].id == "S03");
  REQUIRE(f.decode("compound/ev/EV-01/status",
                   R"({"state":"charging","power_kw":6.8,"energy_kwh":12.3,"ts":1764252000000})")
              .drop == DropReason::None);
  CHECK(std::get<std::string>(f.find("state")->value) == "Charging");
  CHECK(std::get<double>(f.find("power_kw")->value) == Approx(6.8));
}

TEST_CASE("mqtt decode: a ChirpStack v4 uplink finds the device by devEui", "[ingest]") {
  Fixture f;
  std::string up = R"({"deduplicationId":"x","time":"2022-07-18T09:34:15.775Z",
    "deviceInfo":{"tenantId":"t","applicationId":"a","deviceName":"g3","devEui":"A840410001810003","tags":{}},
    "devAddr":"00","fPort":1,"data":"AQ==","object":{"occupied":true,"battery_v":3.6},
    "rxInfo":[{"rssi":-36,"snr":10.5}]})";
  auto r = f.decode("application/1/device/a840410001810003/event/up", up);
  REQUIRE(r.drop == DropReason::None);
  CHECK(f.c.devices[r.device].id == "P-G-0003");
  CHECK(std::get<bool>(f.find("occupied")->value));
  CHECK(f.out[0].source_ms == 1658136855775);
}

TEST_CASE("mqtt decode: a ChirpStack uplink cannot claim another sensor's devEui", "[ingest]") {
  Fixture f;
  auto r = f.decode("application/1/device/a840410001810003/event/up",
                    R"({"deviceInfo":{"devEui":"a840410001810004"},"object":{"occupied":true}})");
  CHECK(r.drop == DropReason::WrongDevice);
  CHECK(f.out.empty());
}

TEST_CASE("mqtt decode: bad input is classified and produces nothing", "[ingest]") {
  Fixture f;
  CHECK(f.decode("compound/parking/P-B1-0001/state", "not json").drop == DropReason::Malformed);
  CHECK(f.decode("compound/parking/P-B1-0001/state", "[1,2]").drop == DropReason::Malformed);
  CHECK(f.decode("compound/parking/P-B1-0001/state", R"({"occupied":NaN})").drop ==
        DropReason::Malformed);
  CHECK(f.decode("compound/parking/P-B1-0001/state", R"({"occupied":"yes"})").drop ==
        DropReason::WrongType);
  CHECK(f.decode("compound/parking/P-B1-0001/state", R"({"occupied":{"a":1}})").drop ==
        DropReason::WrongType);
  CHECK(f.decode("compound/parking/P-B1-0001/state", R"({"other":1})").drop ==
        DropReason::Empty);
  CHECK(f.decode("compound/parking/P-B9-0001/state", R"({"occupied":true})").drop ==
        DropReason::UnknownDevice);
  CHECK(f.decode("compound/unknown/thing", R"({"occupied":true})").drop ==
        DropReason::UnknownTopic);
  CHECK(f.out.empty());
}

TEST_CASE("mqtt decode: huge numbers, a 1 MB payload and a very long topic are dropped",
          "[ingest]") {
  Fixture f;
  CHECK(f.decode("compound/ebike/S01/P01/telemetry", R"({"temp_c":1e400})").drop ==
        DropReason::Malformed);
  std::string big(1024 * 1024, ' ');
  big[0] = '{';
  big[big.size() - 1] = '}';
  CHECK(f.decode("compound/parking/P-B1-0001/state", big).drop == DropReason::Oversized);
  std::string topic = "compound/parking/" + std::string(1000, 'x') + "/state";
  CHECK(f.decode(topic, R"({"occupied":true})").drop == DropReason::TopicTooLong);
}

TEST_CASE("mqtt decode: one bad field is dropped alone, the others kept", "[ingest]") {
  Fixture f;
  auto r = f.decode("compound/ebike/S01/P01/telemetry",
                    R"({"current_a":"high","power_w":400,"temp_c":30})");
  CHECK(r.drop == DropReason::None);
  CHECK(r.bad_fields == 1);
  CHECK(f.out.size() == 2);
}

TEST_CASE("mqtt decode: a topic naming a device of another type is refused", "[ingest]") {
  Fixture f;
  // S03 exists, but it is a shed, not a parking sensor: a device cannot report as another.
  CHECK(f.decode("compound/parking/S03/state", R"({"occupied":true})").drop ==
        DropReason::WrongDevice);
}

TEST_CASE("mqtt decode: implausible device clocks fall back to the ingest time", "[ingest]") {
  Fixture f;
  auto r = f.decode("compound/parking/P-B1-0001/state", R"({"occupied":true,"ts":1000})");
  CHECK(r.suspect_ts);
  CHECK(f.out[0].source_ms == 1'800'000'000'000);
  r = f.decode("compound/parking/P-B1-0001/state", R"({"occupied":true})");
  CHECK_FALSE(r.suspect_ts);
  CHECK(f.out[0].source_ms == 1'800'000'000'000);
}

TEST_CASE("mqtt decode: subscriptions cover every profile topic once", "[ingest]") {
  Fixture f;
  auto subs = f.dec.subscriptions();
  CHECK(std::find(subs.begin(), subs.end(), "compound/parking/+/state") != subs.end());
  CHECK(std::find(subs.begin(), subs.end(), "compound/ebike/+/+/telemetry") != subs.end());
  CHECK(std::find(subs.begin(), subs.end(), "application/+/device/+/event/up") != subs.end());
}
