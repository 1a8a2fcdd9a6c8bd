// Remote configuration against the real daemon (docs/remote-config.md): `hgj-gateway run` on a
// copy of the example compound, a real mosquitto as both its local bus and its upstream, bundles
// pushed on hgj/{site}/cmd, every step read back from the upstream topics, the local API and the
// database.
#include <catch2/catch.hpp>

#include <cctype>
#include <chrono>
#include <filesystem>
#include <functional>
#include <fstream>
#include <map>
#include <sstream>
#include <set>
#include <string>

#include <signal.h>
#include <stdlib.h>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "tests/integration/uplink/uplink_harness.h"
#include "tests/support/test_support.h"

using namespace hgj::test;
using hgj::uplink::testing::Recorder;
using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

constexpr const char* kSite = "hgj-demo-001";
constexpr const char* kOperatorToken = "op-token-config-push-test-0123456789";

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void writeFile(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

std::string replaced(std::string text, const std::string& from, const std::string& to) {
  size_t at = text.find(from);
  REQUIRE(at != std::string::npos);
  return text.replace(at, from.size(), to);
}

int64_t nowMs() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// One compound: a broker, the example config copied with the broker's URL written into its
/// main file (so a bundle can change it), and the gateway with config push on and a short
/// health window.
struct Site {
  Broker broker;
  TempDir dir;
  std::map<std::string, std::string> files;  // the bundle of the local config
  std::unique_ptr<GatewayProcess> gw;
  std::unique_ptr<Recorder> rec;
  int http_port = freePort();

  explicit Site(std::vector<std::string> filters = {}) {
    const std::string conf = sourcePath("conf");
    for (const char* f : {"gateway.yaml", "grids.yaml", "devices.yaml", "rules.yaml", "alerts.yaml"}) {
      files[f] = readFile(conf + "/" + f);
    }
    for (const auto& e : std::filesystem::directory_iterator(conf + "/profiles")) {
      files["profiles/" + e.path().filename().string()] = readFile(e.path().string());
    }
    files["gateway.yaml"] = replaced(files["gateway.yaml"], "  url: tcp://127.0.0.1:1883\n  keepalive",
                                     "  url: " + broker.url() + "\n  keepalive");
    for (const auto& [name, text] : files) {
      writeFile(dir.file("conf/" + name), text);
    }
    if (filters.empty()) {
      filters = {std::string("hgj/") + kSite + "/cmd/result", std::string("hgj/") + kSite + "/config"};
    }
    rec = std::make_unique<Recorder>(broker.url(), filters, "config-push-recorder");
  }

  /// `faults`: HGJ_FAULTS for this start only (the child inherits the environment).
  /// `sets`: more --set values (they win over the ones here).
  void start(const std::string& faults = {}, const std::vector<std::string>& sets = {}) {
    std::vector<std::string> argv{binary("hgj-gateway"), "run", "-c", dir.file("conf/gateway.yaml")};
    for (std::string s : {"storage.path=" + dir.file("gw.db"),
                          "http.port=" + std::to_string(http_port),
                          std::string("http.operator_token=") + kOperatorToken,
                          std::string("modbus.enabled=false"),
                          std::string("uplink.enabled=true"), "uplink.url=" + broker.url(),
                          std::string("uplink.config_push.enabled=true"),
                          std::string("uplink.config_push.health_window=4s"),
                          std::string("uplink.config_push.healthy_for=1s")}) {
      argv.push_back("--set");
      argv.push_back(s);
    }
    for (const auto& s : sets) {
      argv.push_back("--set");
      argv.push_back(s);
    }
    if (!faults.empty()) {
      ::setenv("HGJ_FAULTS", faults.c_str(), 1);
    }
    gw = std::make_unique<GatewayProcess>(argv, dir.file("gw.log"), http_port,
                                          std::make_unique<NotifySocket>());
    ::unsetenv("HGJ_FAULTS");
    gw->waitReady();
    // Commands are taken once the uplink is connected (it subscribes to them right then).
    REQUIRE(waitFor([&] { return health("uplink") == "ok"; }, seconds(20)));
  }

  json getJson(const std::string& path) const {
    auto [status, body] = gw->get(path);
    if (status != 200) {
      return nullptr;
    }
    return json::parse(body, nullptr, false);
  }
  json versions() const { return getJson("/api/v1/config/versions"); }
  std::string health(const char* area) const {
    json h = getJson("/healthz");
    return h.is_object() && h.contains(area) && h[area].is_string() ? h[area].get<std::string>()
                                                                    : std::string();
  }

  /// Waits until the daemon has said READY=1 `n` times (it restarts in place, same pid) and its
  /// ingest is subscribed again.
  bool waitReadyCount(size_t n, milliseconds timeout = seconds(30)) {
    if (!gw->notify().waitFor("READY=1", milliseconds(1)) && n > 0) {
      return false;
    }
    if (!waitFor([&] { return gw->notify().count("READY=1") >= n; }, timeout)) {
      return false;
    }
    return waitFor([&] { return health("ingest") == "ok" && health("uplink") == "ok"; }, timeout);
  }

  /// Publishes a command until `done` holds, as a platform retries an unanswered command: again
  /// every 5 s (a command sent before the uplink's subscription reached the broker is lost; a
  /// repeat with the same id is answered with the first result, not executed twice).
  bool sendUntil(const std::string& topic, const std::string& payload,
                 const std::function<bool()>& done, milliseconds total = seconds(45)) {
    const auto give_up = std::chrono::steady_clock::now() + total;
    while (std::chrono::steady_clock::now() < give_up) {
      rec->publish(topic, payload);
      if (waitFor(done, seconds(5))) {
        return true;
      }
    }
    return false;
  }

  /// Pushes a bundle and waits for its answer on cmd/result.
  json push(const std::string& id, int64_t version, const std::map<std::string, std::string>& bundle) {
    json files_json = json::object();
    for (const auto& [name, text] : bundle) {
      files_json[name] = text;
    }
    json cmd = {{"id", id}, {"method", "config_push"}, {"version", version}, {"by", "platform-ops"},
                {"files", files_json}};
    json found;
    sendUntil(std::string("hgj/") + kSite + "/cmd", cmd.dump(), [&] {
      for (const auto& m : rec->on(std::string("hgj/") + kSite + "/cmd/result")) {
        json r = json::parse(m.payload, nullptr, false);
        if (r.is_object() && r["id"] == id) {
          found = r;
          return true;
        }
      }
      return false;
    });
    if (found.is_null()) {
      const std::string out = gw->output();
      WARN("no answer to " << id << "; the gateway's log ends with:\n"
                           << out.substr(out.size() > 3000 ? out.size() - 3000 : 0));
    }
    return found;
  }

  /// The steps reported upstream for one version, in order of arrival (first copies only).
  std::vector<json> steps(int64_t version) const {
    std::vector<json> out;
    std::set<std::string> seen;
    for (const auto& m : rec->on(std::string("hgj/") + kSite + "/config")) {
      json e = json::parse(m.payload, nullptr, false);
      if (e.is_object() && e["version"] == version && seen.insert(e.value("msg_id", "")).second) {
        out.push_back(e);
      }
    }
    return out;
  }
  bool reported(int64_t version, const std::string& event) const {
    for (const auto& e : steps(version)) {
      if (e["event"] == event) {
        return true;
      }
    }
    return false;
  }

  /// A parking sensor reports occupied: true when the gateway counts it (ingest works end to end).
  bool ingests(const std::string& device) {
    json before = getJson("/api/v1/parking");
    if (!before.is_object()) {
      return false;
    }
    const int64_t occupied = before.value("occupied", int64_t{0});
    TestClient client(broker.url());
    client.publish("compound/parking/" + device + "/state",
                   json{{"occupied", true}, {"ts", nowMs()}}.dump());
    return waitFor([&] {
      json p = getJson("/api/v1/parking");
      return p.is_object() && p.value("occupied", int64_t{0}) > occupied;
    });
  }

  std::pair<int, json> rollback(const std::string& by) const {
    httplib::Client cli("127.0.0.1", http_port);
    cli.set_read_timeout(10, 0);
    cli.set_bearer_token_auth(kOperatorToken);
    auto res = cli.Post("/api/v1/config/rollback", json{{"by", by}}.dump(), "application/json");
    if (!res) {
      return {-1, nullptr};
    }
    return {res->status, json::parse(res->body, nullptr, false)};
  }
};

int64_t statusOf(const json& versions, int64_t version, std::string& status) {
  for (const auto& v : versions["versions"]) {
    if (v["version"] == version) {
      status = v["status"].get<std::string>();
      return 1;
    }
  }
  return 0;
}

} // namespace

TEST_CASE("config push: a bad bundle is refused with FILE:LINE errors upstream, nothing changes",
          "[config_push][integration]") {
  Site site;
  site.start();
  REQUIRE(site.ingests("P-B1-0001"));

  auto bad = site.files;
  bad["gateway.yaml"] = replaced(bad["gateway.yaml"], "  keepalive: 30s", "  keepalivee: 30s");
  bad["devices.yaml"] = replaced(bad["devices.yaml"], "profile: parking_sensor_mqtt, grid: G1,",
                                 "profile: parking_sensor_mqtd, grid: G1,");
  json r = site.push("bad-1", 2, bad);
  REQUIRE(r.is_object());
  CHECK(r["ok"] == false);
  CHECK(r["status"] == 400);
  const std::string reason = r["reason"].get<std::string>();
  CHECK(reason.find("gateway.yaml:29: mqtt.keepalivee: ") != std::string::npos);
  CHECK(reason.find("devices.yaml:") != std::string::npos);
  CHECK(reason.find(site.dir.path()) == std::string::npos);  // the bundle's names, not the box's

  REQUIRE(waitFor([&] { return site.reported(2, "refused"); }));
  json refused;
  for (const auto& e : site.steps(2)) {
    if (e["event"] == "refused") {
      refused = e;
    }
  }
  REQUIRE(refused["errors"].is_array());
  for (const auto& line : refused["errors"]) {
    const std::string l = line.get<std::string>();
    INFO(l);
    // Named as in the bundle: "devices.yaml:6: devices[0].profile: ..."
    const auto colon = l.find(':');
    REQUIRE(colon != std::string::npos);
    CHECK(site.files.count(l.substr(0, colon)) == 1);
    CHECK(std::isdigit(static_cast<unsigned char>(l[colon + 1])) != 0);
  }
  CHECK(refused["identity"].get<std::string>().find("#bad-1") != std::string::npos);

  // A bundle that is no configuration at all, or names a file outside itself.
  r = site.push("bad-2", 3, {{"../gateway.yaml", "x: 1"}});
  CHECK(r["ok"] == false);
  CHECK(r["reason"].get<std::string>().find("bad file name") != std::string::npos);
  r = site.push("bad-3", 3, {{"devices.yaml", "devices: []"}});
  CHECK(r["ok"] == false);
  CHECK(r["reason"].get<std::string>().find("no gateway.yaml") != std::string::npos);

  // The running config is untouched: no restart, no stored version, ingest as before.
  json v = site.versions();
  REQUIRE(v.is_object());
  CHECK(v["active"] == 0);
  CHECK(v["versions"].empty());
  CHECK(site.gw->notify().count("READY=1") == 1);
  CHECK(site.ingests("P-B1-0002"));
  CHECK(queryInt(site.dir.file("gw.db"),
                 "SELECT count(*) FROM config_audit WHERE event = 'refused' AND version = 2") == 1);
}

TEST_CASE("config push: a good bundle is applied, confirmed and reported, and an operator rolls it back",
          "[config_push][integration]") {
  Site site;
  site.start();
  auto good = site.files;
  good["gateway.yaml"] = replaced(good["gateway.yaml"], "  title: 车位", "  title: 车位 v2");
  json r = site.push("good-1", 2, good);
  REQUIRE(r.is_object());
  CHECK(r["ok"] == true);
  CHECK(r["status"] == 200);

  REQUIRE(site.waitReadyCount(2));
  REQUIRE(waitFor([&] { return site.reported(2, "confirmed"); }, seconds(20)));
  std::vector<std::string> order;
  for (const auto& e : site.steps(2)) {
    // A retry of the same command that reached the gateway after its restart is refused as not
    // newer (with its own "received"); only a loaded box gets there.
    const std::string ev = e["event"].get<std::string>();
    const bool retry = ev == "refused" || (ev == "received" && !order.empty());
    if (!retry) {
      order.push_back(ev);
    }
  }
  CHECK(order == std::vector<std::string>{"received", "accepted", "applied", "confirmed"});
  json v = site.versions();
  CHECK(v["active"] == 2);
  CHECK(v["trial"].is_null());
  std::string status;
  REQUIRE(statusOf(v, 2, status) == 1);
  CHECK(status == "confirmed");
  CHECK(site.getJson("/api/v1/parking")["title"] == "车位 v2");
  CHECK(site.ingests("P-B1-0003"));
  CHECK(queryInt(site.dir.file("gw.db"),
                 "SELECT count(*) FROM config_audit WHERE version = 2 AND event = 'accepted' AND "
                 "by = 'platform-ops' AND identity LIKE 'upstream:%#good-1'") == 1);

  // The operator goes back from the local API: the local files run again.
  auto [code, answer] = site.rollback("Wang Fang");
  REQUIRE(code == 200);
  CHECK(answer["rolled_back"] == 2);
  CHECK(answer["active"] == 0);
  REQUIRE(site.waitReadyCount(3));
  CHECK(site.versions()["active"] == 0);
  CHECK(site.getJson("/api/v1/parking")["title"] == "车位");
  CHECK(waitFor([&] { return site.reported(2, "rolled_back"); }));
  CHECK(queryInt(site.dir.file("gw.db"),
                 "SELECT count(*) FROM config_audit WHERE version = 2 AND event = 'rolled_back' AND "
                 "by = 'Wang Fang' AND identity = 'api:operator'") == 1);
  CHECK(site.ingests("P-B1-0004"));
}

TEST_CASE("config push: a bundle that breaks ingest is rolled back by itself within the health window",
          "[config_push][integration]") {
  Site site;
  site.start();
  const int dead_port = freePort();  // nothing listens there
  auto broken = site.files;
  broken["gateway.yaml"] = replaced(broken["gateway.yaml"], "  url: " + site.broker.url() + "\n",
                                    "  url: tcp://127.0.0.1:" + std::to_string(dead_port) + "\n");
  json r = site.push("broken-1", 5, broken);
  REQUIRE(r["ok"] == true);
  // Restarted onto it: READY again, but ingest is never healthy.
  REQUIRE(waitFor([&] { return site.gw->notify().count("READY=1") >= 2; }, seconds(30)));
  const auto restarted = std::chrono::steady_clock::now();
  // Back on the local files by itself (another restart), within the 4 s window plus a restart.
  REQUIRE(site.waitReadyCount(3, seconds(30)));
  CHECK(std::chrono::steady_clock::now() - restarted < seconds(20));
  json v = site.versions();
  CHECK(v["active"] == 0);
  std::string status;
  REQUIRE(statusOf(v, 5, status) == 1);
  CHECK(status == "rolled_back");
  REQUIRE(waitFor([&] { return site.reported(5, "rolled_back"); }));
  CHECK_FALSE(site.reported(5, "confirmed"));
  CHECK(site.ingests("P-B1-0005"));
}

TEST_CASE("config push: kill -9 at any step of applying leaves a complete config",
          "[config_push][integration][faults]") {
  // 1: the files staged, not durable; 2: the version stored, the manifest not switched;
  // 3: the manifest switched, the restart not done.
  for (int step : {1, 2, 3}) {
    DYNAMIC_SECTION("killed at step " << step) {
      Site site;
      site.start("config_apply_kill_at=" + std::to_string(step));
      auto good = site.files;
      good["gateway.yaml"] = replaced(good["gateway.yaml"], "  title: 车位", "  title: 车位 v7");
      json cmd = {{"id", "kill-" + std::to_string(step)}, {"method", "config_push"},
                  {"version", 7}, {"files", json(good)}};
      REQUIRE(site.sendUntil(std::string("hgj/") + kSite + "/cmd", cmd.dump(),
                             [&] { return !site.gw->running(); }));
      REQUIRE(site.gw->wait(seconds(1)) == 128 + SIGKILL);

      site.start();
      json v = site.versions();
      REQUIRE(v.is_object());
      if (step < 3) {
        CHECK(v["active"] == 0);
        CHECK(site.getJson("/api/v1/parking")["title"] == "车位");
        // The same version can be pushed again and is applied whole.
        json r = site.push("again", 7, good);
        CHECK(r["ok"] == true);
        REQUIRE(site.waitReadyCount(2));
      }
      REQUIRE(waitFor([&] { return site.versions()["active"] == 7; }));
      CHECK(site.getJson("/api/v1/parking")["title"] == "车位 v7");
      REQUIRE(waitFor([&] { return site.reported(7, "confirmed"); }, seconds(20)));
      CHECK(site.ingests("P-B1-0006"));
    }
  }
}

TEST_CASE("config push: over a ThingsBoard RPC a bad bundle gets its FILE:LINE errors, a good one is applied",
          "[config_push][integration][thingsboard]") {
  Site site({"v1/devices/me/rpc/response/+", "v1/devices/me/telemetry"});
  site.start({}, {"uplink.mode=thingsboard", "uplink.thingsboard.access_token=tb-gateway-token"});
  auto rpc = [&](int request, int64_t version, const std::map<std::string, std::string>& files) {
    json cmd = {{"method", "config_push"}, {"params", {{"version", version}, {"files", json(files)}}}};
    const std::string answer_topic = "v1/devices/me/rpc/response/" + std::to_string(request);
    json found;
    site.sendUntil("v1/devices/me/rpc/request/" + std::to_string(request), cmd.dump(), [&] {
      for (const auto& m : site.rec->on(answer_topic)) {
        found = json::parse(m.payload, nullptr, false);
        return true;
      }
      return false;
    });
    return found;
  };
  auto bad = site.files;
  bad["gateway.yaml"] = replaced(bad["gateway.yaml"], "  keepalive: 30s", "  keepalivee: 30s");
  json r = rpc(41, 2, bad);
  REQUIRE(r.is_object());
  CHECK(r["success"] == false);
  CHECK(r["status"] == 400);
  CHECK(r["reason"].get<std::string>().find("gateway.yaml:29: mqtt.keepalivee: ") != std::string::npos);
  CHECK(site.gw->notify().count("READY=1") == 1);

  auto good = site.files;
  good["gateway.yaml"] = replaced(good["gateway.yaml"], "  title: 车位", "  title: 车位 tb");
  r = rpc(42, 3, good);
  REQUIRE(r.is_object());
  CHECK(r["success"] == true);
  REQUIRE(site.waitReadyCount(2));
  // The steps are the gateway device's telemetry: config_event, config_version, ...
  REQUIRE(waitFor(
      [&] {
        for (const auto& m : site.rec->on("v1/devices/me/telemetry")) {
          json t = json::parse(m.payload, nullptr, false);
          if (t.is_object() && t["values"].value("config_event", "") == "confirmed" &&
              t["values"].value("config_version", int64_t{0}) == 3) {
            return true;
          }
        }
        return false;
      },
      seconds(20)));
  CHECK(site.versions()["active"] == 3);
  CHECK(site.getJson("/api/v1/parking")["title"] == "车位 tb");
}
