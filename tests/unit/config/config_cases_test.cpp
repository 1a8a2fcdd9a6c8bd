// Walks tests/config_cases/<case>/: each holds a gateway.yaml (plus what it includes) and an
// expected.txt with the exact problems `hgj-gateway check` must report, paths relative to the
// case folder (empty: the config must be valid).
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <catch2/catch.hpp>

#include "gateway/config/config.h"
#include "tests/support/test_support.h"

namespace fs = std::filesystem;

namespace {

std::string readFile(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string replaceAll(std::string s, const std::string& from, const std::string& to) {
  size_t pos = 0;
  while ((pos = s.find(from, pos)) != std::string::npos) {
    s.replace(pos, from.size(), to);
    pos += to.size();
  }
  return s;
}

} // namespace

TEST_CASE("config cases: every case reports exactly its expected problems", "[config]") {
  fs::path root = hgj::test::sourcePath("tests/config_cases");
  std::vector<fs::path> cases;
  for (const auto& e : fs::directory_iterator(root)) {
    if (e.is_directory() && fs::exists(e.path() / "expected.txt")) {
      cases.push_back(e.path());
    }
  }
  std::sort(cases.begin(), cases.end());
  REQUIRE(cases.size() >= 15);
  for (const auto& dir : cases) {
    DYNAMIC_SECTION(dir.filename().string()) {
      std::vector<hgj::config::Override> overrides;
      if (fs::exists(dir / "overrides.txt")) {
        std::istringstream in(readFile(dir / "overrides.txt"));
        std::string line;
        while (std::getline(in, line)) {
          if (auto o = hgj::config::parseOverride(line)) {
            overrides.push_back(*o);
          }
        }
      }
      hgj::core::Diagnostics diag;
      hgj::config::loadConfig((dir / "gateway.yaml").string(), overrides, diag);
      std::string got = replaceAll(diag.format(), dir.string() + "/", "");
      got = replaceAll(got, fs::path(hgj::test::sourcePath("conf")).lexically_normal().string(),
                       "<conf>");
      got = replaceAll(got, root.lexically_normal().string(), "<cases>");
      std::string expected = readFile(dir / "expected.txt");
      INFO("case " << dir.filename().string());
      CHECK(got == expected);
    }
  }
}

TEST_CASE("config: the shipped example compound is valid", "[config]") {
  hgj::core::Diagnostics diag;
  auto cfg = hgj::config::loadConfig(hgj::test::sourcePath("conf/gateway.yaml"), {}, diag);
  INFO(diag.format());
  REQUIRE(diag.ok());
  const auto& c = *cfg.compound;
  // The benchmark workload's ids, exactly (docs/benchmarks.md).
  REQUIRE(c.device("P-B1-0001") != nullptr);
  REQUIRE(c.device("P-B2-0500") != nullptr);
  REQUIRE(c.device("P-B1-0501") == nullptr);
  CHECK(c.device("P-B1-0126")->location.zone == "B");
  CHECK(c.device("P-B2-0375")->location.zone == "C");
  REQUIRE(c.device("S03/P07") != nullptr);
  CHECK(c.device("S03/P07")->type() == "ebike_port");
  CHECK(c.devices[c.device("S03/P07")->parent].id == "S03");
  CHECK(c.device("S37/P10") != nullptr);
  CHECK(c.device("EV-65") != nullptr);
  CHECK(c.device("EV-01")->linked_id == "P-B2-0436");
  CHECK(c.device("P-B2-0436")->linked_id == "EV-01");
  int parking = 0;
  for (const auto& d : c.devices) {
    if (d.id.rfind("P-B", 0) == 0) {
      ++parking;
    }
  }
  CHECK(parking == 1000);
}

TEST_CASE("config: --set overrides scalars and is validated like the file", "[config]") {
  hgj::core::Diagnostics diag;
  auto cfg = hgj::config::loadConfig(hgj::test::sourcePath("conf/gateway.yaml"),
                                     {{"mqtt.url", "tcp://127.0.0.1:1999"},
                                      {"storage.path", "/tmp/x.db"},
                                      {"site.id", "bench"}},
                                     diag);
  REQUIRE(diag.ok());
  CHECK(cfg.mqtt.url == "tcp://127.0.0.1:1999");
  CHECK(cfg.storage.path == "/tmp/x.db");
  CHECK(cfg.compound->site_id == "bench");
}

TEST_CASE("config: id templates expand numbers with offsets and padding", "[config]") {
  CHECK(hgj::config::expandTemplate("P-B1-{n:04}", 7) == "P-B1-0007");
  CHECK(hgj::config::expandTemplate("EV-{n-435:02}", 436) == "EV-01");
  CHECK(hgj::config::expandTemplate("{parent}/P{n:02}", 7, "S03") == "S03/P07");
  CHECK(hgj::config::expandTemplate("plain", 3) == "plain");
}
