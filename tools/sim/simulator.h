#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "core/clock.h"
#include "model/compound.h"
#include "tools/sim/mqtt_link.h"
#include "tools/sim/scenario.h"
#include "tools/sim/sim_modbus.h"
#include "tools/sim/world.h"

namespace hgj::sim {

/// A running simulated compound: the world, its MQTT link, one Modbus TCP server per line and
/// the simulation thread that advances scenario time (`speed` x the clock's steady time since
/// start()) every `tick`.
///
/// Threads: the simulation thread owns the world (guarded by a mutex so inspect() can read it);
/// each Modbus server has its own thread; Paho's callback thread only queues incoming commands.
/// Public methods may be called from any thread.
class Simulator {
public:
  /// Throws core::ConfigError when the scenario does not fit the compound (events naming missing
  /// devices, Modbus lines without a port).
  Simulator(Scenario scenario, std::shared_ptr<const model::Compound> compound,
            core::Clock& clock = core::SystemClock::instance());
  ~Simulator();
  Simulator(const Simulator&) = delete;
  Simulator& operator=(const Simulator&) = delete;

  /// Binds the Modbus servers (throws std::runtime_error when a port is taken), starts
  /// connecting to the broker and starts the simulation thread.
  void start();
  /// Stops the thread, the servers and the MQTT link; idempotent.
  void stop();

  /// The TCP port a line's server listens on (after start(); useful with port 0), or -1.
  int modbusPort(const std::string& line) const;
  bool mqttConnected() const;
  WorldStats stats() const;
  /// Scenario time reached by the last step (Unix ms).
  int64_t scenarioNowMs() const;
  /// Runs `f` on the world under its lock (tests, status line).
  void inspect(const std::function<void(const World&)>& f) const;
  const Scenario& scenario() const { return scenario_; }
  uint64_t droppedCommands() const { return dropped_commands_.load(); }

private:
  void run();
  void loopOnce();
  void wake();

  Scenario scenario_;
  std::shared_ptr<const model::Compound> compound_;
  core::Clock& clock_;
  std::map<std::string, std::unique_ptr<ModbusTcpServer>> servers_;
  std::unique_ptr<MqttLink> link_;
  mutable std::mutex world_mu_;
  std::unique_ptr<World> world_;  // guarded by world_mu_
  int64_t start_ms_ = 0;
  core::SteadyTime steady0_{};

  std::mutex inbox_mu_;
  std::condition_variable inbox_cv_;
  std::deque<std::pair<std::string, std::string>> inbox_;  // guarded by inbox_mu_
  bool wake_ = false;                                      // guarded by inbox_mu_
  std::atomic<uint64_t> dropped_commands_{0};

  std::atomic<bool> running_{false};
  std::thread thread_;
};

} // namespace hgj::sim
