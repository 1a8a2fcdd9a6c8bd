#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "core/config_node.h"
#include "core/log.h"
#include "core/time_format.h"
#include "hgj_version.h"
#include "tools/sim/compound_source.h"
#include "tools/sim/scenario.h"
#include "tools/sim/simulator.h"

namespace {

volatile std::sig_atomic_t g_stop = 0;

void onSignal(int) { g_stop = 1; }

const char* kUsage =
    R"(usage: hgj-sim -c SCENARIO.yaml [--speed N] [--seed S] [--set key.path=value ...]

Plays a simulated compound (parking sensors, EV piles and meters, e-bike sheds, CO sensors,
smoke detectors, a guidance display) over MQTT and Modbus TCP, following a scenario file of
conf/scenarios/. The scenario names the gateway config whose devices it plays.

options:
  -c, --config FILE     the scenario (e.g. conf/scenarios/demo.yaml)
  --speed N             scenario seconds per wall second (overrides `speed`)
  --seed S              random seed; the same seed plays the same run (overrides `seed`)
  --set key.path=value  overrides a scenario value, e.g. --set mqtt.url=tcp://127.0.0.1:1884
  --check               validates the scenario and the gateway config, then exits
  --log-level LEVEL     trace, debug, info (default), warn, error
  -h, --help            this text
  --version             the version

exit status: 0 ok, 2 invalid scenario or config, 1 runtime failure
)";

} // namespace

int main(int argc, char** argv) {
  std::string config;
  std::vector<std::string> overrides;
  std::string level = "info";
  bool check = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const char* name) -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "hgj-sim: %s needs a value\n", name);
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (a == "--version") {
      std::printf("hgj-sim %s\n", HGJ_VERSION);
      return 0;
    }
    if (a == "-c" || a == "--config") {
      config = value("-c");
    } else if (a == "--speed") {
      overrides.push_back("speed=" + value("--speed"));
    } else if (a == "--seed") {
      overrides.push_back("seed=" + value("--seed"));
    } else if (a == "--set") {
      overrides.push_back(value("--set"));
    } else if (a.rfind("--set=", 0) == 0) {
      overrides.push_back(a.substr(6));
    } else if (a == "--check") {
      check = true;
    } else if (a == "--log-level") {
      level = value("--log-level");
    } else {
      std::fprintf(stderr, "hgj-sim: unknown argument \"%s\" (see --help)\n", a.c_str());
      return 2;
    }
  }
  if (config.empty()) {
    std::fprintf(stderr, "hgj-sim: -c SCENARIO.yaml is required (see --help)\n");
    return 2;
  }
  hgj::core::setupLogging(level, "", 0, 0);

  std::unique_ptr<hgj::sim::Simulator> sim;
  try {
    auto scenario = hgj::sim::loadScenario(config, overrides);
    auto gateway = hgj::sim::loadGateway(scenario.gateway);
    hgj::sim::adoptGatewayLines(scenario, gateway);
    sim = std::make_unique<hgj::sim::Simulator>(std::move(scenario), gateway.compound);
  } catch (const hgj::core::ConfigError& e) {
    std::fputs(e.diagnostics().format().c_str(), stderr);
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hgj-sim: %s\n", e.what());
    return 2;
  }
  if (check) {
    std::printf("%s: ok\n", config.c_str());
    return 0;
  }

  std::signal(SIGINT, onSignal);
  std::signal(SIGTERM, onSignal);
  try {
    sim->start();
  } catch (const std::exception& e) {
    spdlog::error("cannot start: {}", e.what());
    return 1;
  }
  const auto& sc = sim->scenario();
  spdlog::info("hgj-sim {} running {} at {}x (seed {}) against {}", HGJ_VERSION, config, sc.speed,
               sc.seed, sc.mqtt.url);
  auto last_status = std::chrono::steady_clock::now();
  while (!g_stop) {
    // The main thread only waits for a signal and prints a status line now and then.
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    auto now = std::chrono::steady_clock::now();
    if (now - last_status >= std::chrono::seconds(10)) {
      last_status = now;
      auto st = sim->stats();
      spdlog::info("scenario time {}: {} messages published, {} commands, {} events, mqtt {}",
                   hgj::core::rfc3339(sim->scenarioNowMs()), st.published, st.commands,
                   st.events_fired, sim->mqttConnected() ? "connected" : "disconnected");
    }
  }
  spdlog::info("stopping");
  sim->stop();
  return 0;
}
