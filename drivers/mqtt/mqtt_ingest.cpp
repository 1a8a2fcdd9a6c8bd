#include "drivers/mqtt/mqtt_ingest.h"

#include "drivers/mqtt/batched_ingest.h"
#include "drivers/mqtt/paho_ingest.h"

namespace hgj::drivers::mqtt {

std::unique_ptr<MqttIngest> makeMqttIngest(const MqttConfig& cfg,
                                           std::vector<std::string> subscriptions,
                                           const model::Compound& compound, SampleSink& sink,
                                           core::MetricsRegistry& metrics,
                                           const core::Clock& clock) {
  if (cfg.client == MqttClient::Paho) {
    return std::make_unique<PahoIngest>(cfg, std::move(subscriptions), compound, sink, metrics,
                                        clock);
  }
  return std::make_unique<BatchedIngest>(cfg, std::move(subscriptions), compound, sink, metrics,
                                         clock);
}

} // namespace hgj::drivers::mqtt
