#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tools/sim/scenario.h"
#include "tools/sim/world.h"

namespace mqtt {
class async_client;
class connect_options;
class token;
} // namespace mqtt

namespace hgj::sim {

/// The simulated devices' connection to the local broker (Paho MQTT C++). Publishes at the
/// scenario's QoS, reconnects by itself when the broker goes away (Paho's automatic reconnect
/// with backoff), buffers up to `max_buffered` messages meanwhile, and resubscribes to the
/// devices' command topics on every (re)connect.
///
/// Threads: publish()/capacity() from the simulation thread; `on_message` runs on Paho's
/// callback thread and must only hand the message over (it must not block).
class MqttLink final : public Publisher {
public:
  using MessageFn = std::function<void(std::string topic, std::string payload)>;

  MqttLink(const MqttSettings& settings, std::vector<std::string> subscriptions,
           MessageFn on_message);
  ~MqttLink() override;

  /// The topics to subscribe to on every connect; call before start().
  void setSubscriptions(std::vector<std::string> topics) { subscriptions_ = std::move(topics); }
  /// Starts connecting (returns at once; the first connection completes in the background).
  void start();
  /// Retries the first connection until the broker answers; call every simulation step.
  void maintain();
  /// Disconnects, waiting a short while for in-flight messages.
  void stop();

  bool publish(const std::string& topic, const std::string& payload) override;
  int capacity() const override;

  bool connected() const;
  uint64_t failed() const { return failed_.load(); }

private:
  class Callback;

  MqttSettings settings_;
  std::vector<std::string> subscriptions_;
  MessageFn on_message_;
  // The callback outlives the client: Paho's threads may call it until the client is gone.
  std::unique_ptr<Callback> callback_;
  std::unique_ptr<mqtt::async_client> client_;
  std::atomic<uint64_t> failed_{0};
  std::atomic<bool> started_{false};
  std::atomic<bool> ever_connected_{false};
  std::unique_ptr<mqtt::connect_options> connect_opts_;
  std::shared_ptr<mqtt::token> connect_token_;
  std::chrono::steady_clock::time_point last_attempt_{};
};

} // namespace hgj::sim
