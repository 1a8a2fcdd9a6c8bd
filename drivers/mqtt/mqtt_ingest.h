#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/heartbeat.h"
#include "core/metrics.h"
#include "drivers/driver.h"
#include "drivers/mqtt/mqtt_commands.h"
#include "drivers/mqtt/mqtt_config.h"
#include "model/compound.h"

namespace hgj::drivers::mqtt {

/// MQTT ingest from the compound's local broker: a persistent session (clean session off) with
/// QoS 1 subscriptions, every message handed to the SampleSink and acknowledged to the broker
/// only once the sink took it (the pipeline's bounded queue; while it is full the broker keeps
/// what the gateway cannot take yet). Two clients do this (`mqtt.client`):
/// - BatchedIngest (default): our own MQTT 3.1.1 session (Session) on one thread, reading the
///   socket in large chunks and acknowledging each chunk with one write (docs/benchmarks.md:
///   about a quarter of Paho's CPU per message); plain TCP.
/// - PahoIngest: Paho MQTT C++, one callback and one PUBACK per message; also ssl://.
///
/// Both follow the contract of drivers/driver.h: write() and refresh() only queue the request
/// for the client's own thread (a bounded CommandQueue: a full queue reports the write failed at
/// once) and return; that thread publishes, and reports a write it could not send through
/// SampleSink::deliverResult. Both reconnect with core::Backoff (full jitter). Their threads
/// beat a core::Heartbeat (setLiveness) every time round their loops and at least every 500 ms
/// while they wait, including while the pipeline queue is full.
class MqttIngest : public Driver {
public:
  bool handles(const model::Device& device) const override {
    return device.profile->transport == "mqtt";
  }
  const char* name() const override { return "mqtt"; }
  bool connected() const { return connected_.load(); }
  /// True once the subscriptions of the current connection are acknowledged by the broker.
  bool subscribed() const { return subscribed_.load(); }
  /// The watchdog's registry: start() adds the client's heartbeat to it, stop() retires it.
  /// Call before start(); without it the client beats nothing.
  void setLiveness(core::Liveness& liveness) { liveness_ = &liveness; }

protected:
  /// The counters and the gauge both clients keep under the same names.
  explicit MqttIngest(core::MetricsRegistry& metrics)
      : received_(metrics.counter("hgj_mqtt_messages_received_total",
                                  "messages received from the local broker")),
        reconnects_(metrics.counter("hgj_mqtt_connects_total",
                                    "successful connections to the local broker")),
        commands_(metrics.counter("hgj_mqtt_commands_published_total",
                                  "write commands published to devices")),
        commands_failed_(metrics.counter("hgj_mqtt_commands_failed_total",
                                         "write commands reported failed before reaching the "
                                         "broker (queue full, not connected, connection lost)")) {
    metrics.gaugeFn("hgj_mqtt_connected", "1 while connected to the local broker",
                    [this] { return connected_.load() ? 1.0 : 0.0; });
  }

  /// start(): the client's heartbeat joins the registry (when setLiveness gave one).
  void joinLiveness() {
    if (liveness_ != nullptr) {
      heartbeat_ = &liveness_->add("mqtt ingest");
    }
  }
  /// stop(): the heartbeat leaves it again.
  void leaveLiveness() {
    if (heartbeat_ != nullptr) {
      liveness_->retire(*heartbeat_);
      heartbeat_ = nullptr;
    }
  }

  core::Counter& received_;
  core::Counter& reconnects_;
  core::Counter& commands_;
  core::Counter& commands_failed_;
  core::Liveness* liveness_ = nullptr;
  core::Heartbeat* heartbeat_ = nullptr;
  std::atomic<bool> connected_{false};
  std::atomic<bool> subscribed_{false};
};

/// The client `cfg.client` names, subscribed to `subscriptions` (QoS 1).
std::unique_ptr<MqttIngest> makeMqttIngest(const MqttConfig& cfg,
                                           std::vector<std::string> subscriptions,
                                           const model::Compound& compound, SampleSink& sink,
                                           core::MetricsRegistry& metrics,
                                           const core::Clock& clock);

} // namespace hgj::drivers::mqtt
