#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <random>

#include "gateway/config/config.h"
#include "tests/unit/rules/rules_rig.h"

using namespace std::chrono_literals;
using hgj::model::Value;

namespace {

class CountingSink : public hgj::rules::ActionSink {
public:
  void raiseAlert(const hgj::rules::AlertRaise&) override { ++raised; }
  void clearAlert(const hgj::rules::AlertClear&) override { ++cleared; }
  void writePoint(const hgj::rules::WriteAction&) override { ++writes; }
  uint64_t raised = 0;
  uint64_t cleared = 0;
  uint64_t writes = 0;
};

struct Result {
  double apply_only_s = 0;
  double with_rules_s = 0;
  double tick_s = 0;  ///< of with_rules_s, in tick()
  uint64_t readings = 0;
  uint64_t visits = 0;
  uint64_t raised = 0;
  size_t instances = 0;
};

// The benchmark mix (docs/benchmarks.md) over the example compound's 1,435 load devices: 80%
// parking messages, 15% e-bike telemetry (current, power, temperature; 1 in 1,000 over 60 C), 5% EV
// status (state, power, energy); each message is one reading per point.
std::vector<hgj::model::Reading> makeLoad(const hgj::model::Compound& c, size_t messages) {
  std::mt19937 rng(42);
  std::vector<hgj::model::DeviceIndex> parking;
  std::vector<hgj::model::DeviceIndex> ports;
  std::vector<hgj::model::DeviceIndex> piles;
  for (const auto& d : c.devices) {
    if (d.type() == "parking_sensor" && (d.id.rfind("P-B1-", 0) == 0 || d.id.rfind("P-B2-", 0) == 0)) {
      parking.push_back(d.index);
    } else if (d.type() == "ebike_port" && d.id[0] == 'S') {
      ports.push_back(d.index);
    } else if (d.type() == "ev_pile") {
      piles.push_back(d.index);
    }
  }
  REQUIRE(parking.size() + ports.size() + piles.size() == 1435);
  auto pid = [&](const char* n) { return *c.pointId(n); };
  const auto occupied = pid("occupied");
  const auto current = pid("current_a");
  const auto power = pid("power_w");
  const auto temp = pid("temp_c");
  const auto state = pid("state");
  const auto power_kw = pid("power_kw");
  const auto energy = pid("energy_kwh");
  const char* states[] = {"Available", "Preparing", "Charging", "SuspendedEV", "Finishing"};
  std::vector<hgj::model::Reading> out;
  out.reserve(messages * 2);
  int64_t ts = 1'700'000'000'000;
  uint64_t ebike = 0;
  for (size_t i = 0; i < messages; ++i) {
    auto add = [&](hgj::model::DeviceIndex d, hgj::model::PointId p, Value v) {
      hgj::model::Reading r;
      r.device = d;
      r.point = p;
      r.value = std::move(v);
      r.source_ms = ts;
      r.ingest_ms = ts;
      out.push_back(std::move(r));
    };
    unsigned pick = rng() % 100;
    if (pick < 80) {
      add(parking[rng() % parking.size()], occupied, Value((rng() & 1) != 0));
    } else if (pick < 95) {
      auto d = ports[rng() % ports.size()];
      bool hot = (++ebike % 1000) == 0;
      add(d, current, Value(1.0 + (rng() % 100) / 100.0));
      add(d, power, Value(200.0 + rng() % 300));
      add(d, temp, Value(hot ? 75.0 : 25.0 + (rng() % 200) / 10.0));
    } else {
      auto d = piles[rng() % piles.size()];
      add(d, state, Value(std::string(states[rng() % 5])));
      add(d, power_kw, Value((rng() % 70) / 10.0));
      add(d, energy, Value((rng() % 500) / 10.0));
    }
    ts += 1;
  }
  return out;
}

Result run(const char* rules_file, const std::vector<hgj::model::Reading>& load,
           hgj::model::Compound& compound) {
  hgj::core::Diagnostics diag;
  std::string path = rules_file[0] == '/' ? rules_file : std::string(HGJ_SOURCE_DIR) + "/" + rules_file;
  auto root = hgj::core::loadYamlFile(path, diag);
  REQUIRE(root);
  auto cfg = hgj::rules::parseRulesConfig(*root, compound);
  INFO(diag.format());
  REQUIRE(diag.ok());
  Result res;
  res.apply_only_s = 1e9;
  res.with_rules_s = 1e9;
  using Clock = std::chrono::steady_clock;
  // Ticks every 200 ms of simulated time at an input of 20,000 readings/s.
  constexpr size_t kTickEvery = 4000;
  // The best of three of each, interleaved: the machine is shared, so the minimum is the figure
  // least disturbed by other processes.
  for (int rep = 0; rep < 3; ++rep) {
    {
      hgj::core::ManualClock clock;
      hgj::model::StateTable state(compound);
      auto t0 = Clock::now();
      for (size_t i = 0; i < load.size(); ++i) {
        state.apply(load[i], clock.steadyNow());
        if (i % kTickEvery == 0) {
          clock.advance(200ms);
        }
      }
      res.apply_only_s =
          std::min(res.apply_only_s, std::chrono::duration<double>(Clock::now() - t0).count());
    }
    hgj::core::ManualClock clock;
    hgj::model::StateTable state(compound);
    hgj::rules::Engine engine(cfg, compound, clock);
    CountingSink sink;
    engine.tick(state, sink);
    double tick_s = 0;
    auto t0 = Clock::now();
    for (size_t i = 0; i < load.size(); ++i) {
      auto applied = state.apply(load[i], clock.steadyNow());
      engine.onReading(load[i], applied, state, sink);
      if (i % kTickEvery == 0) {
        clock.advance(200ms);
        auto t1 = Clock::now();
        engine.tick(state, sink);
        tick_s += std::chrono::duration<double>(Clock::now() - t1).count();
      }
    }
    double total = std::chrono::duration<double>(Clock::now() - t0).count();
    if (total < res.with_rules_s) {
      res.with_rules_s = total;
      res.tick_s = tick_s;
    }
    res.readings = engine.stats().readings;
    res.visits = engine.stats().visits;
    res.raised = sink.raised;
    res.instances = engine.instanceCount();
  }
  return res;
}

} // namespace

TEST_CASE("rules bench: evaluation cost of the default and benchmark rule sets on the example "
          "compound",
          "[.bench][rules]") {
  // The shipped example compound (conf/gateway.yaml and its includes).
  hgj::core::Diagnostics diag;
  auto gw = hgj::config::loadConfig(std::string(HGJ_SOURCE_DIR) + "/conf/gateway.yaml", {}, diag);
  INFO(diag.format());
  REQUIRE(diag.ok());
  auto* compound = gw.compound.get();
  auto load = makeLoad(*compound, 400'000);
  // HGJ_RULES_BENCH=/path/to/rules.yaml measures another rule file instead.
  std::vector<std::string> files = {"conf/rules.yaml", "conf/rules-bench.yaml"};
  if (const char* env = std::getenv("HGJ_RULES_BENCH")) {
    files = {env};
  }
  for (const auto& name : files) {
    const char* file = name.c_str();
    Result r = run(file, load, *compound);
    double engine_s = r.with_rules_s - r.apply_only_s;
    std::printf("%s: %zu devices, %zu rule instances, %llu readings\n"
                "  state apply only:        %.3f s (%.0f readings/s)\n"
                "  state apply + rules:     %.3f s (%.0f readings/s)\n"
                "  rules alone:             %.0f ns/reading (%.2f M readings/s)\n"
                "  rule instances visited:  %.3f per reading; alerts raised %llu\n"
                "  of which ticks:          %.3f s (%zu ticks, every 4,000 readings)\n",
                file, compound->devices.size(), r.instances,
                static_cast<unsigned long long>(r.readings), r.apply_only_s,
                static_cast<double>(load.size()) / r.apply_only_s, r.with_rules_s,
                static_cast<double>(load.size()) / r.with_rules_s,
                engine_s * 1e9 / static_cast<double>(load.size()),
                static_cast<double>(load.size()) / engine_s / 1e6,
                static_cast<double>(r.visits) / static_cast<double>(r.readings),
                static_cast<unsigned long long>(r.raised), r.tick_s, load.size() / 4000 + 1);
    CHECK(r.readings == load.size());
  }
}
