#include <catch2/catch.hpp>

#include <sqlite3.h>

#include "core/clock.h"
#include "core/metrics.h"
#include "gateway/uplink/uplink.h"
#include "tests/integration/uplink/uplink_common.h"

using namespace hgj;
using namespace hgj::uplink::testing;
using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

TEST_CASE("uplink latency: the next alert is published while the delete of the last one waits "
          "for the write lock",
          "[uplink][integration]") {
  Broker broker;
  Recorder rec(broker.url(), {"hgj/site1/alerts"});
  TempDir dir;
  World w;
  auto cfg = testConfig(broker.url());
  // One publish in flight: the second alert goes out only after the first one's PUBACK, which
  // is when the first row's delete is due.
  cfg.inflight = 1;
  const std::string db = dir.file("gw.db");
  uplink::Uplink up(cfg, "site1", db, w.read_model, w.sink, core::SystemClock::instance(),
                    w.metrics);
  for (int i = 1; i <= 2; ++i) {
    REQUIRE(up.enqueue(uplink::Kind::Alert, "alerts", json{{"id", i}, {"state", "raised"}}));
  }

  // Another connection holds the write lock, as the readings writer does until its commit tick:
  // the deletes after PUBACK wait for it, the publishes must not.
  sqlite3* other = nullptr;
  REQUIRE(sqlite3_open(db.c_str(), &other) == SQLITE_OK);
  REQUIRE(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
  up.start();
  REQUIRE(waitFor([&] { return up.connected(); }));
  // The busy timeout is 5 s: an uplink thread that deleted before publishing again would miss this.
  CHECK(waitFor([&] { return rec.on("hgj/site1/alerts").size() >= 2; }, milliseconds(2000)));
  CHECK(up.outboxStats().rows == 2);  // not deleted yet: the writer waits for the lock

  REQUIRE(sqlite3_exec(other, "COMMIT", nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(other);
  CHECK(waitFor([&] { return up.outboxStats().rows == 0; }, seconds(5)));
  CHECK(firstSeenField(rec, "hgj/site1/alerts", "id") == std::vector<int64_t>{1, 2});
  up.stop();
}

TEST_CASE("uplink latency: a staged alert is on the upstream broker before its transaction "
          "commits, and its row is deleted once that commit lands after the PUBACK",
          "[uplink][integration]") {
  Broker broker;
  Recorder rec(broker.url(), {"hgj/site1/alerts"});
  TempDir dir;
  World w;
  const std::string db = dir.file("gw.db");
  uplink::Uplink up(testConfig(broker.url()), "site1", db, w.read_model, w.sink,
                    core::SystemClock::instance(), w.metrics);
  up.start();
  REQUIRE(waitFor([&] { return up.connected(); }));
  // The alert path: the message is handed over, its row is the caller's to commit (here:
  // never, until the test says so).
  auto write = up.stage(uplink::Kind::Alert, "alerts", json{{"id", 7}, {"state", "raised"}});
  REQUIRE(write.has_value());
  REQUIRE(waitFor([&] { return rec.on("hgj/site1/alerts").size() == 1; }, seconds(10)));
  CHECK(firstSeenField(rec, "hgj/site1/alerts", "id") == std::vector<int64_t>{7});
  CHECK(queryInt(db, "SELECT COUNT(*) FROM outbox") == 0);
  REQUIRE(waitFor([&] { return up.outboxStats().rows == 0; }));  // PUBACKed

  storage::DirectSink sink(db);
  std::vector<storage::DurableWrite> ws;
  ws.push_back(std::move(*write));
  sink.submit(std::move(ws));
  // Committed after its PUBACK: the writer deletes it, nothing is sent twice.
  CHECK(waitFor([&] { return queryInt(db, "SELECT COUNT(*) FROM outbox") == 0; }, seconds(10)));
  CHECK(rec.on("hgj/site1/alerts").size() == 1);
  up.stop();
}

TEST_CASE("uplink latency: an alert staged while the link is up is published by the thread that "
          "stages it, in order with the rest, each once",
          "[uplink][integration]") {
  Broker broker;
  Recorder rec(broker.url(), {"hgj/site1/alerts"});
  TempDir dir;
  World w;
  const std::string db = dir.file("gw.db");
  uplink::Uplink up(testConfig(broker.url()), "site1", db, w.read_model, w.sink,
                    core::SystemClock::instance(), w.metrics);
  up.start();
  REQUIRE(waitFor([&] { return up.connected(); }));
  auto at_once = [&] { return w.metrics.value("hgj_uplink_published_at_once_total"); };
  CHECK(at_once() == 0);
  // One at a time, each after the last arrived: the uplink thread is mostly asleep, so the
  // staging thread finds the send lock free (when the uplink thread holds it for a turn, the
  // alert waits for that turn instead; either way it is sent once, in order).
  std::vector<storage::DurableWrite> writes;
  constexpr int kAlerts = 20;
  for (int i = 1; i <= kAlerts; ++i) {
    auto write = up.stage(uplink::Kind::Alert, "alerts", json{{"id", i}, {"state", "raised"}});
    REQUIRE(write.has_value());
    writes.push_back(std::move(*write));
    REQUIRE(waitFor([&] { return rec.on("hgj/site1/alerts").size() == static_cast<size_t>(i); },
                    seconds(10)));
  }
  CHECK(at_once() >= 1);
  CHECK(at_once() <= kAlerts);
  std::vector<int64_t> ids;
  for (int i = 1; i <= kAlerts; ++i) {
    ids.push_back(i);
  }
  CHECK(firstSeenField(rec, "hgj/site1/alerts", "id") == ids);
  storage::DirectSink sink(db);
  sink.submit(std::move(writes));
  CHECK(waitFor([&] { return queryInt(db, "SELECT COUNT(*) FROM outbox") == 0; }, seconds(10)));
  CHECK(rec.on("hgj/site1/alerts").size() == kAlerts);
  up.stop();
}
