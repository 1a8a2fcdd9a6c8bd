#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/clock.h"
#include "core/metrics.h"
#include "drivers/driver.h"
#include "drivers/mqtt/mqtt_config.h"
#include "model/compound.h"

namespace hgj::drivers::mqtt {

/// MQTT ingest from the compound's local broker: a persistent session (clean session off) with
/// QoS 1 subscriptions, every message handed to the SampleSink and acknowledged to the broker
/// only once the sink took it (the sink blocks while the pipeline queue is full, so the broker
/// keeps what the gateway cannot take yet). Two clients do this (`mqtt.client`):
/// - BatchedIngest (default): our own MQTT 3.1.1 session on one thread, reading the socket in
///   large chunks and acknowledging each chunk with one write (docs/benchmarks.md: about a
///   quarter of Paho's CPU per message); plain TCP.
/// - PahoIngest: Paho MQTT C++, one callback and one PUBACK per message; also ssl://.
class MqttIngest : public Driver {
public:
  bool handles(const model::Device& device) const override {
    return device.profile->transport == "mqtt";
  }
  virtual bool connected() const = 0;
  /// True once the subscriptions of the current connection are acknowledged by the broker.
  virtual bool subscribed() const = 0;
};

/// A write request as the MQTT message that carries it: the profile's command topic and
/// `{"<point>": value, "<id_field>": "<request id>"}`. `error` is set (and the rest empty) when
/// the device's profile has no MQTT command.
struct CommandMessage {
  std::string topic;
  std::string payload;
  std::string error;
};
CommandMessage commandMessage(const model::Compound& compound, const WriteRequest& request);
/// A refresh request as the MQTT message that carries it: the profile's refresh topic and
/// payload; `error` is set when the profile declares no refresh.
CommandMessage refreshMessage(const model::Compound& compound, const RefreshRequest& request);

/// Reports a write that could not even be sent as a failed WriteResult through the sink.
void reportWriteFailed(SampleSink& sink, const WriteRequest& request, std::string why,
                       int64_t ts_ms);

std::unique_ptr<MqttIngest> makeMqttIngest(MqttDriverConfig cfg, const model::Compound& compound,
                                           SampleSink& sink, core::MetricsRegistry& metrics,
                                           const core::Clock& clock);

} // namespace hgj::drivers::mqtt
