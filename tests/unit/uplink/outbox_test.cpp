#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <thread>

#include <sqlite3.h>

#include "core/clock.h"
#include "core/metrics.h"
#include "gateway/uplink/outbox.h"
#include "tests/unit/uplink/uplink_fixtures.h"

using namespace hgj;
using uplink::Kind;
using uplink::Outbox;

namespace {

Outbox::Entry entry(Kind kind, std::string text) {
  return {kind, [kind, text](const std::string& msg_id, std::string& topic, std::string& payload) {
            topic = std::string("hgj/site1/") + uplink::kindName(kind);
            payload = "{\"msg_id\":\"" + msg_id + "\",\"text\":\"" + text + "\"}";
          }};
}

int64_t append1(Outbox& o, Kind kind, std::string text = "x") {
  std::vector<Outbox::Entry> e;
  e.push_back(entry(kind, std::move(text)));
  auto seqs = o.append(std::move(e));
  REQUIRE(seqs);
  return seqs->at(0);
}

} // namespace

TEST_CASE("outbox: msg_id is site:seq with seq = epoch * 2^32 + n, strictly increasing across "
          "reopen even when emptied, the epoch durable before the first message",
          "[uplink][outbox]") {
  uplink::testing::TempDir dir;
  core::ManualClock clock;
  core::MetricsRegistry metrics;
  const std::string db = dir.file("gw.db");
  constexpr int64_t kEpoch = int64_t{1} << 32;
  int64_t last = 0;
  {
    Outbox o(db, "site1", {}, clock, metrics);
    CHECK(o.epoch() == 1);
    // Made durable by the constructor, before any message exists.
    CHECK(uplink::testing::queryInt(db, "SELECT last_seq FROM outbox_sequence WHERE "
                                        "site='site1'") == kEpoch);
    for (int i = 0; i < 5; ++i) {
      int64_t seq = append1(o, Kind::Alert);
      CHECK(seq == kEpoch + i + 1);
      last = seq;
    }
    auto rows = o.fetchAfter(0, 100);
    REQUIRE(rows.size() == 5);
    CHECK(rows[0].msg_id == "site1:" + std::to_string(kEpoch + 1));
    CHECK(rows[4].payload.find("\"msg_id\":\"site1:" + std::to_string(kEpoch + 5) + "\"") !=
          std::string::npos);
    std::vector<int64_t> all;
    for (auto& r : rows) {
      all.push_back(r.seq);
    }
    REQUIRE(o.remove(all));
    CHECK(o.stats().rows == 0);
    CHECK(metrics.value("hgj_outbox_depth") == 0);
  }
  Outbox reopened(db, "site1", {}, clock, metrics);
  CHECK(reopened.epoch() == 2);
  int64_t next = append1(reopened, Kind::Summary);
  CHECK(next > last);
  CHECK(next == 2 * kEpoch + 1);
  CHECK(reopened.fetchAfter(0, 10).at(0).msg_id == "site1:" + std::to_string(2 * kEpoch + 1));
  // A boot that wrote nothing still takes its own epoch: a crash never reuses one.
  { Outbox idle(db, "site1", {}, clock, metrics); }
  Outbox third(db, "site1", {}, clock, metrics);
  CHECK(third.epoch() == 4);

  // The schema version and the layout are what docs/uplink.md says.
  sqlite3* h = nullptr;
  REQUIRE(sqlite3_open(db.c_str(), &h) == SQLITE_OK);
  sqlite3_stmt* s = nullptr;
  REQUIRE(sqlite3_prepare_v2(h,
                             "SELECT version FROM schema_versions WHERE component='uplink'",
                             -1, &s, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_step(s) == SQLITE_ROW);
  CHECK(sqlite3_column_int(s, 0) == 1);
  sqlite3_finalize(s);
  REQUIRE(sqlite3_prepare_v2(h, "SELECT seq, msg_id, kind, topic, payload, created_ms FROM outbox",
                             -1, &s, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_step(s) == SQLITE_ROW);
  CHECK(std::string(reinterpret_cast<const char*>(sqlite3_column_text(s, 2))) == "summary");
  CHECK(sqlite3_column_int64(s, 5) == clock.wallMs());
  sqlite3_finalize(s);
  sqlite3_close(h);
}

TEST_CASE("outbox: a staged message is fetched at once, before the caller's transaction commits "
          "it, acknowledged before that commit, its row is deleted right after",
          "[uplink][outbox]") {
  uplink::testing::TempDir dir;
  core::ManualClock clock;
  core::MetricsRegistry metrics;
  const std::string db = dir.file("gw.db");
  Outbox o(db, "site1", {}, clock, metrics);
  int wakes = 0;
  o.setWakeHandler([&] { ++wakes; });
  std::vector<Outbox::Entry> e;
  e.push_back(entry(Kind::Alert, "hot"));
  storage::DurableWrite w = o.stage(std::move(e));
  CHECK(wakes == 1);
  auto rows = o.fetchAfter(0, 10);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].kind == Kind::Alert);
  CHECK(o.stats().rows == 1);
  CHECK(o.stats().unwritten == 1);
  CHECK(uplink::testing::queryInt(db, "SELECT COUNT(*) FROM outbox") == 0);

  // The broker acknowledges before the alert's transaction commits.
  REQUIRE(o.remove({rows[0].seq}));
  CHECK(o.fetchAfter(0, 10).empty());
  CHECK(o.stats().rows == 0);

  storage::DirectSink sink(db);
  std::vector<storage::DurableWrite> ws;
  ws.push_back(std::move(w));
  sink.submit(std::move(ws));
  CHECK(uplink::testing::queryInt(db, "SELECT COUNT(*) FROM outbox") == 1);
  CHECK(o.fetchAfter(0, 10).empty());  // committed but acknowledged: never sent again
  REQUIRE(o.persist());
  CHECK(uplink::testing::queryInt(db, "SELECT COUNT(*) FROM outbox") == 0);
  CHECK(o.stats().unwritten == 0);
}

TEST_CASE("outbox: a message whose commit failed stays in memory, is still fetched, and is "
          "written once the database takes it",
          "[uplink][outbox]") {
  uplink::testing::TempDir dir;
  core::ManualClock clock;
  core::MetricsRegistry metrics;
  const std::string db = dir.file("gw.db");
  Outbox o(db, "site1", {}, clock, metrics);
  // Inserts fail (as on a full disk); reading still works.
  uplink::testing::exec(db, "CREATE TRIGGER outbox_refuse BEFORE INSERT ON outbox "
                            "BEGIN SELECT RAISE(FAIL, 'disk full'); END");
  std::vector<Outbox::Entry> e;
  e.push_back(entry(Kind::CmdResult, "answer"));
  CHECK_FALSE(o.append(std::move(e)).has_value());
  auto rows = o.fetchAfter(0, 10);
  REQUIRE(rows.size() == 1);
  CHECK(o.stats().unwritten == 1);
  CHECK_FALSE(o.persist());
  uplink::testing::exec(db, "DROP TRIGGER outbox_refuse");
  CHECK(o.persist());
  CHECK(o.stats().unwritten == 0);
  CHECK(uplink::testing::queryInt(db, "SELECT COUNT(*) FROM outbox WHERE kind='cmd_result'") ==
        1);
  CHECK(o.fetchAfter(0, 10).size() == 1);
}

TEST_CASE("outbox: when full, the oldest summaries go first, alerts are all kept and counted",
          "[uplink][outbox]") {
  uplink::testing::TempDir dir;
  core::ManualClock clock;
  core::MetricsRegistry metrics;
  Outbox o(dir.file("gw.db"), "site1", {100, 1 << 30}, clock, metrics);
  std::vector<std::pair<uplink::Kind, uint64_t>> notified;
  o.setDropHandler([&](Kind k, uint64_t total) { notified.emplace_back(k, total); });
  std::vector<int64_t> alerts;
  std::vector<int64_t> summaries;
  for (int i = 0; i < 330; ++i) {
    if (i % 11 == 0) {
      alerts.push_back(append1(o, Kind::Alert));
    } else {
      summaries.push_back(append1(o, Kind::Summary));
    }
  }
  REQUIRE(alerts.size() == 30);
  auto rows = o.fetchAfter(0, 1000);
  CHECK(rows.size() == 100);
  std::vector<int64_t> kept_summaries;
  size_t kept_alerts = 0;
  for (auto& r : rows) {
    if (r.kind == Kind::Alert) {
      ++kept_alerts;
    } else {
      kept_summaries.push_back(r.seq);
    }
  }
  CHECK(kept_alerts == 30);
  // The summaries kept are the newest 70.
  REQUIRE(kept_summaries.size() == 70);
  CHECK(kept_summaries.front() == summaries[summaries.size() - 70]);
  CHECK(kept_summaries.back() == summaries.back());
  CHECK(o.stats().dropped[0] == 230);
  CHECK(metrics.value("hgj_outbox_dropped_total", {{"kind", "summary"}}) == 230);
  CHECK(metrics.value("hgj_outbox_dropped_total", {{"kind", "alert"}}) == 0);
  CHECK(metrics.value("hgj_outbox_depth") == 100);
  REQUIRE_FALSE(notified.empty());
  CHECK(notified.back() == std::pair<Kind, uint64_t>{Kind::Summary, 230});

  // Full of alerts only: more alerts are still kept (over the cap), a summary is refused.
  Outbox::Limits tiny{10, 1 << 30};
  uplink::testing::TempDir dir2;
  Outbox full(dir2.file("gw.db"), "site1", tiny, clock, metrics);
  for (int i = 0; i < 12; ++i) {
    CHECK(append1(full, Kind::Alert) > 0);
  }
  CHECK(full.stats().rows == 12);
  CHECK(full.stats().over_cap_kept == 2);
  CHECK(append1(full, Kind::Summary) == 0);
}

TEST_CASE("outbox: the byte cap is enforced and memory stays flat at the cap",
          "[uplink][outbox]") {
  uplink::testing::TempDir dir;
  core::ManualClock clock;
  core::MetricsRegistry metrics;
  Outbox o(dir.file("gw.db"), "site1", {1'000'000, 200'000}, clock, metrics);
  const std::string big(900, 'b');
  auto fill = [&](int batches) {
    for (int b = 0; b < batches; ++b) {
      std::vector<Outbox::Entry> e;
      for (int i = 0; i < 100; ++i) {
        e.push_back(entry(i == 0 ? Kind::Alert : Kind::Summary, big));
      }
      REQUIRE(o.append(std::move(e)));
    }
  };
  fill(20);  // reach the cap and warm SQLite's page cache
  const double rss_before = core::processResidentBytes();
  fill(100);  // 10,000 more at the cap
  const double rss_after = core::processResidentBytes();
  auto s = o.stats();
  CHECK(s.bytes <= 200'000 + 2000);
  CHECK(s.dropped[0] > 9000);
  INFO("rss grew by " << (rss_after - rss_before) / 1024 << " KiB");
  CHECK(rss_after - rss_before < 4.0 * 1024 * 1024);
  // Alerts (one per batch, 120 in all) are never dropped.
  size_t alerts = 0;
  for (auto& r : o.fetchAfter(0, 100000)) {
    alerts += r.kind == Kind::Alert ? 1 : 0;
  }
  CHECK(alerts == 120);
}

TEST_CASE("outbox: fetching and stats never wait for an append that waits for the write lock",
          "[uplink][outbox]") {
  uplink::testing::TempDir dir;
  core::ManualClock clock;
  core::MetricsRegistry metrics;
  const std::string db = dir.file("gw.db");
  Outbox o(db, "site1", {}, clock, metrics);
  append1(o, Kind::Alert, "first");

  // Another connection holds the write lock for as long as this test wants.
  sqlite3* other = nullptr;
  REQUIRE(sqlite3_open(db.c_str(), &other) == SQLITE_OK);
  REQUIRE(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
  std::atomic<bool> appended{false};
  std::atomic<bool> append_ok{false};
  std::thread writer([&] {
    std::vector<Outbox::Entry> e;
    e.push_back(entry(Kind::Summary, "waits"));
    append_ok = o.append(std::move(e)).has_value();
    appended = true;
  });
  // The append is staged (visible) before it waits for the lock.
  REQUIRE(uplink::testing::waitFor([&] { return o.stats().rows == 2; }));

  // Fetching and stats answer while the append still waits: the lock is released only after
  // they returned, so a fetch that waited for it could not return at all (no time bound here:
  // the latency is the benchmark's business).
  std::atomic<bool> fetch_done{false};
  size_t fetched = 0;
  std::thread reader([&] {
    fetched = o.fetchAfter(0, 10).size();
    fetch_done = true;
  });
  REQUIRE(uplink::testing::waitFor([&] { return fetch_done.load(); }));
  reader.join();
  CHECK_FALSE(appended.load());
  CHECK(fetched == 2);  // the waiting message is sent before its commit

  REQUIRE(sqlite3_exec(other, "COMMIT", nullptr, nullptr, nullptr) == SQLITE_OK);
  writer.join();
  sqlite3_close(other);
  CHECK(append_ok.load());
  CHECK(o.fetchAfter(0, 10).size() == 2);
  CHECK(o.stats().rows == 2);
  CHECK(o.stats().unwritten == 0);
}

namespace {

// Native mode's shape: the topic names the summary type and is the coalescing key. With
// `shared_topic` (ThingsBoard's shape), every summary goes to one topic and only the key differs.
Outbox::Entry summaryOn(const std::string& kind_topic, int n, bool shared_topic = false) {
  const std::string topic_of = shared_topic ? std::string("v1/devices/me/telemetry")
                                            : "hgj/site1/summary/" + kind_topic;
  return {Kind::Summary,
          [topic_of, n](const std::string& msg_id, std::string& topic, std::string& payload) {
            topic = topic_of;
            payload = "{\"msg_id\":\"" + msg_id + "\",\"n\":" + std::to_string(n) + "}";
          },
          shared_topic ? kind_topic : topic_of};
}

int64_t appendSummary(Outbox& o, const std::string& kind_topic, int n,
                      bool shared_topic = false) {
  std::vector<Outbox::Entry> e;
  e.push_back(summaryOn(kind_topic, n, shared_topic));
  auto seqs = o.append(std::move(e));
  REQUIRE(seqs);
  return seqs->at(0);
}

} // namespace

TEST_CASE("outbox: a newer summary replaces an unsent one of the same topic, alerts never",
          "[uplink][outbox]") {
  uplink::testing::TempDir dir;
  core::ManualClock clock;
  core::MetricsRegistry metrics;
  Outbox::Limits limits;
  limits.coalesce_summaries = true;
  Outbox o(dir.file("gw.db"), "site1", limits, clock, metrics);
  std::vector<int64_t> alerts;
  int64_t newest_parking = 0;
  int64_t newest_ev = 0;
  for (int i = 0; i < 50; ++i) {
    newest_parking = appendSummary(o, "parking", i);
    newest_ev = appendSummary(o, "ev", i);
    alerts.push_back(append1(o, Kind::Alert, std::to_string(i)));
  }
  auto rows = o.fetchAfter(0, 1000);
  std::vector<int64_t> got_alerts;
  std::vector<int64_t> got_summaries;
  for (const auto& r : rows) {
    (r.kind == Kind::Alert ? got_alerts : got_summaries).push_back(r.seq);
  }
  CHECK(got_alerts == alerts);
  CHECK(got_summaries == std::vector<int64_t>{newest_parking, newest_ev});
  CHECK(o.stats().rows == 52);
  CHECK(o.stats().coalesced == 98);
  CHECK(metrics.value("hgj_outbox_coalesced_total") == 98);
  CHECK(metrics.value("hgj_outbox_messages_total", {{"kind", "summary"}}) == 100);
  CHECK(metrics.value("hgj_outbox_messages_total", {{"kind", "alert"}}) == 50);

  // Handed to the uplink (fetched): never replaced afterwards, it may be on its way.
  const int64_t next = appendSummary(o, "parking", 50);
  auto after = o.fetchAfter(0, 1000);
  CHECK(std::count_if(after.begin(), after.end(),
                      [&](const uplink::OutboxRow& r) { return r.seq == newest_parking; }) == 1);
  CHECK(std::count_if(after.begin(), after.end(),
                      [&](const uplink::OutboxRow& r) { return r.seq == next; }) == 1);
  CHECK(o.stats().coalesced == 98);
  // The rows are gone from disk too: a fresh Outbox on the file sees the same.
  uplink::testing::TempDir unused;
  Outbox reopened(dir.file("gw.db"), "site1", limits, clock, metrics);
  CHECK(reopened.stats().rows == 53);
}

TEST_CASE("outbox: without coalescing every summary is kept", "[uplink][outbox]") {
  uplink::testing::TempDir dir;
  core::ManualClock clock;
  core::MetricsRegistry metrics;
  Outbox o(dir.file("gw.db"), "site1", {}, clock, metrics);
  for (int i = 0; i < 20; ++i) {
    appendSummary(o, "parking", i);
  }
  CHECK(o.fetchAfter(0, 1000).size() == 20);
  CHECK(o.stats().coalesced == 0);
}

TEST_CASE("outbox: summaries left by the last boot are replaced by the first new one",
          "[uplink][outbox]") {
  uplink::testing::TempDir dir;
  core::ManualClock clock;
  core::MetricsRegistry metrics;
  Outbox::Limits limits;
  limits.coalesce_summaries = true;
  int64_t alert = 0;
  {
    Outbox o(dir.file("gw.db"), "site1", limits, clock, metrics);
    appendSummary(o, "parking", 1);
    alert = append1(o, Kind::Alert);
  }
  Outbox o(dir.file("gw.db"), "site1", limits, clock, metrics);
  const int64_t fresh = appendSummary(o, "parking", 2);
  auto rows = o.fetchAfter(0, 1000);
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].seq == alert);
  CHECK(rows[1].seq == fresh);
}

TEST_CASE("outbox: summaries sharing a topic (ThingsBoard) coalesce by type, not by topic",
          "[uplink][outbox]") {
  // In ThingsBoard mode parking, EV, e-bike and health summaries all render to
  // v1/devices/me/telemetry: keyed by topic, the EV summary would replace the parking one.
  uplink::testing::TempDir dir;
  core::ManualClock clock;
  core::MetricsRegistry metrics;
  Outbox::Limits limits;
  limits.coalesce_summaries = true;
  limits.topic_is_coalesce_key = false;
  int64_t parking = 0;
  int64_t ev = 0;
  {
    Outbox o(dir.file("gw.db"), "site1", limits, clock, metrics);
    for (int i = 0; i < 10; ++i) {
      parking = appendSummary(o, "summary/parking", i, true);
      ev = appendSummary(o, "summary/ev", i, true);
    }
    auto rows = o.fetchAfter(0, 1000);
    std::vector<int64_t> got;
    for (const auto& r : rows) {
      got.push_back(r.seq);
    }
    CHECK(got == std::vector<int64_t>{parking, ev});
    CHECK(o.stats().coalesced == 18);
  }
  // Across a restart the stored topic says nothing of the type: the last boot's summaries are
  // all kept and sent, none is replaced by a summary of another type.
  Outbox o(dir.file("gw.db"), "site1", limits, clock, metrics);
  const int64_t fresh = appendSummary(o, "summary/ev", 10, true);
  auto rows = o.fetchAfter(0, 1000);
  std::vector<int64_t> got;
  for (const auto& r : rows) {
    got.push_back(r.seq);
  }
  CHECK(got == std::vector<int64_t>{parking, ev, fresh});
}

TEST_CASE("outbox: a fetch past every row on disk is answered from memory (an alert is handed "
          "over without a disk read); rows committed since are read from disk again",
          "[uplink][outbox]") {
  uplink::testing::TempDir dir;
  core::ManualClock clock;
  core::MetricsRegistry metrics;
  const std::string db = dir.file("gw.db");
  Outbox o(db, "site1", {}, clock, metrics);
  const int64_t first = append1(o, Kind::Summary, "on disk");
  std::vector<Outbox::Entry> e;
  e.push_back(entry(Kind::Alert, "hot"));
  storage::DurableWrite w = o.stage(std::move(e));

  // The table is out of reach: a fetch that needs the disk fails (and returns nothing).
  uplink::testing::exec(db, "ALTER TABLE outbox RENAME TO outbox_away");
  auto past = o.fetchAfter(first, 10);
  REQUIRE(past.size() == 1);
  CHECK(past[0].kind == Kind::Alert);
  CHECK(past[0].seq > first);
  CHECK(o.fetchAfter(0, 10).empty());
  CHECK(o.fetchAfter(first, 10, true).size() == 1);  // memory only: the same answer
  uplink::testing::exec(db, "ALTER TABLE outbox_away RENAME TO outbox");
  // Memory only, below a committed row: nothing rather than the staged row out of order.
  CHECK(o.fetchAfter(0, 10, true).empty());
  auto all = o.fetchAfter(0, 10);
  REQUIRE(all.size() == 2);
  CHECK(all[0].seq == first);
  CHECK(all[1].seq == past[0].seq);

  // Once the alert's transaction commits, its row is let go of in memory: the disk answers.
  storage::DirectSink sink(db);
  std::vector<storage::DurableWrite> ws;
  ws.push_back(std::move(w));
  sink.submit(std::move(ws));
  CHECK(o.stats().unwritten == 0);
  auto again = o.fetchAfter(first, 10);
  REQUIRE(again.size() == 1);
  CHECK(again[0].seq == past[0].seq);
  uplink::testing::exec(db, "ALTER TABLE outbox RENAME TO outbox_away");
  CHECK(o.fetchAfter(first, 10).empty());
  CHECK(o.fetchAfter(past[0].seq, 10).empty());
  uplink::testing::exec(db, "ALTER TABLE outbox_away RENAME TO outbox");

  // Rows left by an earlier boot are on disk only: the next boot reads them.
  Outbox next(db, "site1", {}, clock, metrics);
  CHECK(next.fetchAfter(0, 10).size() == 2);
}
