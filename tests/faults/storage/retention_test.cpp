// docs/storage.md "Retention": readings older than `storage.retention.max_age` are deleted, and
// the oldest while the data exceeds `storage.retention.max_size_mb`; never a reading that is
// neither too old nor needed for the size. The rows are dated in the database before the
// daemon starts, so the test does not wait for any real age.
#include <filesystem>
#include <string>

#include <catch2/catch.hpp>
#include <signal.h>
#include <sqlite3.h>

#include "tests/faults/storage/storage_fixture.h"

using namespace std::chrono_literals;
using hgj::test::queryInt;
using hgj::test::waitFor;
using namespace hgj::test::storage;

namespace {

constexpr long long kDayMs = 86'400'000;

long long nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// Appends `n` readings of S01/P01.temp_c received at `ingest_ms`, with a text value of
/// `pad` bytes (to make them weigh something).
void appendReadings(const std::string& db, int n, long long ingest_ms, size_t pad = 0) {
  sqlite3* h = nullptr;
  REQUIRE(sqlite3_open(db.c_str(), &h) == SQLITE_OK);
  REQUIRE(sqlite3_exec(h, "BEGIN", nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  REQUIRE(sqlite3_prepare_v2(h,
                             "INSERT INTO readings(device, point, value, quality, ts_ms, "
                             "ingest_ms) VALUES('S01/P01', 'temp_c', ?, 'good', ?, ?)",
                             -1, &st, nullptr) == SQLITE_OK);
  std::string value(pad, 'v');
  bool ok = true;
  for (int i = 0; i < n && ok; ++i) {
    if (pad == 0) {
      sqlite3_bind_double(st, 1, 30.0);
    } else {
      sqlite3_bind_text(st, 1, value.c_str(), static_cast<int>(value.size()), SQLITE_STATIC);
    }
    sqlite3_bind_int64(st, 2, ingest_ms);
    sqlite3_bind_int64(st, 3, ingest_ms);
    ok = sqlite3_step(st) == SQLITE_DONE;
    sqlite3_reset(st);
  }
  sqlite3_finalize(st);
  REQUIRE(ok);
  REQUIRE(sqlite3_exec(h, "COMMIT", nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(h);
}

/// A database with the gateway's schema and nothing in it.
void createEmpty(const hgj::test::Broker& broker, const hgj::test::TempDir& dir,
                 const std::string& db) {
  auto gw = hgj::test::startGateway(broker.url(), db, dir.file("create.log"));
  gw->signal(SIGTERM);
  REQUIRE(gw->wait() == 0);
}

long long usedBytes(const std::string& db) {
  return (queryInt(db, "PRAGMA page_count") - queryInt(db, "PRAGMA freelist_count")) *
         queryInt(db, "PRAGMA page_size");
}

} // namespace

TEST_CASE("faults storage: retention by age deletes the readings past max_age and no other",
          "[faults][storage][retention]") {
  hgj::test::TempDir dir;
  hgj::test::Broker broker(false);
  const std::string db = dir.file("hgj.db");
  createEmpty(broker, dir, db);
  // 12,000 readings 40 days old (not a multiple of retention's 5,000-row chunk), then 100 of an
  // hour ago: the last chunk reaches into the recent ones.
  const long long now = nowMs();
  appendReadings(db, 12'000, now - 40 * kDayMs);
  appendReadings(db, 100, now - 3'600'000);

  auto gw = hgj::test::startGateway(broker.url(), db, dir.file("gw.log"),
                                    {"storage.retention.max_age=30d",
                                     "storage.retention.check_interval=200ms"});
  CHECK(waitFor(
      [&] {
        return queryInt(db, "SELECT count(*) FROM readings WHERE ingest_ms < " +
                                std::to_string(now - 30 * kDayMs)) == 0;
      },
      20s));
  CHECK(queryInt(db, "SELECT count(*) FROM readings WHERE ingest_ms = " +
                         std::to_string(now - 3'600'000)) == 100);
  CHECK(waitFor([&] { return metric(*gw, "hgj_storage_retention_deleted_total") == 12'000; }));
  gw->signal(SIGTERM);
  CHECK(gw->wait() == 0);
}

TEST_CASE("faults storage: retention by size keeps the newest readings within max_size_mb",
          "[faults][storage][retention]") {
  hgj::test::TempDir dir;
  hgj::test::Broker broker(false);
  const std::string db = dir.file("hgj.db");
  createEmpty(broker, dir, db);
  // About 4 MiB of recent readings, oldest first.
  const long long now = nowMs();
  for (int block = 0; block < 8; ++block) {
    appendReadings(db, 2'500, now - (10 - block) * 60'000, 200);
  }
  const long long newest = queryInt(db, "SELECT max(id) FROM readings");
  REQUIRE(usedBytes(db) > 3 * (1 << 20));

  auto gw = hgj::test::startGateway(broker.url(), db, dir.file("gw.log"),
                                    {"storage.retention.max_size_mb=1",
                                     "storage.retention.check_interval=200ms"});
  CHECK(waitFor([&] { return usedBytes(db) <= (1 << 20); }, 20s));
  // The newest went nowhere; what went is the oldest, from the front.
  CHECK(queryInt(db, "SELECT count(*) FROM readings WHERE id = " + std::to_string(newest)) == 1);
  const long long kept = queryInt(db, "SELECT count(*) FROM readings");
  CHECK(kept > 0);
  CHECK(queryInt(db, "SELECT max(id) - min(id) + 1 FROM readings") == kept);
  CHECK(waitFor([&] { return metric(*gw, "hgj_storage_retention_deleted_total") == 20'000 - kept; }));
  // New readings are still stored, and the file does not grow past what it was.
  const auto size_before = std::filesystem::file_size(db);
  hgj::test::TestClient device(broker.url(), "retention-devices");
  device.publish("compound/ebike/S01/P09/telemetry", portReport(33));
  CHECK(waitFor([&] {
    return queryInt(db, "SELECT count(*) FROM readings WHERE device='S01/P09'") > 0;
  }));
  gw->signal(SIGTERM);
  CHECK(gw->wait() == 0);
  CHECK(std::filesystem::file_size(db) <= size_before);
}
