#pragma once

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
  virtual bool connected() const = 0;
  /// True once the subscriptions of the current connection are acknowledged by the broker.
  virtual bool subscribed() const = 0;
  /// The watchdog's registry: start() adds the client's heartbeat to it, stop() retires it.
  /// Call before start(); without it the client beats nothing.
  void setLiveness(core::Liveness& liveness) { liveness_ = &liveness; }

protected:
  core::Liveness* liveness_ = nullptr;
};

/// The client `cfg.client` names, subscribed to `subscriptions` (QoS 1).
std::unique_ptr<MqttIngest> makeMqttIngest(const MqttConfig& cfg,
                                           std::vector<std::string> subscriptions,
                                           const model::Compound& compound, SampleSink& sink,
                                           core::MetricsRegistry& metrics,
                                           const core::Clock& clock);

} // namespace hgj::drivers::mqtt
