#include "gateway/app.h"

#include <spdlog/spdlog.h>

#include "drivers/mqtt/mqtt_driver.h"
#include "gateway/pipeline/pipeline.h"
#include "gateway/pipeline/read_model.h"
#include "gateway/storage/store.h"

namespace hgj {

App::App(config::GatewayConfig cfg, const core::Clock& clock)
    : cfg_(std::move(cfg)), clock_(clock) {
  metrics_.gaugeFn("process_resident_memory_bytes", "resident memory of the gateway process",
                   [] { return core::processResidentBytes(); });
  store_ = std::make_unique<storage::Store>(cfg_.storage, cfg_.compound, metrics_, clock_);
  read_model_ = std::make_unique<pipeline::ReadModel>();
  pipeline_ = std::make_unique<pipeline::Pipeline>(cfg_, cfg_.compound, *store_, *read_model_,
                                                   metrics_, clock_);
  drivers::mqtt::MqttDriverConfig mc;
  mc.url = cfg_.mqtt.url;
  mc.client_id = cfg_.mqtt.client_id;
  mc.username = cfg_.mqtt.username;
  mc.password = cfg_.mqtt.password;
  mc.keepalive_s = cfg_.mqtt.keepalive_s;
  mc.reconnect_min_ms = cfg_.mqtt.reconnect_min_ms;
  mc.reconnect_max_ms = cfg_.mqtt.reconnect_max_ms;
  mc.subscriptions = pipeline_->subscriptions();
  mqtt_ = std::make_unique<drivers::mqtt::MqttDriver>(mc, *cfg_.compound, *pipeline_, metrics_,
                                                      clock_);
  pipeline_->addDriver(mqtt_.get());
}

App::~App() { stop(); }

void App::start() {
  store_->open();
  pipeline_->restore(store_->loadState());
  store_->start();
  pipeline_->start();
  mqtt_->start();
  started_ = true;
}

void App::stop() {
  if (!started_) {
    return;
  }
  started_ = false;
  // Southbound first (nothing new arrives), then drain the pipeline, then the store.
  mqtt_->stop();
  pipeline_->stop();
  store_->stop();
  read_model_->close();
}

nlohmann::json App::health() const {
  nlohmann::json h;
  h["ingest"] = mqtt_->health();
  h["pipeline"] = pipeline_->health();
  h["storage"] = store_->health();
  bool ok = true;
  for (const auto& [k, v] : h.items()) {
    ok = ok && v == "ok";
  }
  h["status"] = ok ? "ok" : "degraded";
  return h;
}

} // namespace hgj
