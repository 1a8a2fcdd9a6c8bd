#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/heartbeat.h"
#include "core/metrics.h"
#include "drivers/driver.h"
#include "drivers/mqtt/mqtt_commands.h"
#include "drivers/mqtt/mqtt_config.h"
#include "drivers/mqtt/mqtt_ingest.h"
#include "model/compound.h"

namespace mqtt {
class async_client;
}

namespace hgj::drivers::mqtt {

/// MQTT ingest through Paho MQTT C++ (MqttIngest, `mqtt.client: paho`): a persistent session
/// (clean session off) with QoS 1 subscriptions; plain TCP or TLS (ssl://, `mqtt.tls`). The
/// protocol itself is Paho's (Debian's libpaho-mqtt 1.3).
///
/// Threads: Paho's receive thread runs the message callback, which only hands the message to
/// the SampleSink, in waits of 250 ms while the pipeline queue is full (so the message is acked
/// to the broker only once it is queued: backpressure instead of loss). One thread of ours
/// connects and reconnects (core::Backoff, full jitter; Paho's automatic reconnect does not
/// cover the first connect and has lost messages around reconnects), re-subscribes on every
/// connect, and publishes the commands that write() and refresh() queued. It beats the
/// heartbeat every time round its loop (at least every 500 ms), unless the message callback has
/// made no progress for 5 s: then the ingest is stuck and the watchdog must see it.
///
/// Commands go out at QoS 0: Paho resends unacknowledged QoS 1 publishes after a reconnect
/// (MQTT 3.1.1 section 4.4), and a stale relay command must never reach a device after the
/// pipeline's actuator has moved on; the actuator confirms by the device's report and retries.
/// At most 64 commands are in Paho's hands at once; beyond that a write is reported failed.
class PahoIngest final : public MqttIngest {
public:
  PahoIngest(MqttConfig cfg, std::vector<std::string> subscriptions,
             const model::Compound& compound, SampleSink& sink, core::MetricsRegistry& metrics,
             const core::Clock& clock);
  ~PahoIngest() override;

  void start() override;
  void stop() override;
  // write() and refresh(): any thread, never block (drivers/driver.h); a refresh is dropped when
  // the queue is full (best effort).
  void write(const WriteRequest& request) override;
  void refresh(const RefreshRequest& request) override;
  std::string health() const override;

private:
  class SubscribeListener;
  class PublishListener;

  void run();
  /// One connect attempt, waited for in bounded steps; false with last_error_ set.
  bool connectOnce();
  void onMessage(std::shared_ptr<const void> owner, std::string_view topic,
                 std::string_view payload);
  void onConnected();
  void onLost(const std::string& cause);
  /// Publishes (or fails) the queued commands; from our thread or from a message callback.
  void serveCommands(bool from_callback = false);
  /// Waits up to `ms` (or, with `until_lost`, until the connection is lost), serving commands
  /// and beating meanwhile; returns at stop().
  void waitFor(int64_t ms, bool until_lost);
  void beat();

  MqttConfig cfg_;
  std::vector<std::string> subscriptions_;
  const model::Compound& compound_;
  SampleSink& sink_;
  const core::Clock& clock_;
  std::unique_ptr<SubscribeListener> subscribe_listener_;
  std::unique_ptr<PublishListener> publish_listener_;
  std::unique_ptr<::mqtt::async_client> client_;
  CommandQueue commands_queue_;
  std::atomic<bool> running_{false};
  std::atomic<int> in_flight_{0};            ///< commands handed to Paho, not yet written
  std::atomic<int64_t> callback_since_{-1};  ///< steady ms a message callback began; -1: none
  std::atomic<int64_t> callback_beat_{0};    ///< steady ms it last made progress
  std::thread thread_;
  std::mutex publish_mu_;  ///< serializes serveCommands
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool need_connect_ = true;  // guarded by mu_
  bool wake_ = false;         // guarded by mu_: commands queued or the connection lost
  std::string last_error_;    // guarded by mu_
};

} // namespace hgj::drivers::mqtt
