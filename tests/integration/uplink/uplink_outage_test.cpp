#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <sstream>

#include "core/clock.h"
#include "core/metrics.h"
#include "gateway/uplink/uplink.h"
#include "tests/integration/uplink/uplink_common.h"

using namespace hgj;
using namespace hgj::uplink::testing;
using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

std::vector<int64_t> range(int64_t from, int64_t to) {
  std::vector<int64_t> v;
  for (int64_t i = from; i <= to; ++i) {
    v.push_back(i);
  }
  return v;
}

void enqueueAlerts(uplink::Uplink& u, int from, int to) {
  for (int i = from; i <= to; ++i) {
    REQUIRE(u.enqueue(uplink::Kind::Alert, "alerts",
                      json{{"id", i}, {"rule", "ebike_overtemp"}, {"state", "raised"},
                           {"source_ts", 1'700'000'000'000 + i}}));
  }
}

} // namespace

TEST_CASE("uplink outage: upstream stopped then restarted, every msg_id arrives in order",
          "[uplink][integration]") {
  Broker broker;
  Recorder rec(broker.url(), {"hgj/site1/#"});
  TempDir dir;
  World w;
  uplink::Uplink up(testConfig(broker.url()), "site1", dir.file("gw.db"), w.read_model, w.sink,
                    core::SystemClock::instance(), w.metrics);
  up.start();
  REQUIRE(waitFor([&] { return up.connected(); }));
  enqueueAlerts(up, 1, 100);
  REQUIRE(waitFor([&] { return firstSeen(rec, "hgj/site1/alerts").size() == 100; }));

  broker.stop();
  REQUIRE(waitFor([&] { return !up.connected(); }));
  enqueueAlerts(up, 101, 600);
  CHECK(up.outboxStats().rows == 500);
  CHECK(up.health().find("disconnected") != std::string::npos);
  // Let a few reconnect attempts fail.
  REQUIRE(waitFor([&] { return w.metrics.value("hgj_uplink_connect_failures_total") >= 3; }));

  broker.start();
  REQUIRE(waitFor([&] { return firstSeen(rec, "hgj/site1/alerts").size() >= 600; },
                  seconds(20)));
  CHECK(firstSeenField(rec, "hgj/site1/alerts", "id") == range(1, 600));
  CHECK(msgIdsIncrease(rec, "hgj/site1/alerts"));
  REQUIRE(waitFor([&] { return up.outboxStats().rows == 0; }));
  CHECK(w.metrics.value("hgj_outbox_depth") == 0);
  // The retained status says online again.
  auto status = rec.on("hgj/site1/status");
  REQUIRE_FALSE(status.empty());
  CHECK(status.back().payload == "online");
}

TEST_CASE("uplink outage: the gateway restarted during the outage loses nothing",
          "[uplink][integration]") {
  Broker broker;
  Recorder rec(broker.url(), {"hgj/site1/alerts"});
  TempDir dir;
  World w;
  auto cfg = testConfig(broker.url());
  {
    uplink::Uplink up(cfg, "site1", dir.file("gw.db"), w.read_model, w.sink,
                      core::SystemClock::instance(), w.metrics);
    up.start();
    REQUIRE(waitFor([&] { return up.connected(); }));
    enqueueAlerts(up, 1, 50);
    REQUIRE(waitFor([&] { return up.outboxStats().rows == 0; }));
    broker.stop();
    enqueueAlerts(up, 51, 300);
  }  // the gateway stops during the outage
  {
    uplink::Uplink up(cfg, "site1", dir.file("gw.db"), w.read_model, w.sink,
                      core::SystemClock::instance(), w.metrics);
    CHECK(up.outboxStats().rows == 250);
    up.start();
    enqueueAlerts(up, 301, 400);
  }  // and again, without ever reaching the broker
  uplink::Uplink up(cfg, "site1", dir.file("gw.db"), w.read_model, w.sink,
                    core::SystemClock::instance(), w.metrics);
  up.start();
  enqueueAlerts(up, 401, 450);
  broker.start();
  REQUIRE(waitFor([&] { return firstSeen(rec, "hgj/site1/alerts").size() >= 450; },
                  seconds(20)));
  CHECK(firstSeenField(rec, "hgj/site1/alerts", "id") == range(1, 450));
  CHECK(msgIdsIncrease(rec, "hgj/site1/alerts"));
  REQUIRE(waitFor([&] { return up.outboxStats().rows == 0; }));
}

// Run as a separate process by the test below (never by ctest): enqueues alerts, reporting each
// committed one on the fd in HGJ_UPLINK_CHILD_FD, until it is killed.
TEST_CASE("uplink child: enqueue alerts until killed", "[.uplink-child]") {
  const char* db = std::getenv("HGJ_UPLINK_CHILD_DB");
  const char* url = std::getenv("HGJ_UPLINK_CHILD_URL");
  const char* fd_text = std::getenv("HGJ_UPLINK_CHILD_FD");
  REQUIRE(db != nullptr);
  REQUIRE(url != nullptr);
  REQUIRE(fd_text != nullptr);
  const int fd = std::atoi(fd_text);
  World w;
  uplink::Uplink up(testConfig(url), "site1", db, w.read_model, w.sink,
                    core::SystemClock::instance(), w.metrics);
  up.start();
  for (int i = 1; i <= 200'000; ++i) {
    if (!up.enqueue(uplink::Kind::Alert, "alerts", json{{"n", i}})) {
      continue;
    }
    std::string line = std::to_string(i) + "\n";
    if (::write(fd, line.data(), line.size()) < 0) {
      break;
    }
  }
}

TEST_CASE("uplink outage: a gateway killed with SIGKILL loses nothing it committed",
          "[uplink][integration]") {
  Broker broker;
  Recorder rec(broker.url(), {"hgj/site1/#"});
  TempDir dir;
  const std::string db = dir.file("gw.db");

  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  char self[PATH_MAX] = {};
  REQUIRE(::readlink("/proc/self/exe", self, sizeof self - 1) > 0);
  std::vector<std::string> env_store = {"HGJ_UPLINK_CHILD_DB=" + db,
                                        "HGJ_UPLINK_CHILD_URL=" + broker.url(),
                                        "HGJ_UPLINK_CHILD_FD=" + std::to_string(fds[1])};
  std::vector<char*> envp;
  for (auto& e : env_store) {
    envp.push_back(e.data());
  }
  for (char** e = environ; *e != nullptr; ++e) {
    envp.push_back(*e);
  }
  envp.push_back(nullptr);
  std::string name = "uplink child: enqueue alerts until killed";
  std::string quiet = "--out=/dev/null";
  char* argv[] = {self, name.data(), quiet.data(), nullptr};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addclose(&actions, fds[0]);
  pid_t child = 0;
  REQUIRE(::posix_spawn(&child, self, &actions, nullptr, argv, envp.data()) == 0);
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);

  // Read the child's confirmations; kill it in the middle of its work (publishing, acking and
  // deleting while it commits new rows).
  std::string buffer;
  auto lines = [&] { return std::count(buffer.begin(), buffer.end(), '\n'); };
  ::fcntl(fds[0], F_SETFL, O_NONBLOCK);
  auto read_some = [&] {
    char chunk[4096];
    ssize_t n;
    while ((n = ::read(fds[0], chunk, sizeof chunk)) > 0) {
      buffer.append(chunk, static_cast<size_t>(n));
    }
    return n == 0;  // EOF
  };
  // Connected first (its "online" status seen): killed before its CONNECT, the broker would
  // have no last will to publish.
  REQUIRE(waitFor([&] {
    read_some();
    auto s = rec.on("hgj/site1/status");
    return lines() >= 700 && !s.empty() && s.back().payload == "online";
  }, seconds(30)));
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  CHECK(WIFSIGNALED(status));
  waitFor([&] { return read_some(); }, seconds(2));
  ::close(fds[0]);
  int64_t last_committed = 0;
  std::istringstream in(buffer);
  for (std::string line; std::getline(in, line);) {
    last_committed = std::max<int64_t>(last_committed, std::stoll(line));
  }
  REQUIRE(last_committed >= 700);

  // The broker published the child's last will.
  REQUIRE(waitFor([&] {
    auto s = rec.on("hgj/site1/status");
    return !s.empty() && s.back().payload == "offline";
  }, seconds(15)));

  World w;
  uplink::Uplink up(testConfig(broker.url()), "site1", db, w.read_model, w.sink,
                    core::SystemClock::instance(), w.metrics);
  up.start();
  REQUIRE(waitFor([&] { return up.outboxStats().rows == 0; }, seconds(20)));
  std::vector<int64_t> got = firstSeenField(rec, "hgj/site1/alerts", "n");
  std::set<int64_t> got_set(got.begin(), got.end());
  for (int64_t n = 1; n <= last_committed; ++n) {
    INFO("message " << n);
    REQUIRE(got_set.count(n) == 1);
  }
  CHECK(msgIdsIncrease(rec, "hgj/site1/alerts"));
  // The sequence goes on above everything the killed process used.
  const int64_t before = firstSeen(rec, "hgj/site1/alerts").back();
  REQUIRE(up.enqueue(uplink::Kind::Alert, "alerts", json{{"n", "after"}}));
  REQUIRE(waitFor([&] { return firstSeen(rec, "hgj/site1/alerts").back() > before; }));
}

TEST_CASE("uplink outage: past the outbox cap summaries are dropped oldest first, alerts kept",
          "[uplink][integration]") {
  Broker broker(true, {}, /*start=*/false);
  TempDir dir;
  World w;
  auto cfg = testConfig(broker.url());
  cfg.outbox.max_rows = 50;
  uplink::Uplink up(cfg, "site1", dir.file("gw.db"), w.read_model, w.sink,
                    core::SystemClock::instance(), w.metrics);
  std::vector<std::pair<uplink::Kind, uint64_t>> drops;
  std::mutex drops_mu;
  up.setDropHandler([&](uplink::Kind k, uint64_t total) {
    std::lock_guard lock(drops_mu);
    drops.emplace_back(k, total);
  });
  // The broker is down: 200 summaries and 20 alerts pile up in a 50-row outbox.
  std::vector<int64_t> alert_seqs;
  for (int i = 1; i <= 220; ++i) {
    if (i % 11 == 0) {
      REQUIRE(up.enqueue(uplink::Kind::Alert, "alerts", json{{"id", i}}));
      alert_seqs.push_back(i);
    } else {
      REQUIRE(up.enqueue(uplink::Kind::Summary, "summary/parking", json{{"free", i}}));
    }
  }
  CHECK(up.outboxStats().rows == 50);
  CHECK(w.metrics.value("hgj_outbox_dropped_total", {{"kind", "summary"}}) == 170);
  CHECK(w.metrics.value("hgj_outbox_dropped_total", {{"kind", "alert"}}) == 0);
  {
    std::lock_guard lock(drops_mu);
    REQUIRE_FALSE(drops.empty());
    CHECK(drops.back().second == 170);
  }
  CHECK(up.health().find("dropped 170") != std::string::npos);

  broker.start();
  Recorder rec(broker.url(), {"hgj/site1/#"});
  up.start();
  REQUIRE(waitFor([&] { return up.outboxStats().rows == 0; }));
  REQUIRE(waitFor([&] {
    return firstSeen(rec, "hgj/site1/alerts").size() == 20 &&
           firstSeen(rec, "hgj/site1/summary/parking").size() == 30;
  }));
  CHECK(firstSeenField(rec, "hgj/site1/alerts", "id") == alert_seqs);
  // The 30 summaries that survived are the newest ones.
  auto summaries = firstSeenField(rec, "hgj/site1/summary/parking", "free");
  CHECK(summaries.front() > 180);
  CHECK(summaries.back() == 219);
}

TEST_CASE("uplink outage: the replay after an outage is paced by replay_rate",
          "[uplink][integration]") {
  Broker broker;
  Recorder rec(broker.url(), {"hgj/site1/alerts"});
  TempDir dir;
  World w;
  auto cfg = testConfig(broker.url());
  cfg.replay.max_rate = 200;  // burst of 20, then 200/s
  cfg.replay.adaptive = false;
  uplink::Uplink up(cfg, "site1", dir.file("gw.db"), w.read_model, w.sink,
                    core::SystemClock::instance(), w.metrics);
  enqueueAlerts(up, 1, 120);
  up.start();
  REQUIRE(waitFor([&] { return up.connected(); }));
  const auto start = std::chrono::steady_clock::now();
  REQUIRE(waitFor([&] { return firstSeen(rec, "hgj/site1/alerts").size() == 120; }));
  const auto took = std::chrono::steady_clock::now() - start;
  // 100 messages past the burst at 200/s take at least 0.5 s (minus what went out before
  // `start` was taken).
  CHECK(took >= milliseconds(350));
  CHECK(firstSeenField(rec, "hgj/site1/alerts", "id") == range(1, 120));
}
