// Seven days of a small compound, compressed, through the daemon (issue 17): the readings carry
// source times spread over the 7 days (the injected clock of history is the readings' source
// time), are published as fast as the broker takes them, and the rollups the gateway stores are
// checked against figures this test computes on its own from what it sent. Then the history is
// rebuilt from the `readings` table and must come out the same, and the API serves it as JSON
// and CSV.
#include <algorithm>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <signal.h>

#include "gateway/config/config.h"
#include "gateway/history/rollups.h"
#include "gateway/storage/sqlite.h"
#include "tests/support/test_support.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr int64_t kMin = 60'000;
constexpr int64_t kHour = 60 * kMin;
constexpr int64_t kDay = 24 * kHour;
constexpr int64_t kOffset = 8 * kHour;  // +08:00
constexpr int64_t kDebounce = 5000;

std::string writeConfig(const fs::path& dir) {
  fs::create_directories(dir);
  hgj::test::writeFile(dir / "gateway.yaml", R"(site: {id: hist-e2e, name: 历史测试小区}
include:
  grids: grids.yaml
  devices: devices.yaml
  rules: rules.yaml
  alerts: alerts.yaml
  profiles: )" + hgj::test::sourcePath("conf/profiles") + R"(
)");
  hgj::test::writeFile(dir / "grids.yaml", R"(grids:
  - id: G1
    name: 车库网格
    staff: [{name: 张伟, phone: "13800000001"}]
    channels: [upstream]
  - id: G3
    name: 车棚网格
    staff: [{name: 刘强, phone: "13800000003"}]
    channels: [upstream]
)");
  hgj::test::writeFile(dir / "alerts.yaml", "alerts:\n  channels:\n    - {id: upstream, type: upstream}\n");
  hgj::test::writeFile(dir / "devices.yaml", R"(devices:
  - {id: "P-B1-{n:04}", range: [1, 4], profile: parking_sensor_mqtt, grid: G1,
     location: {level: B1, zone: A}}
  - {id: "P-B2-{n:04}", range: [1, 4], profile: parking_sensor_mqtt, grid: G1,
     location: {level: B2, zone: A}}
  - {id: "P-G-{n:04}", range: [1, 2], profile: parking_sensor_mqtt, grid: G1, category: visitor,
     location: {level: G, zone: E}}
  - {id: "EV-{n:02}", range: [1, 2], profile: ev_pile_mqtt, grid: G1, location: {level: B2}}
  - {id: S01, profile: ebike_shed_mqtt, grid: G3, ports: 2, location: {building: 1号车棚区}}
)");
  hgj::test::writeFile(dir / "rules.yaml", R"(rules:
  - name: port_hot
    kind: threshold
    select: {type: ebike_port}
    point: temp_c
    op: ">"
    value: 60
    clear: 55
    severity: warning
    message: "{device} {location}: 温度 {value}°C"
occupancy:
  debounce: 5s
)");
  return (dir / "gateway.yaml").string();
}

struct Msg {
  int64_t ts;
  std::string topic;
  std::string payload;
};

std::string localDay(int64_t unix_ms) {
  std::time_t t = static_cast<std::time_t>((unix_ms + kOffset) / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
  return buf;
}

/// The counted occupancy of one space over time, from its readings: unknown before the first,
/// then a change between free and occupied counts from `kDebounce` after the reading that began
/// it, unless a reading of the counted value came first. Returns (time, occupied) steps.
std::vector<std::pair<int64_t, bool>> countedTimeline(const std::vector<std::pair<int64_t, bool>>& rd) {
  std::vector<std::pair<int64_t, bool>> out;
  if (rd.empty()) {
    return out;
  }
  bool counted = rd[0].second;
  out.push_back(rd[0]);
  // A flag beside the pair rather than std::optional: GCC 12's Release build reports a false
  // -Wmaybe-uninitialized on the optional's payload.
  bool pending = false;
  std::pair<int64_t, bool> cand{0, false};
  for (size_t i = 1; i < rd.size(); ++i) {
    auto [t, v] = rd[i];
    if (pending && cand.first + kDebounce <= t) {
      counted = cand.second;
      out.emplace_back(cand.first + kDebounce, counted);
      pending = false;
    }
    if (v == counted) {
      pending = false;
    } else if (!pending) {
      cand = rd[i];
      pending = true;
    }
  }
  if (pending) {
    out.emplace_back(cand.first + kDebounce, cand.second);
  }
  return out;
}

struct HourFigures {
  double mean = 0;
  int peak = 0;
  double minutes_full = 0;
};

/// Hour figures of a set of spaces from their timelines, for hours [from, to).
std::map<int64_t, HourFigures> hourly(const std::vector<std::vector<std::pair<int64_t, bool>>>& tls,
                                      int64_t from, int64_t to) {
  // Every change of every space, in time order, and the occupied count after it.
  std::vector<std::pair<int64_t, int>> deltas;
  for (const auto& tl : tls) {
    bool prev = false;
    for (auto [t, v] : tl) {
      if (v != prev) {
        deltas.emplace_back(t, v ? 1 : -1);
      }
      prev = v;
    }
  }
  std::sort(deltas.begin(), deltas.end());
  std::map<int64_t, HourFigures> out;
  int occ = 0;
  size_t di = 0;
  const int total = static_cast<int>(tls.size());
  for (int64_t h = from; h < to; h += kHour) {
    while (di < deltas.size() && deltas[di].first <= h) {
      occ += deltas[di++].second;
    }
    HourFigures f;
    f.peak = occ;
    int64_t t = h;
    double integral = 0;
    double full_ms = 0;
    while (true) {
      int64_t next = di < deltas.size() && deltas[di].first < h + kHour ? deltas[di].first : h + kHour;
      integral += static_cast<double>(occ) * static_cast<double>(next - t);
      if (occ == total) {
        full_ms += static_cast<double>(next - t);
      }
      t = next;
      if (t >= h + kHour) {
        break;
      }
      while (di < deltas.size() && deltas[di].first == t) {
        occ += deltas[di++].second;
      }
      f.peak = std::max(f.peak, occ);
    }
    f.mean = integral / static_cast<double>(kHour);
    f.minutes_full = full_ms / static_cast<double>(kMin);
    out[h] = f;
  }
  return out;
}

std::map<std::string, double> dayRows(const std::string& db, const std::string& metric,
                                      const std::string& key) {
  std::map<std::string, double> out;
  for (const auto& row : hgj::test::queryRows(
           db, "SELECT day, value FROM history_day WHERE metric='" + metric + "' AND key='" +
                   key + "' ORDER BY day")) {
    auto bar = row.find('|');
    out[row.substr(0, bar)] = std::stod(row.substr(bar + 1));
  }
  return out;
}

} // namespace

TEST_CASE("history: seven compressed days through the daemon give the rollups computed from the "
          "raw readings, and a rebuild from readings gives them again",
          "[history][e2e]") {
  hgj::test::TempDir dir;
  hgj::test::Broker broker;
  const std::string config = writeConfig(fs::path(dir.path()) / "conf");
  const std::string db = dir.path() + "/hgj.db";

  // Day 0 starts at a local midnight 8 days ago; 7 days of readings follow.
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  const int64_t d0 = ((now - 8 * kDay + kOffset) / kDay) * kDay - kOffset;
  const int64_t end = d0 + 7 * kDay;
  std::mt19937 rng(20261206);
  std::vector<Msg> msgs;
  std::map<std::string, std::vector<std::pair<int64_t, bool>>> space_rd;
  std::vector<std::string> spaces;
  for (int n = 1; n <= 4; ++n) {
    spaces.push_back("P-B1-000" + std::to_string(n));
    spaces.push_back("P-B2-000" + std::to_string(n));
  }
  spaces.push_back("P-G-0001");
  spaces.push_back("P-G-0002");
  for (const auto& id : spaces) {
    // Evening peaks on B2: spaces stay occupied longer after 18:00 local.
    bool occ = false;
    for (int64_t t = d0; t < end;) {
      space_rd[id].emplace_back(t, occ);
      msgs.push_back({t, "compound/parking/" + id + "/state",
                      std::string("{\"occupied\":") + (occ ? "true" : "false") +
                          ",\"ts\":" + std::to_string(t) + "}"});
      if (rng() % 7 == 0) {
        // A car passing over the sensor: a flap shorter than the debounce.
        int64_t f = t + 1000 + static_cast<int64_t>(rng() % 3000);
        for (bool v : {!occ, occ}) {
          space_rd[id].emplace_back(f, v);
          msgs.push_back({f, "compound/parking/" + id + "/state",
                          std::string("{\"occupied\":") + (v ? "true" : "false") +
                              ",\"ts\":" + std::to_string(f) + "}"});
          f += 1500;
        }
      }
      const int hour = static_cast<int>(((t + kOffset) % kDay) / kHour);
      const bool evening = hour >= 18 && id.rfind("P-B2", 0) == 0;
      t += (evening && occ ? 90 : 10) * kMin + static_cast<int64_t>(rng() % (40 * kMin));
      occ = evening ? (rng() % 5 != 0) : !occ;
    }
  }
  // EV piles: sessions with a session counter that restarts at 0, reports every 10 minutes.
  std::map<std::string, std::vector<std::pair<int64_t, std::pair<std::string, double>>>> pile_rd;
  for (const std::string id : {"EV-01", "EV-02"}) {
    double kwh = 0;
    bool charging = false;
    for (int64_t t = d0 + 3 * kMin; t < end; t += 10 * kMin) {
      if (rng() % 12 == 0) {
        charging = !charging;
        if (charging) {
          kwh = 0;
        }
      }
      if (charging) {
        kwh += 1.1 + static_cast<double>(rng() % 10) / 10.0;
      }
      std::string state = charging ? "charging" : "idle";
      pile_rd[id].push_back({t, {state, kwh}});
      char payload[160];
      std::snprintf(payload, sizeof payload,
                    "{\"state\":\"%s\",\"power_kw\":%.1f,\"energy_kwh\":%.3f,\"ts\":%lld}",
                    state.c_str(), charging ? 6.8 : 0.0, kwh, static_cast<long long>(t));
      msgs.push_back({t, "compound/ev/" + id + "/status", payload});
    }
  }
  // E-bike ports: power every 2 minutes, a gap of 20 minutes now and then, a hot port daily.
  std::map<std::string, std::vector<std::pair<int64_t, double>>> port_rd;
  int hot_sent = 0;
  for (const std::string port : {"P01", "P02"}) {
    for (int64_t t = d0 + kMin; t < end; t += 2 * kMin) {
      if (rng() % 200 == 0) {
        t += 20 * kMin;
        if (t >= end) {
          break;
        }
      }
      const double w = static_cast<double>(rng() % 450);
      const bool hot = port == "P01" && ((t - d0) % kDay) == 11 * kHour + kMin;
      hot_sent += hot ? 1 : 0;
      port_rd[port].emplace_back(t, w);
      char payload[160];
      std::snprintf(payload, sizeof payload,
                    "{\"current_a\":%.2f,\"power_w\":%.0f,\"temp_c\":%.1f,\"ts\":%lld}",
                    w / 230.0, w, hot ? 75.0 : 30.0, static_cast<long long>(t));
      msgs.push_back({t, "compound/ebike/S01/" + port + "/telemetry", payload});
    }
  }
  // One reading per space report; three per pile and per port report (all their points).
  size_t readings = 0;
  for (const auto& m : msgs) {
    readings += m.topic.rfind("compound/parking/", 0) == 0 ? 1 : 3;
  }
  std::stable_sort(msgs.begin(), msgs.end(),
                   [](const Msg& a, const Msg& b) { return a.ts < b.ts; });
  REQUIRE(hot_sent == 7);

  {
    auto gw = hgj::test::startGateway(broker.url(), db, dir.path() + "/gateway1.log", {},
                                      config);
    hgj::test::TestClient feed(broker.url(), "hist-e2e-feed");
    for (const auto& m : msgs) {
      feed.publish(m.topic, m.payload);
    }
    // Every reading stored: the pipeline has seen them all.
    REQUIRE(hgj::test::waitFor(
        [&] {
          return hgj::test::queryInt(db, "SELECT count(*) FROM readings") ==
                 static_cast<long long>(readings);
        },
        std::chrono::seconds(120)));
    gw->signal(SIGTERM);
    REQUIRE(gw->wait(std::chrono::seconds(30)) == 0);
  }

  // Occupancy per hour: B2 (the evening peaks), the visitor category and the site, for every
  // hour the history has closed (all but the last, still open when the feed ended).
  auto timelines = [&](const std::function<bool(const std::string&)>& pick) {
    std::vector<std::vector<std::pair<int64_t, bool>>> out;
    for (const auto& id : spaces) {
      if (pick(id)) {
        out.push_back(countedTimeline(space_rd[id]));
      }
    }
    return out;
  };
  const int64_t last_ts = msgs.back().ts;
  const int64_t closed_to = (last_ts / kHour) * kHour;
  struct Case {
    std::string scope;
    std::function<bool(const std::string&)> pick;
  };
  std::vector<Case> cases = {
      {"level:B2", [](const std::string& id) { return id.rfind("P-B2", 0) == 0; }},
      {"category:visitor", [](const std::string& id) { return id.rfind("P-G", 0) == 0; }},
      {"site", [](const std::string&) { return true; }}};
  double b2_peak_max = 0;
  for (const auto& c : cases) {
    INFO("scope " << c.scope);
    auto expected = hourly(timelines(c.pick), d0, closed_to);
    auto rows = hgj::test::queryRows(
        db, "SELECT bucket_ms, mean_occupied, peak_occupied, minutes_full FROM history_occupancy "
            "WHERE step_s=3600 AND scope='" + c.scope + "' AND bucket_ms < " +
                std::to_string(closed_to) + " ORDER BY bucket_ms");
    REQUIRE(rows.size() == expected.size());
    size_t mismatches = 0;
    for (const auto& row : rows) {
      long long at = 0;
      double mean = 0;
      int peak = 0;
      double full = 0;
      REQUIRE(std::sscanf(row.c_str(), "%lld|%lf|%d|%lf", &at, &mean, &peak, &full) == 4);
      const HourFigures& e = expected.at(at);
      if (std::fabs(e.mean - mean) > 1e-6 || e.peak != peak ||
          std::fabs(e.minutes_full - full) > 1e-6) {
        ++mismatches;
        UNSCOPED_INFO("hour " << at << ": expected mean " << e.mean << " peak " << e.peak
                              << " full " << e.minutes_full << ", got " << row);
      }
      if (c.scope == "level:B2") {
        b2_peak_max = std::max<double>(b2_peak_max, peak);
      }
    }
    CHECK(mismatches == 0);
  }
  CHECK(b2_peak_max == 4);  // the evenings fill B2

  // Energy and sessions per pile per day.
  for (const auto& [pile, rd] : pile_rd) {
    INFO("pile " << pile);
    std::map<std::string, double> kwh;
    std::map<std::string, double> sessions;
    std::optional<double> last;
    bool charging = false;
    for (const auto& [t, sv] : rd) {
      const auto& [state, e] = sv;
      if (last) {
        double step = e - *last;
        double d = step >= 0 ? step : e;
        if (d > 0) {
          kwh[localDay(t)] += d;
        }
      }
      last = e;
      if (state == "charging" && !charging) {
        sessions[localDay(t)] += 1;
      }
      charging = state == "charging";
    }
    auto got = dayRows(db, "energy_kwh_pile", pile);
    REQUIRE(got.size() == kwh.size());
    for (const auto& [day, v] : kwh) {
      CHECK(got[day] == Approx(v).epsilon(1e-9));
    }
    CHECK(dayRows(db, "sessions_pile", pile) == sessions);
  }

  // Energy per shed per day: its ports' power, held between reports at most 5 minutes apart.
  std::map<std::string, double> shed_kwh;
  for (const auto& [port, rd] : port_rd) {
    for (size_t i = 1; i < rd.size(); ++i) {
      int64_t gap = rd[i].first - rd[i - 1].first;
      if (gap > 0 && gap <= 5 * kMin && rd[i - 1].second > 0) {
        shed_kwh[localDay(rd[i - 1].first)] +=
            rd[i - 1].second * static_cast<double>(gap) / 3'600'000'000.0;
      }
    }
  }
  auto shed_got = dayRows(db, "energy_kwh_shed", "S01");
  REQUIRE(shed_got.size() == shed_kwh.size());
  for (const auto& [day, v] : shed_kwh) {
    CHECK(shed_got[day] == Approx(v).epsilon(1e-9));
  }

  // Alerts per kind, shed and grid per day (by the day they were raised on the box).
  long long raised = hgj::test::queryInt(db, "SELECT count(*) FROM alerts WHERE rule='port_hot'");
  CHECK(raised == 7);
  double kind_total = 0;
  for (auto [d, v] : dayRows(db, "alerts_kind", "port_hot")) {
    kind_total += v;
  }
  CHECK(kind_total == raised);
  double shed_total = 0;
  for (auto [d, v] : dayRows(db, "alerts_shed", "S01")) {
    shed_total += v;
  }
  CHECK(shed_total == raised);
  double grid_total = 0;
  for (auto [d, v] : dayRows(db, "alerts_grid", "G3")) {
    grid_total += v;
  }
  CHECK(grid_total == raised);

  // Rebuilt from readings (a database filled before the history existed): the same rows.
  const std::string copy = dir.path() + "/rebuilt.db";
  {
    hgj::storage::Database src(db);
    src.checkpoint(true);
  }
  fs::copy_file(db, copy);
  {
    hgj::core::Diagnostics diag;
    auto cfg = hgj::config::loadConfig(config, {}, diag);
    REQUIRE(diag.ok());
    hgj::storage::Database rdb(copy);
    rdb.exec("DELETE FROM history_occupancy; DELETE FROM history_day;");
    CHECK(hgj::history::rebuild(rdb, cfg.history, cfg.compound) ==
          static_cast<int64_t>(readings));
  }
  auto dump = [&](const std::string& path) {
    return hgj::test::queryRows(
        path, "SELECT step_s, bucket_ms, scope, total, round(mean_occupied, 9), peak_occupied, "
              "min_free, round(minutes_full, 9) FROM history_occupancy WHERE bucket_ms < " +
                  std::to_string(closed_to) + " ORDER BY 1, 3, 2");
  };
  CHECK(dump(copy) == dump(db));
  CHECK(hgj::test::queryRows(copy, "SELECT day, metric, key, round(value, 9) FROM history_day "
                                   "WHERE metric NOT LIKE 'alerts%' ORDER BY 1, 2, 3") ==
        hgj::test::queryRows(db, "SELECT day, metric, key, round(value, 9) FROM history_day "
                                 "WHERE metric NOT LIKE 'alerts%' ORDER BY 1, 2, 3"));

  // The API serves it: B2's peak per day equals the stored hours', CSV with a header.
  auto gw = hgj::test::startGateway(broker.url(), db, dir.path() + "/gateway2.log", {}, config);
  auto [st, body] = gw->get("/api/v1/history/occupancy?scope=level:B2&step=1d&from=" +
                            std::to_string(d0) + "&to=" + std::to_string(d0 + kDay));
  REQUIRE(st == 200);
  json j = json::parse(body);
  REQUIRE(j["rows"].size() == 1);
  long long day_peak = hgj::test::queryInt(
      db, "SELECT MAX(peak_occupied) FROM history_occupancy WHERE step_s=3600 AND "
          "scope='level:B2' AND bucket_ms >= " + std::to_string(d0) + " AND bucket_ms < " +
              std::to_string(d0 + kDay));
  CHECK(j["rows"][0]["peak_occupied"] == day_peak);
  CHECK(j["rows"][0]["buckets"] == 24);
  auto [cst, csv] = gw->get("/api/v1/history/energy?by=pile&format=csv&from=" + localDay(d0) +
                            "&to=" + localDay(end - 1));
  REQUIRE(cst == 200);
  CHECK(csv.rfind("day,key,value\r\n", 0) == 0);
  CHECK(std::count(csv.begin(), csv.end(), '\n') ==
        static_cast<long>(1 + dayRows(db, "energy_kwh_pile", "EV-01").size() +
                          dayRows(db, "energy_kwh_pile", "EV-02").size()));
}
