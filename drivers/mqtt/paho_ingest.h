#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "core/clock.h"
#include "core/metrics.h"
#include "drivers/driver.h"
#include "drivers/mqtt/mqtt_config.h"
#include "drivers/mqtt/mqtt_ingest.h"
#include "model/compound.h"

namespace mqtt {
class async_client;
}

namespace hgj::drivers::mqtt {

/// MQTT ingest through Paho MQTT C++ (MqttIngest, `mqtt.client: paho`): a persistent session
/// (clean session off) with QoS 1 subscriptions, so what the broker holds while the gateway is
/// down arrives after restart.
///
/// Threads: Paho's receive thread runs the message callback, which only hands the raw message to
/// the SampleSink; the sink blocks while the pipeline queue is full, so the message is acked to
/// the broker only once it is queued (backpressure instead of loss). A reconnect thread of ours
/// reconnects with exponential backoff and jitter (Paho's automatic reconnect does not cover the
/// first connect and has lost messages around reconnects), and re-subscribes on every connect.
///
/// Writes publish the command to the profile's command topic; success is confirmed later by a
/// report showing the value (the pipeline's actuator watches for it). A publish that fails is
/// reported at once as a failed WriteResult.
class PahoIngest final : public MqttIngest {
public:
  PahoIngest(MqttDriverConfig cfg, const model::Compound& compound, SampleSink& sink,
             core::MetricsRegistry& metrics, const core::Clock& clock);
  ~PahoIngest() override;

  const char* name() const override { return "mqtt"; }
  void start() override;
  void stop() override;
  void write(const WriteRequest& request) override;
  void refresh(const RefreshRequest& request) override;
  std::string health() const override;
  bool connected() const override { return connected_.load(); }
  bool subscribed() const override { return subscribed_.load(); }

private:
  void reconnectLoop();
  void onConnected();
  void onLost(const std::string& cause);

  class SubscribeListener;
  MqttDriverConfig cfg_;
  const model::Compound& compound_;
  SampleSink& sink_;
  const core::Clock& clock_;
  core::Counter& received_;
  core::Counter& reconnects_;
  core::Counter& commands_;
  std::unique_ptr<SubscribeListener> subscribe_listener_;
  std::unique_ptr<::mqtt::async_client> client_;
  std::atomic<bool> connected_{false};
  std::atomic<bool> subscribed_{false};
  std::atomic<bool> running_{false};
  std::thread reconnect_thread_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool need_connect_ = true;  // guarded by mu_
  std::string last_error_;    // guarded by mu_
};

} // namespace hgj::drivers::mqtt
