// `hgj-gateway history rebuild` (issue 17, "rebuildable from readings after an upgrade"): the
// daemon computes the rollups live from two compressed days of readings; the history rows are
// deleted and the command recomputes them from the `readings` table, equal to the live ones.
// Then what an operator meets: --from keeps earlier rows, readings trimmed by retention do not
// overwrite the history of the days they no longer cover, and the refusals (no database, a
// gateway answering on its port, a bad day).
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <signal.h>

#include "gateway/storage/sqlite.h"
#include "tests/support/test_support.h"

namespace fs = std::filesystem;

namespace {

constexpr int64_t kMin = 60'000;
constexpr int64_t kHour = 60 * kMin;
constexpr int64_t kDay = 24 * kHour;
constexpr int64_t kOffset = 8 * kHour;  // +08:00, the config's default history.utc_offset

void write(const fs::path& p, const std::string& text) {
  std::ofstream out(p);
  out << text;
}

std::string writeConfig(const fs::path& dir) {
  fs::create_directories(dir);
  write(dir / "gateway.yaml", R"(site: {id: rebuild-cli, name: 重建测试小区}
include:
  grids: grids.yaml
  devices: devices.yaml
  rules: rules.yaml
  alerts: alerts.yaml
  profiles: )" + hgj::test::sourcePath("conf/profiles") + R"(
)");
  write(dir / "grids.yaml", R"(grids:
  - id: G1
    name: 车库网格
    staff: [{name: 张伟, phone: "13800000001"}]
    channels: [upstream]
)");
  write(dir / "alerts.yaml", "alerts:\n  channels:\n    - {id: upstream, type: upstream}\n");
  write(dir / "devices.yaml", R"(devices:
  - {id: "P-B2-{n:04}", range: [1, 4], profile: parking_sensor_mqtt, grid: G1,
     location: {level: B2, zone: A}}
  - {id: "P-G-{n:04}", range: [1, 2], profile: parking_sensor_mqtt, grid: G1, category: visitor,
     location: {level: G, zone: E}}
  - {id: EV-01, profile: ev_pile_mqtt, grid: G1, location: {level: B2}}
  - {id: S01, profile: ebike_shed_mqtt, grid: G1, ports: 2, location: {building: 1号车棚区}}
)");
  write(dir / "rules.yaml", R"(rules:
  - name: port_hot
    kind: threshold
    select: {type: ebike_port}
    point: temp_c
    op: ">"
    value: 60
    clear: 55
    severity: warning
    message: "{device}: 温度 {value}°C"
occupancy:
  debounce: 5s
)");
  return (dir / "gateway.yaml").string();
}

void sql(const std::string& db, const std::string& statements) {
  hgj::storage::Database d(db);
  d.exec(statements);
}

struct Run {
  int status = -1;
  std::string output;
};

// Runs the gateway binary with `args` (stdout and stderr together) and returns its exit status.
Run gateway(const std::string& args) {
  Run r;
  FILE* p = popen((hgj::test::binary("hgj-gateway") + " " + args + " 2>&1").c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[512];
  while (std::fgets(buf, sizeof buf, p) != nullptr) {
    r.output += buf;
  }
  int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

// Every history row, figures rounded so that equal sums in another order compare equal.
std::vector<std::string> occupancyRows(const std::string& db, const std::string& where) {
  return hgj::test::queryRows(
      db, "SELECT step_s, bucket_ms, scope, total, round(mean_occupied, 9), peak_occupied, "
          "min_free, round(minutes_full, 9) FROM history_occupancy WHERE " + where +
              " ORDER BY 1, 3, 2");
}
std::vector<std::string> dayRows(const std::string& db, const std::string& where) {
  return hgj::test::queryRows(db, "SELECT day, metric, key, round(value, 9) FROM history_day "
                                  "WHERE " + where + " ORDER BY 1, 2, 3");
}

} // namespace

TEST_CASE("history rebuild cli: rollups deleted and rebuilt from readings by the command equal "
          "the live ones, --from and trimmed readings keep earlier rows",
          "[history][e2e][cli]") {
  hgj::test::TempDir dir;
  hgj::test::Broker broker;
  const std::string config = writeConfig(fs::path(dir.path()) / "conf");
  const std::string db = dir.path() + "/hgj.db";

  // Two whole local days starting at a midnight 4 days ago, and 3 hours of a third.
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  const int64_t d0 = ((now - 4 * kDay + kOffset) / kDay) * kDay - kOffset;
  const int64_t end = d0 + 2 * kDay + 3 * kHour;
  std::mt19937 rng(17);
  struct Msg {
    int64_t ts;
    std::string topic;
    std::string payload;
  };
  std::vector<Msg> msgs;
  for (const std::string id : {"P-B2-0001", "P-B2-0002", "P-B2-0003", "P-B2-0004", "P-G-0001",
                               "P-G-0002"}) {
    bool occ = false;
    for (int64_t t = d0; t < end; t += 7 * kMin + static_cast<int64_t>(rng() % (50 * kMin))) {
      msgs.push_back({t, "compound/parking/" + id + "/state",
                      std::string("{\"occupied\":") + (occ ? "true" : "false") +
                          ",\"ts\":" + std::to_string(t) + "}"});
      occ = rng() % 3 != 0 ? !occ : occ;
    }
  }
  double kwh = 0;
  bool charging = false;
  for (int64_t t = d0 + 2 * kMin; t < end; t += 10 * kMin) {
    if (rng() % 10 == 0) {
      charging = !charging;
      kwh = charging ? 0 : kwh;
    }
    kwh += charging ? 1.5 : 0;
    char payload[160];
    std::snprintf(payload, sizeof payload,
                  "{\"state\":\"%s\",\"power_kw\":%.1f,\"energy_kwh\":%.3f,\"ts\":%lld}",
                  charging ? "charging" : "idle", charging ? 6.8 : 0.0, kwh,
                  static_cast<long long>(t));
    msgs.push_back({t, "compound/ev/EV-01/status", payload});
  }
  int hot = 0;
  for (const std::string port : {"P01", "P02"}) {
    for (int64_t t = d0 + kMin; t < end; t += 3 * kMin) {
      // One hot report a day on P01 at 11:01 local: an alert per day.
      const bool is_hot = port == "P01" && (t - d0) % kDay == 11 * kHour + kMin;
      hot += is_hot ? 1 : 0;
      const double w = static_cast<double>(rng() % 400);
      char payload[160];
      std::snprintf(payload, sizeof payload,
                    "{\"current_a\":%.2f,\"power_w\":%.0f,\"temp_c\":%.1f,\"ts\":%lld}",
                    w / 230.0, w, is_hot ? 75.0 : 30.0, static_cast<long long>(t));
      msgs.push_back({t, "compound/ebike/S01/" + port + "/telemetry", payload});
    }
  }
  REQUIRE(hot == 2);
  size_t readings = 0;
  for (const auto& m : msgs) {
    readings += m.topic.rfind("compound/parking/", 0) == 0 ? 1 : 3;
  }
  std::stable_sort(msgs.begin(), msgs.end(),
                   [](const Msg& a, const Msg& b) { return a.ts < b.ts; });

  {
    auto gw = hgj::test::startGateway(broker.url(), db, dir.path() + "/gateway.log", {}, config);
    hgj::test::TestClient feed(broker.url(), "rebuild-cli-feed");
    for (const auto& m : msgs) {
      feed.publish(m.topic, m.payload);
    }
    REQUIRE(hgj::test::waitFor(
        [&] {
          return hgj::test::queryInt(db, "SELECT count(*) FROM readings") ==
                 static_cast<long long>(readings);
        },
        std::chrono::seconds(60)));
    gw->signal(SIGTERM);
    REQUIRE(gw->wait(std::chrono::seconds(30)) == 0);
  }
  // The live rows of every hour the feed closed (the last one was still open at shutdown).
  const int64_t closed_to = (msgs.back().ts / kHour) * kHour;
  const std::string closed = "bucket_ms < " + std::to_string(closed_to);
  const auto live_occ = occupancyRows(db, closed);
  const auto live_days = dayRows(db, "1");
  REQUIRE(live_occ.size() > 2 * 24 * 3);  // hours of B2, G, zones, visitor, site: all there
  // Alerts count on the day they were raised on the box (today), one per hot day.
  REQUIRE(hgj::test::queryInt(db, "SELECT SUM(value) FROM history_day WHERE metric='alerts_kind' "
                                  "AND key='port_hot'") == 2);
  const std::string port_free = std::to_string(hgj::test::freePort());
  const std::string cmd = "history rebuild -c " + config + " --set storage.path=" + db +
                          " --set http.port=" + port_free;

  SECTION("everything deleted: the command writes the live rows again") {
    sql(db, "DELETE FROM history_occupancy; DELETE FROM history_day;");
    Run r = gateway(cmd);
    INFO(r.output);
    REQUIRE(r.status == 0);
    CHECK(r.output.find("replayed " + std::to_string(readings) + " readings") !=
          std::string::npos);
    CHECK(r.output.find("and " + std::to_string(hgj::test::queryInt(db, "SELECT count(*) FROM "
                                                                        "alerts")) +
                        " alerts") != std::string::npos);
    CHECK(occupancyRows(db, closed) == live_occ);
    CHECK(dayRows(db, "1") == live_days);
  }

  SECTION("--from keeps the rows before that day as stored and rebuilds the rest") {
    const std::string day1 = hgj::test::queryRows(
        db, "SELECT MIN(day) FROM history_day WHERE day > (SELECT MIN(day) FROM history_day)")[0];
    sql(db, "UPDATE history_occupancy SET peak_occupied = 99 WHERE bucket_ms < " +
                            std::to_string(d0 + kDay) + "; UPDATE history_day SET value = 999 "
                            "WHERE day < '" + day1 + "'; DELETE FROM history_occupancy WHERE "
                            "bucket_ms >= " + std::to_string(d0 + kDay) + "; DELETE FROM "
                            "history_day WHERE day >= '" + day1 + "';");
    Run r = gateway(cmd + " --from " + day1);
    INFO(r.output);
    REQUIRE(r.status == 0);
    const std::string later = "bucket_ms >= " + std::to_string(d0 + kDay) + " AND " + closed;
    std::vector<std::string> live_later;
    for (const auto& row : live_occ) {
      // step_s|bucket_ms|...: the live rows from day 1 on.
      const int64_t bucket = std::stoll(row.substr(row.find('|') + 1));
      if (bucket >= d0 + kDay) {
        live_later.push_back(row);
      }
    }
    CHECK(occupancyRows(db, later) == live_later);
    CHECK(hgj::test::queryInt(db, "SELECT count(*) FROM history_occupancy WHERE bucket_ms < " +
                                      std::to_string(d0 + kDay) + " AND peak_occupied != 99") == 0);
    CHECK(hgj::test::queryInt(db, "SELECT count(*) FROM history_day WHERE day < '" + day1 +
                                      "' AND value != 999") == 0);
    CHECK(dayRows(db, "day >= '" + day1 + "'").size() > 0);
  }

  SECTION("readings trimmed by retention: the days they no longer cover keep their history") {
    // Retention deleted the first 6 hours of readings; the rows were lost since day 0's noon.
    sql(db, "DELETE FROM readings WHERE ts_ms < " + std::to_string(d0 + 6 * kHour) +
                            "; DELETE FROM history_occupancy WHERE bucket_ms >= " +
                            std::to_string(d0 + 12 * kHour) + "; DELETE FROM history_day WHERE "
                            "day > (SELECT MIN(day) FROM history_day);");
    Run r = gateway(cmd);
    INFO(r.output);
    REQUIRE(r.status == 0);
    // Day 0 is what the live gateway computed (none of it rewritten from the partial readings,
    // nor its rows lost after noon re-added); day 1 on equals the live rows again.
    std::vector<std::string> live_day0;
    std::vector<std::string> live_later;
    for (const auto& row : live_occ) {
      const int64_t bucket = std::stoll(row.substr(row.find('|') + 1));
      if (bucket < d0 + 12 * kHour) {
        live_day0.push_back(row);
      } else if (bucket >= d0 + kDay) {
        live_later.push_back(row);
      }
    }
    CHECK(occupancyRows(db, "bucket_ms < " + std::to_string(d0 + kDay)) == live_day0);
    CHECK(occupancyRows(db, "bucket_ms >= " + std::to_string(d0 + kDay) + " AND " + closed) ==
          live_later);
    CHECK(dayRows(db, "1") == live_days);
  }
}

TEST_CASE("history rebuild cli: no database, a gateway answering on its port and a bad day are "
          "refused with their exit status",
          "[history][cli]") {
  hgj::test::TempDir dir;
  const std::string config = writeConfig(fs::path(dir.path()) / "conf");
  const std::string db = dir.path() + "/none.db";
  const int port = hgj::test::freePort();
  const std::string cmd = "history rebuild -c " + config + " --set storage.path=" + db +
                          " --set http.port=" + std::to_string(port);

  Run missing = gateway(cmd);
  CHECK(missing.status == 4);
  CHECK(missing.output.find("no database there") != std::string::npos);
  CHECK_FALSE(fs::exists(db));  // not created by asking

  Run bad_day = gateway(cmd + " --from 2026-13-01");
  CHECK(bad_day.status == 2);
  CHECK(bad_day.output.find("--from: expected a day YYYY-MM-DD") != std::string::npos);

  Run misplaced = gateway("check -c " + config + " --from 2026-12-01");
  CHECK(misplaced.status == 2);

  // Something listening where the gateway's HTTP server would be: a gateway may be running.
  sql(db, "CREATE TABLE readings(id INTEGER PRIMARY KEY, device TEXT, point TEXT, "
                      "value, quality TEXT, ts_ms INTEGER, ingest_ms INTEGER)");
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(::listen(fd, 4) == 0);
  Run running = gateway(cmd);
  CHECK(running.status == 1);
  CHECK(running.output.find("stop the gateway first") != std::string::npos);
  Run forced = gateway(cmd + " --force");
  INFO(forced.output);
  CHECK(forced.status == 0);
  CHECK(forced.output.find("replayed 0 readings") != std::string::npos);
  ::close(fd);
  Run free_again = gateway(cmd);
  CHECK(free_again.status == 0);

  // Root on a database that belongs to the gateway's user would leave a -wal it cannot open.
  if (::geteuid() == 0) {
    REQUIRE(::chown(db.c_str(), 65534, 65534) == 0);
    Run as_root = gateway(cmd);
    CHECK(as_root.status == 1);
    CHECK(as_root.output.find("run as that user") != std::string::npos);
  }
}
