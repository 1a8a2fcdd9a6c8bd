// The remote-configuration state machine at start-up (gateway/config_push): which config runs
// after a restart, without the daemon. The daemon-level paths (push, apply, health window,
// kill -9) are in tests/integration/config_push.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/clock.h"
#include "gateway/config/config.h"
#include "gateway/config_push/config_versions.h"
#include "gateway/config_push/remote_config.h"
#include "tests/support/test_support.h"

using namespace hgj;
using config_push::ConfigState;
using config_push::ConfigVersions;
using config_push::RemoteConfig;
namespace fs = std::filesystem;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// The example compound copied to a temp dir, its database there too.
struct Box {
  test::TempDir dir;
  std::map<std::string, std::string> files;
  std::vector<config::Override> overrides;
  std::string main;

  Box() {
    const fs::path conf = test::sourcePath("conf");
    for (const char* f : {"gateway.yaml", "grids.yaml", "devices.yaml", "rules.yaml", "alerts.yaml"}) {
      files[f] = slurp(conf / f);
    }
    for (const auto& e : fs::directory_iterator(conf / "profiles")) {
      files["profiles/" + e.path().filename().string()] = slurp(e.path());
    }
    for (const auto& [name, text] : files) {
      fs::create_directories(fs::path(dir.file("conf/" + name)).parent_path());
      std::ofstream(dir.file("conf/" + name), std::ios::binary) << text;
    }
    main = dir.file("conf/gateway.yaml");
    overrides = {{"storage.path", dir.file("gw.db")}};
  }

  config::GatewayConfig base() const {
    core::Diagnostics diag;
    auto cfg = config::loadConfig(main, overrides, diag);
    REQUIRE(diag.ok());
    return cfg;
  }

  /// Stores version `v` with the parking title `title` and returns the store.
  void store(int64_t v, const std::string& title, const std::string& status) {
    ConfigVersions versions(ConfigVersions::dirFor(dir.file("gw.db")));
    auto bundle = files;
    auto& g = bundle["gateway.yaml"];
    g.replace(g.find("  title: 车位"), std::string("  title: 车位").size(), "  title: " + title);
    versions.commit(versions.stage(bundle), v);
    ConfigState s = versions.load();
    config_push::VersionEntry e;
    e.version = v;
    e.status = status;
    s.versions.push_back(e);
    versions.save(s);
  }

  void activate(int64_t v, std::optional<config_push::Trial> trial = std::nullopt) {
    ConfigVersions versions(ConfigVersions::dirFor(dir.file("gw.db")));
    ConfigState s = versions.load();
    s.active = v;
    s.trial = trial;
    s.base_mtime_ns = config_push::fileMtimeNs(main);
    versions.save(s);
  }

  ConfigState state() const {
    return ConfigVersions(ConfigVersions::dirFor(dir.file("gw.db"))).load();
  }
};

std::string statusOf(const ConfigState& s, int64_t v) {
  for (const auto& e : s.versions) {
    if (e.version == v) {
      return e.status;
    }
  }
  return "";
}

} // namespace

TEST_CASE("config push boot: without a manifest the local files run and nothing is written",
          "[config_push]") {
  Box box;
  RemoteConfig rc(box.main, {}, box.base(), core::SystemClock::instance());
  auto cfg = rc.boot(box.base());
  CHECK(rc.active() == 0);
  CHECK(cfg.compound->parking_title == "车位");
  CHECK_FALSE(fs::exists(ConfigVersions::dirFor(box.dir.file("gw.db"))));
}

TEST_CASE("config push boot: the active bundle runs, with the box's storage path", "[config_push]") {
  Box box;
  box.store(4, "车位 v4", "confirmed");
  box.activate(4);
  RemoteConfig rc(box.main, {}, box.base(), core::SystemClock::instance());
  auto cfg = rc.boot(box.base());
  CHECK(rc.active() == 4);
  CHECK(cfg.compound->parking_title == "车位 v4");
  CHECK(cfg.storage.path == box.dir.file("gw.db"));
  CHECK(rc.source().first == ConfigVersions(ConfigVersions::dirFor(box.dir.file("gw.db"))).mainFile(4));
}

TEST_CASE("config push boot: a local edit of the main file wins over an applied bundle",
          "[config_push]") {
  Box box;
  box.store(4, "车位 v4", "confirmed");
  box.activate(4);
  // The installer edits the local file after the push (a later mtime).
  fs::last_write_time(box.main, fs::last_write_time(box.main) + std::chrono::seconds(5));
  RemoteConfig rc(box.main, {}, box.base(), core::SystemClock::instance());
  auto cfg = rc.boot(box.base());
  CHECK(rc.active() == 0);
  CHECK(cfg.compound->parking_title == "车位");
  ConfigState s = box.state();
  CHECK(s.active == 0);
  REQUIRE_FALSE(s.events.empty());
  CHECK(s.events.back()["event"] == "superseded");
}

TEST_CASE("config push boot: a bundle on trial that keeps restarting is given up at its fourth start",
          "[config_push]") {
  Box box;
  box.store(3, "车位 v3", "confirmed");
  box.store(5, "车位 v5", "trial");
  box.activate(5, config_push::Trial{5, 3, 0, 0});
  for (int start = 1; start <= 3; ++start) {
    RemoteConfig rc(box.main, {}, box.base(), core::SystemClock::instance());
    auto cfg = rc.boot(box.base());
    INFO("start " << start);
    CHECK(rc.active() == 5);
    CHECK(box.state().trial->boots == start);
  }
  RemoteConfig rc(box.main, {}, box.base(), core::SystemClock::instance());
  auto cfg = rc.boot(box.base());
  CHECK(rc.active() == 3);
  CHECK(cfg.compound->parking_title == "车位 v3");
  ConfigState s = box.state();
  CHECK(s.active == 3);
  CHECK_FALSE(s.trial.has_value());
  CHECK(statusOf(s, 5) == "failed");
}

TEST_CASE("config push boot: a stored bundle that no longer loads is failed, the previous good one runs",
          "[config_push]") {
  Box box;
  box.store(2, "车位 v2", "confirmed");
  box.store(6, "车位 v6", "confirmed");
  box.activate(6);
  // Something on the box broke version 6 (a file removed by hand).
  fs::remove(ConfigVersions(ConfigVersions::dirFor(box.dir.file("gw.db"))).versionDir(6) +
             "/devices.yaml");
  RemoteConfig rc(box.main, {}, box.base(), core::SystemClock::instance());
  auto cfg = rc.boot(box.base());
  CHECK(rc.active() == 2);
  CHECK(cfg.compound->parking_title == "车位 v2");
  CHECK(statusOf(box.state(), 6) == "failed");
  // And the daemon failing to start on version 2 goes back to the local files.
  CHECK(rc.startFailed("http: cannot listen on 127.0.0.1:8080"));
  CHECK(box.state().active == 0);
  CHECK(statusOf(box.state(), 2) == "failed");
  CHECK_FALSE(rc.startFailed("again"));
}

TEST_CASE("config push: problems are named by the bundle's files, not the staging directory",
          "[config_push]") {
  core::Diagnostics diag;
  diag.error({"/var/lib/hgj/config-versions/tmp-1-1/devices.yaml", 12}, "devices[3].grid",
             "unknown grid \"G9\"");
  diag.error({"--set:2", 0}, "http.port", "expected 1..65535");
  auto lines = RemoteConfig::problemLines(diag, "/var/lib/hgj/config-versions/tmp-1-1");
  REQUIRE(lines.size() == 2);
  CHECK(std::find(lines.begin(), lines.end(),
                  "devices.yaml:12: devices[3].grid: unknown grid \"G9\"") != lines.end());
}
