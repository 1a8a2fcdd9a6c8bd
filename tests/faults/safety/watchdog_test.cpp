// systemd's watchdog, played by the test's notify socket: WATCHDOG=1 is fed from the progress of
// the critical threads, so it stops when the pipeline thread hangs (fault hook) and goes on while
// the gateway is busy with a backlog behind a slow disk.
#include <atomic>
#include <thread>

#include <catch2/catch.hpp>

#include "tests/faults/safety/safety_site.h"

using namespace std::chrono_literals;
using hgj::safety_test::Site;
using hgj::test::waitFor;
using Clock = std::chrono::steady_clock;

namespace {

/// The longest gap between consecutive WATCHDOG=1 in [from, to].
Clock::duration longestGap(const std::vector<Clock::time_point>& feeds, Clock::time_point from,
                           Clock::time_point to) {
  Clock::duration worst{};
  Clock::time_point prev = from;
  for (auto t : feeds) {
    if (t < from || t > to) {
      continue;
    }
    worst = std::max(worst, t - prev);
    prev = t;
  }
  return std::max(worst, to - prev);
}

} // namespace

TEST_CASE("faults safety: the watchdog stops being fed within 2 intervals of the pipeline "
          "thread hanging",
          "[faults][safety][daemon][watchdog]") {
  Site site;
  auto spawned = Clock::now();
  // WatchdogSec=1s; the pipeline thread hangs for good 6 s after it starts.
  site.startGateway({}, {{"WATCHDOG_USEC", "1000000"},
                         {"HGJ_FAULTS", "wedge_pipeline_after_ms=6000"}});
  auto ready = Clock::now();
  auto& notify = site.gw->notify();
  // Fed while the pipeline runs...
  REQUIRE(waitFor([&] { return notify.count("WATCHDOG=1") >= 4; }, 5s));
  // ...and no longer once it hangs: wait until 3 s (3 intervals) pass without a feed.
  REQUIRE(waitFor([&] {
    auto feeds = notify.arrivals("WATCHDOG=1");
    return !feeds.empty() && Clock::now() - feeds.back() > 3s;
  }, 30s));
  auto feeds = notify.arrivals("WATCHDOG=1");
  auto last = feeds.back();
  // The hang began between spawned + 6 s and ready + 6 s; the feed stopped within 2 intervals.
  INFO("last feed " << std::chrono::duration_cast<std::chrono::milliseconds>(last - spawned).count()
                    << " ms after the spawn, ready after "
                    << std::chrono::duration_cast<std::chrono::milliseconds>(ready - spawned)
                           .count()
                    << " ms");
  CHECK(last >= spawned + 5s);
  CHECK(last <= ready + 6s + 2s);
  CHECK(site.gw->running());  // hung, not dead: systemd would restart it now
  site.killGateway();
}

TEST_CASE("faults safety: the watchdog keeps being fed while the gateway works through a "
          "backlog behind a disk that stalls every commit",
          "[faults][safety][daemon][watchdog]") {
  Site site;
  // WatchdogSec=2s; every storage commit stalls 1.5 s (a dying eMMC), so readings back up.
  site.startGateway({}, {{"WATCHDOG_USEC", "2000000"}, {"HGJ_FAULTS", "commit_stall_ms=1500"}});
  auto& notify = site.gw->notify();
  REQUIRE(waitFor([&] { return notify.count("WATCHDOG=1") >= 2; }, 10s));
  // The flood runs on its own thread: the notify socket stamps datagrams when they are read,
  // so this thread keeps reading it meanwhile.
  auto from = Clock::now();
  std::atomic<bool> flooded{false};
  std::thread flooder([&] {
    hgj::test::TestClient flood(site.broker.url());
    for (int i = 0; i < 20'000; ++i) {
      flood.publish("compound/ebike/S01/P0" + std::to_string(1 + i % 3) + "/telemetry",
                    R"({"temp_c":30,"power_w":100,"current_a":0.5,"relay":true})", 0);
    }
    flooded = true;
  });
  // Observe for at least 6 s (3 intervals) and until the flood is through.
  waitFor([&] {
    notify.count("WATCHDOG=1");
    return flooded && Clock::now() - from >= 6s;
  }, 60s);
  flooder.join();
  // The backlog is real: the writer is stuck behind the stalled commits.
  // One temp_c reading per message: fewer than the 20,000 sent means a backlog remains.
  long long stored =
      site.q("SELECT count(*) FROM readings WHERE device LIKE 'S01/P0%' AND point='temp_c'");
  INFO("temp_c readings stored when the flood ended: " << stored);
  CHECK(stored < 20'000);
  auto to = Clock::now();
  auto gap = longestGap(notify.arrivals("WATCHDOG=1"), from, to);
  INFO("longest gap between feeds: "
       << std::chrono::duration_cast<std::chrono::milliseconds>(gap).count() << " ms");
  // systemd restarts the gateway when a gap exceeds the interval (2 s).
  CHECK(gap < 2s);
  if (gap >= 2s) {
    FAIL_CHECK(site.gw->output());
  }
  CHECK(site.gw->running());
  site.killGateway();
}
