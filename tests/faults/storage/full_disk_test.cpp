// docs/reliability.md rows 7 and 23: the database's filesystem fills up under the running
// daemon. The gateway keeps running and says so, a hazard still cuts the port and its alert
// still reaches upstream and the robots, and nothing it announced is lost once space returns.
#include <string>

#include <catch2/catch.hpp>
#include <signal.h>

#include "tests/faults/storage/storage_fixture.h"
#include "tests/support/fault_disk.h"

using namespace std::chrono_literals;
using hgj::test::queryInt;
using hgj::test::queryRows;
using hgj::test::waitFor;
using namespace hgj::test::storage;

namespace {

constexpr const char* kSite = "hgj-demo-001";

size_t countContaining(const std::vector<hgj::test::TestClient::Message>& msgs,
                       const std::string& topic_part, const std::string& text) {
  size_t n = 0;
  for (const auto& m : msgs) {
    n += m.topic.find(topic_part) != std::string::npos &&
                 m.payload.find(text) != std::string::npos
             ? 1
             : 0;
  }
  return n;
}

} // namespace

TEST_CASE("faults storage: with the disk full the daemon runs on, cuts a port on smoke, the alert "
          "reaches upstream and the robots, and everything it announced is written once space "
          "returns",
          "[faults][storage][row7][row23]") {
  if (std::string why = hgj::test::SmallDisk::unavailableReason(); !why.empty()) {
    WARN("skipped: " << why);
    return;
  }
  hgj::test::SmallDisk disk(16 << 20);
  hgj::test::TempDir dir;
  hgj::test::Broker local(false);
  hgj::test::Broker upstream(false);
  RobotServer robots;
  const std::string db = disk.file("hgj.db");

  hgj::test::TestClient up(upstream.url(), "full-disk-upstream");
  up.subscribe("hgj/" + std::string(kSite) + "/alerts");
  hgj::test::TestClient device(local.url(), "full-disk-devices");
  device.subscribe("compound/ebike/S05/+/set");

  auto gw = hgj::test::startGateway(
      local.url(), db, dir.file("gw.log"),
      {"uplink.enabled=true", "uplink.url=" + upstream.url(),
       "include.alerts=" + alertsFileFor(dir, robots.port())});
  for (int i = 0; i < 20; ++i) {
    device.publish("compound/ebike/S01/P01/telemetry", portReport(30 + i * 0.1));
  }
  REQUIRE(waitFor([&] {
    return queryInt(db, "SELECT count(*) FROM readings WHERE device='S01/P01' AND point='temp_c'") == 20;
  }));

  // Fill the disk to the last block. The store gives back its reserve file and deletes old
  // readings to make room, so the test takes that space again while it waits for the store to
  // report the full disk; the readings keep coming meanwhile, as they would on a real box.
  double failures_before = metric(*gw, "hgj_storage_commit_failures_total");
  disk.fill();
  int reading = 0;
  REQUIRE(waitFor(
      [&] {
        device.publish("compound/ebike/S01/P02/telemetry", portReport(30 + (reading++ % 10)));
        disk.fill();
        auto h = health(*gw);
        return metric(*gw, "hgj_storage_commit_failures_total") > failures_before &&
               h.is_object() && h["status"] == "degraded" &&
               h["storage"].get<std::string>().find("disk_full") != std::string::npos;
      },
      30s));
  disk.fill();
  INFO("health while full: " << health(*gw).dump());

  // Smoke in shed S05 while nothing can be written: every port is cut on the local broker,
  // the alert is on the upstream broker and at the robots (G3: WeCom and DingTalk).
  device.publish("compound/ebike/S05/status", R"({"smoke":true,"temp_c":41})");
  CHECK(waitFor([&] { return countContaining(device.messages(), "/set", "\"relay\":false") >= 10; },
                20s));
  CHECK(waitFor(
      [&] { return countContaining(up.messages(), "/alerts", "shed_smoke") >= 1; }, 20s));
  CHECK(waitFor([&] { return robots.count("S05") >= 1; }, 20s));
  INFO("durable records waiting: " << metric(*gw, "hgj_storage_durable_backlog"));
  CHECK(gw->running());
  // Writing in space that retention freed inside the file is not health: the disk is still full.
  CHECK(disk.freeBytes() < (1 << 20));
  auto h = health(*gw);
  CHECK(h["status"] == "degraded");
  CHECK(h["storage"].get<std::string>().rfind("disk_full", 0) == 0);

  // Space returns: the alert, its events, the actuation records and the latches are written,
  // the upstream messages PUBACKed meanwhile are deleted from the outbox, health is ok again.
  disk.release();
  CHECK(waitFor(
      [&] {
        return queryInt(db, "SELECT count(*) FROM alerts WHERE rule='shed_smoke' AND "
                            "device='S05' AND severity='critical'") == 1;
      },
      20s));
  CHECK(waitFor(
      [&] {
        return queryInt(db, "SELECT count(*) FROM latches WHERE device LIKE 'S05/P%'") == 10 &&
               queryInt(db, "SELECT count(DISTINCT device) FROM actuations WHERE device LIKE "
                            "'S05/P%' AND origin='rule:shed_smoke'") == 10;
      },
      20s));
  CHECK(waitFor(
      [&] {
        return queryInt(db, "SELECT count(*) FROM alerts WHERE rule='storage_disk_full'") == 1;
      },
      20s));
  CHECK(waitFor([&] { return metric(*gw, "hgj_storage_durable_backlog") == 0; }, 20s));
  CHECK(waitFor([&] { return queryInt(db, "SELECT count(*) FROM outbox") == 0; }, 20s));
  CHECK(waitFor(
      [&] {
        auto h = health(*gw);
        return h.is_object() && h["storage"] == "ok";
      },
      20s));
  // Every alert id that went upstream has its row.
  for (const auto& m : up.messages()) {
    auto j = nlohmann::json::parse(m.payload, nullptr, false);
    if (j.is_object() && j.contains("rule") && j["id"].is_number_integer()) {
      INFO(m.payload);
      CHECK(queryInt(db, "SELECT count(*) FROM alerts WHERE id=" +
                             std::to_string(j["id"].get<long long>())) == 1);
    }
  }
  // Readings are what a full disk may cost: only those retention deleted to make room.
  CHECK(queryInt(db, "SELECT count(*) FROM readings WHERE device='S01/P01' AND point='temp_c'") >=
        20 - static_cast<long long>(metric(*gw, "hgj_storage_retention_deleted_total")));
  gw->signal(SIGTERM);
  CHECK(gw->wait() == 0);
  CHECK(queryRows(db, "PRAGMA integrity_check") == std::vector<std::string>{"ok"});
}
