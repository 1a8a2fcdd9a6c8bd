#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/clock.h"
#include "core/heartbeat.h"
#include "core/metrics.h"
#include "gateway/config/config.h"

namespace hgj {

namespace storage {
class Store;
}
namespace pipeline {
class Pipeline;
class ReadModel;
} // namespace pipeline
namespace drivers::mqtt {
class MqttIngest;
}
namespace drivers::modbus {
class ModbusDriver;
}
namespace alerts {
class AlertManager;
class Notifier;
} // namespace alerts
namespace api {
class HttpServer;
}
namespace uplink {
class Uplink;
}
namespace config_push {
class RemoteConfig;
}

/// Builds every stage from a validated config, wires them and owns them: the only place besides
/// the pipeline that knows every stage. start() brings them up in dependency order (storage,
/// pipeline, northbound, southbound last so nothing arrives before it can be handled); stop()
/// takes them down in reverse, flushing what is queued.
class App {
public:
  App(config::GatewayConfig cfg, const core::Clock& clock);
  ~App();
  App(const App&) = delete;
  App& operator=(const App&) = delete;

  /// Remote configuration (owned by main, which chose the config with it): wired to the uplink,
  /// the store, the HTTP API and the health; started last, stopped first. Before start().
  void setRemoteConfig(config_push::RemoteConfig* remote) { remote_ = remote; }

  void start();
  void stop();
  /// SIGHUP: applies what can change without a restart (the rules) from a freshly loaded and
  /// validated config; returns what was done or why not.
  std::string reload(config::GatewayConfig fresh);
  /// Per-subsystem status for /healthz and the log.
  nlohmann::json health() const;
  core::MetricsRegistry& metrics() { return metrics_; }
  /// The heartbeats of the critical threads (pipeline, storage writer, ingest, Modbus lines):
  /// main feeds systemd's watchdog only while every one of them beats.
  core::Liveness& liveness() { return liveness_; }
  const config::GatewayConfig& config() const { return cfg_; }

private:
  config::GatewayConfig cfg_;
  const core::Clock& clock_;
  core::MetricsRegistry metrics_;
  core::Liveness liveness_;  // before the components: they keep references into it
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<pipeline::ReadModel> read_model_;
  std::unique_ptr<pipeline::Pipeline> pipeline_;
  std::unique_ptr<drivers::mqtt::MqttIngest> mqtt_;
  std::unique_ptr<drivers::modbus::ModbusDriver> modbus_;
  std::unique_ptr<alerts::AlertManager> alerts_;
  std::unique_ptr<alerts::Notifier> notifier_;
  std::unique_ptr<api::HttpServer> http_;
  std::unique_ptr<uplink::Uplink> uplink_;
  config_push::RemoteConfig* remote_ = nullptr;
  /// How to stop each stage started so far, oldest first (stop() runs them newest first).
  std::vector<std::function<void()>> stops_;
  bool started_ = false;

  void startStages();
  /// Throws StartupError when a Modbus RTU line's serial port does not exist.
  void checkSerialPorts() const;
};

} // namespace hgj
