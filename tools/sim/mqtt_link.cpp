#include "tools/sim/mqtt_link.h"

#include <mqtt/async_client.h>
#include <spdlog/spdlog.h>

#include "core/log.h"

namespace hgj::sim {

class MqttLink::Callback final : public mqtt::callback {
public:
  explicit Callback(MqttLink& link) : link_(link) {}

  void connected(const std::string& /*cause*/) override {
    spdlog::info("mqtt: connected to {}", link_.settings_.url);
    link_.ever_connected_ = true;
    for (const auto& topic : link_.subscriptions_) {
      try {
        link_.client_->subscribe(topic, 1);
      } catch (const mqtt::exception& e) {
        spdlog::warn("mqtt: cannot subscribe to {}: {}", topic, e.what());
      }
    }
  }
  void connection_lost(const std::string& cause) override {
    spdlog::warn("mqtt: connection to {} lost ({}); reconnecting", link_.settings_.url,
                 cause.empty() ? "no reason given" : cause);
  }
  void message_arrived(mqtt::const_message_ptr msg) override {
    if (link_.on_message_) {
      link_.on_message_(msg->get_topic(), msg->to_string());
    }
  }

private:
  MqttLink& link_;
};

MqttLink::MqttLink(const MqttSettings& settings, std::vector<std::string> subscriptions,
                   MessageFn on_message)
    : settings_(settings),
      subscriptions_(std::move(subscriptions)),
      on_message_(std::move(on_message)) {
  auto create = mqtt::create_options_builder()
                    .send_while_disconnected(true, true)
                    .max_buffered_messages(settings_.max_buffered)
                    .delete_oldest_messages(true)
                    .finalize();
  client_ = std::make_unique<mqtt::async_client>(settings_.url, settings_.client_id, create,
                                                 nullptr);
  callback_ = std::make_unique<Callback>(*this);
  client_->set_callback(*callback_);
}

MqttLink::~MqttLink() {
  stop();
  client_.reset();
}

void MqttLink::start() {
  if (started_.exchange(true)) {
    return;
  }
  // A persistent session, so relay commands sent while the simulator reconnects still arrive.
  connect_opts_ = std::make_unique<mqtt::connect_options>(
      mqtt::connect_options_builder()
          .mqtt_version(MQTTVERSION_3_1_1)  // no fallback to 3.1 racing our reconnects
          .clean_session(false)
          .keep_alive_interval(settings_.keep_alive)
          .automatic_reconnect(std::chrono::milliseconds(250), std::chrono::seconds(5))
          .connect_timeout(std::chrono::seconds(5))
          .finalize());
  maintain();
}

void MqttLink::maintain() {
  if (!started_ || ever_connected_) {
    return;
  }
  // Paho reconnects by itself only after a first successful connection; until then the
  // simulation thread retries about once a second.
  auto now = std::chrono::steady_clock::now();
  if (connect_token_ && !connect_token_->is_complete()) {
    return;
  }
  if (connect_token_ && now - last_attempt_ < std::chrono::seconds(1)) {
    return;
  }
  if (connect_token_) {
    static core::RateLimitedLog log(1, std::chrono::seconds(30));
    log.warn("mqtt: cannot connect to {} yet; retrying", settings_.url);
  }
  last_attempt_ = now;
  try {
    connect_token_ = client_->connect(*connect_opts_);
  } catch (const mqtt::exception& e) {
    spdlog::error("mqtt: connect to {} failed: {}", settings_.url, e.what());
  }
}

void MqttLink::stop() {
  if (!started_.exchange(false)) {
    return;
  }
  // Also when not connected: disconnect() ends Paho's automatic reconnect attempts.
  try {
    client_->disconnect(std::chrono::seconds(2))->wait_for(std::chrono::seconds(3));
  } catch (const mqtt::exception& e) {
    spdlog::debug("mqtt: disconnect: {}", e.what());
  }
}

bool MqttLink::publish(const std::string& topic, const std::string& payload) {
  try {
    client_->publish(topic, payload.data(), payload.size(), settings_.qos, false);
    return true;
  } catch (const mqtt::exception& e) {
    ++failed_;
    static core::RateLimitedLog log;
    log.warn("mqtt: publish to {} failed: {}", topic, e.what());
    return false;
  }
}

int MqttLink::capacity() const {
  auto pending = static_cast<int>(client_->get_pending_delivery_tokens().size());
  return std::max(0, settings_.max_in_flight - pending);
}

bool MqttLink::connected() const { return client_->is_connected(); }

} // namespace hgj::sim
