// docs/reliability.md row 17 against the daemon: the wall clock jumps an hour either way in the
// middle of a safety hold, or the box starts at 1970. The daemon's wall clock is moved with the
// test-only hooks wall_offset_ms / wall_jump_after_ms / wall_jump_ms (core/clock.cpp); its steady
// clock is the real one. A hold measured on the wall clock would cut at once after a forward jump
// and not for an hour after a backward one; measured on the steady clock the port is cut once, no
// sooner than its 10 s.
#include <csignal>
#include <cstdlib>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/support/test_support.h"

using namespace std::chrono_literals;

namespace {

constexpr auto kHold = 10s;  // conf/rules.yaml port_over_temperature: > 60 C for 10 s
constexpr int64_t kHour = 3'600'000;

int64_t realWallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// HGJ_FAULTS for the gateways spawned while it lives (children inherit the environment).
struct FaultEnv {
  explicit FaultEnv(const std::string& spec) { ::setenv("HGJ_FAULTS", spec.c_str(), 1); }
  ~FaultEnv() { ::unsetenv("HGJ_FAULTS"); }
};

double plainMetric(const std::string& metrics, const std::string& name) {
  for (auto at = metrics.find(name + " "); at != std::string::npos;
       at = metrics.find(name + " ", at + 1)) {
    if (at == 0 || metrics[at - 1] == '\n') {
      return std::stod(metrics.substr(at + name.size() + 1));
    }
  }
  return -1;
}

struct Case {
  const char* what;
  std::string faults;
  int64_t expected_offset_ms;  ///< how far the gateway's wall clock is off when it cuts
};

} // namespace

TEST_CASE("faults clock: the wall clock jumping an hour forward or back mid-hold, or starting "
          "at 1970, moves no hold: the hot port is cut once, after its 10 s",
          "[faults][clock]") {
  const int64_t to_1970 = 86'400'000 - realWallMs();  // 1970-01-02
  // The jump comes 8 s after the daemon's first look at the clock: inside the hold whenever the
  // daemon is ready within 8 s of its spawn (well under 1 s here); after the jump, before the
  // cut, in any case, which the alert's time stamp shows.
  const std::vector<Case> cases{
      {"forward an hour", "wall_jump_after_ms=8000,wall_jump_ms=" + std::to_string(kHour), kHour},
      {"back an hour", "wall_jump_after_ms=8000,wall_jump_ms=" + std::to_string(-kHour), -kHour},
      {"starts at 1970", "wall_offset_ms=" + std::to_string(to_1970), to_1970}};
  int n = 0;
  for (const auto& c : cases) {
    INFO(c.what);
    hgj::test::Broker broker(false);
    hgj::test::TempDir dir;
    const std::string db = dir.file("hgj.db");
    const std::string port = "S0" + std::to_string(1 + n++) + "/P01";
    hgj::test::TestClient commands(broker.url(), "commands");
    commands.subscribe("compound/ebike/" + port + "/set");
    FaultEnv env(c.faults);
    auto gw = hgj::test::startGateway(broker.url(), db, dir.file("gw.log"));
    hgj::test::TestClient device(broker.url(), "port");
    const std::string topic = "compound/ebike/" + port + "/telemetry";
    const auto hot_from = std::chrono::steady_clock::now();
    auto last_report = hot_from - 1s;
    // The port reports 72.5 C twice a second, with its own (correct) clock in ts.
    REQUIRE(hgj::test::waitFor(
        [&] {
          if (std::chrono::steady_clock::now() - last_report >= 500ms) {
            last_report = std::chrono::steady_clock::now();
            device.publish(topic, R"({"current_a":1.8,"power_w":400,"temp_c":72.5,"ts":)" +
                                      std::to_string(realWallMs()) + "}");
          }
          return commands.count() > 0;
        },
        kHold + 40s));
    const auto cut_after = std::chrono::steady_clock::now() - hot_from;
    INFO("cut " << std::chrono::duration_cast<std::chrono::milliseconds>(cut_after).count()
                << " ms after the first hot report");
    CHECK(cut_after >= kHold);
    auto cut = nlohmann::json::parse(commands.messages().front().payload, nullptr, false);
    CHECK(cut.value("relay", true) == false);
    // Raised once, stamped with the daemon's (moved) wall clock.
    std::vector<std::string> raised;
    REQUIRE(hgj::test::waitFor(
        [&] {
          raised = hgj::test::queryRows(
              db, "SELECT raised_at FROM alerts WHERE rule='port_over_temperature'");
          return !raised.empty();
        },
        10s));
    REQUIRE(raised.size() == 1);
    const int64_t offset = std::stoll(raised.front()) - realWallMs();
    CHECK(std::llabs(offset - c.expected_offset_ms) < 60'000);
    // The device's correct time stamps are implausible next to a gateway at 1970: flagged
    // (counted, the ingest time used).
    if (c.expected_offset_ms == to_1970) {
      CHECK(plainMetric(gw->get("/metrics").second, "hgj_payload_suspect_timestamps_total") >= 1);
    }
    gw->signal(SIGTERM);
    CHECK(gw->wait(30s) == 0);
  }
}
