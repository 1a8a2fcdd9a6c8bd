// SIGHUP: a broken configuration keeps the running rules (every problem logged); a valid one
// replaces the rules without a restart.
#include <csignal>
#include <fstream>

#include <catch2/catch.hpp>

#include "tests/support/test_support.h"

using namespace std::chrono_literals;
using hgj::test::queryInt;

namespace {

void writeRules(const std::string& path, int threshold) {
  std::ofstream(path) << "rules:\n"
                         "  - name: test_hot\n"
                         "    kind: threshold\n"
                         "    select: {type: ebike_port}\n"
                         "    point: temp_c\n"
                         "    op: \">\"\n"
                         "    value: "
                      << threshold << "\n    severity: critical\n    message: \"{device} hot\"\n";
}

long long alertsFor(const std::string& db, const std::string& device) {
  return queryInt(db, "SELECT count(*) FROM alerts WHERE rule='test_hot' AND device='" + device +
                          "'");
}

} // namespace

TEST_CASE("reload: SIGHUP keeps the rules on a broken file and applies a valid one",
          "[integration][reload]") {
  hgj::test::Broker broker(false);
  hgj::test::TempDir dir;
  std::string db = dir.file("hgj.db");
  std::string rules = dir.file("rules.yaml");
  writeRules(rules, 60);
  auto gw = hgj::test::startGateway(broker.url(), db, dir.file("gw.log"),
                                    {"include.rules=" + rules});
  hgj::test::TestClient pub(broker.url());
  auto report = [&](const std::string& port, int temp) {
    pub.publish("compound/ebike/S01/" + port + "/telemetry",
                R"({"current_a":1,"power_w":200,"temp_c":)" + std::to_string(temp) + "}");
  };
  report("P01", 70);
  REQUIRE(hgj::test::waitFor([&] { return alertsFor(db, "S01/P01") == 1; }, 10s));

  // A broken rules file: every problem is logged, the running rules stay.
  std::ofstream(rules) << "rules:\n  - name: test_hot\n    kind: treshold\n";
  gw->signal(SIGHUP);
  REQUIRE(hgj::test::waitFor(
      [&] { return gw->output().find("keeping the running one") != std::string::npos; }, 10s));
  CHECK(gw->output().find("rules.yaml:3") != std::string::npos);
  report("P02", 70);
  REQUIRE(hgj::test::waitFor([&] { return alertsFor(db, "S01/P02") == 1; }, 10s));

  // A valid file with a higher threshold replaces the rules without a restart.
  writeRules(rules, 80);
  gw->signal(SIGHUP);
  REQUIRE(hgj::test::waitFor(
      [&] { return gw->output().find("reload: rules reloaded") != std::string::npos; }, 10s));
  report("P03", 70);
  report("P04", 90);
  // Readings are handled in order: once P04 raised, P03's 70 C was judged by the new rule.
  REQUIRE(hgj::test::waitFor([&] { return alertsFor(db, "S01/P04") == 1; }, 10s));
  CHECK(alertsFor(db, "S01/P03") == 0);
  // The alert raised under the old rules was adopted by the new engine, which clears it: 70 C
  // is no longer over its threshold.
  CHECK(hgj::test::waitFor(
      [&] {
        return queryInt(db, "SELECT count(*) FROM alerts WHERE rule='test_hot' AND "
                            "device='S01/P01' AND state='cleared'") == 1;
      },
      10s));
  gw->signal(SIGTERM);
  CHECK(gw->wait() == 0);
}
