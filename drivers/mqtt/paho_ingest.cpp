#include "drivers/mqtt/paho_ingest.h"

#include <random>

#include <pthread.h>

#include <mqtt/async_client.h>
#include <spdlog/spdlog.h>

namespace hgj::drivers::mqtt {

PahoIngest::PahoIngest(MqttDriverConfig cfg, const model::Compound& compound, SampleSink& sink,
                       core::MetricsRegistry& metrics, const core::Clock& clock)
    : cfg_(std::move(cfg)), compound_(compound), sink_(sink), clock_(clock),
      received_(metrics.counter("hgj_mqtt_messages_received_total",
                                "messages received from the local broker")),
      reconnects_(metrics.counter("hgj_mqtt_connects_total",
                                  "successful connections to the local broker")),
      commands_(metrics.counter("hgj_mqtt_commands_published_total",
                                "write commands published to devices")) {
  metrics.gaugeFn("hgj_mqtt_connected", "1 while connected to the local broker",
                  [this] { return connected_.load() ? 1.0 : 0.0; });
}

/// Paho calls this when the broker answered our SUBSCRIBE (on its own thread).
class PahoIngest::SubscribeListener final : public ::mqtt::iaction_listener {
public:
  explicit SubscribeListener(PahoIngest& driver) : driver_(driver) {}
  void on_success(const ::mqtt::token&) override {
    driver_.subscribed_ = true;
    spdlog::info("mqtt: subscribed to {} topic filters", driver_.cfg_.subscriptions.size());
  }
  void on_failure(const ::mqtt::token& tok) override {
    spdlog::error("mqtt: subscribe refused by the broker (reason {})", tok.get_reason_code());
  }

private:
  PahoIngest& driver_;
};

PahoIngest::~PahoIngest() { stop(); }

void PahoIngest::start() {
  if (running_.exchange(true)) {
    return;
  }
  subscribe_listener_ = std::make_unique<SubscribeListener>(*this);
  // No Paho persistence: inbound QoS 1 state lives in the broker's persistent session, and the
  // commands we publish are tracked (and retried) by the pipeline's actuator.
  client_ = std::make_unique<::mqtt::async_client>(cfg_.url, cfg_.client_id,
                                                   static_cast<::mqtt::iclient_persistence*>(nullptr));
  client_->set_message_callback([this](::mqtt::const_message_ptr msg) {
    received_.inc();
    MqttMessage m;
    m.topic = msg->get_topic();
    const auto& payload = msg->get_payload_ref();
    if (payload) {
      m.payload = std::string_view(payload.data(), payload.size());
    }
    m.rx_ms = clock_.wallMs();
    m.owner = std::move(msg);
    sink_.deliver(Sample(std::move(m)));
  });
  client_->set_connected_handler([this](const std::string&) { onConnected(); });
  client_->set_connection_lost_handler([this](const std::string& cause) { onLost(cause); });
  reconnect_thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "hgj-mqtt-conn");
    reconnectLoop();
  });
}

void PahoIngest::stop() {
  if (!running_.exchange(false)) {
    return;
  }
  cv_.notify_all();
  if (reconnect_thread_.joinable()) {
    reconnect_thread_.join();
  }
  try {
    if (client_ && client_->is_connected()) {
      client_->disconnect(std::chrono::milliseconds(500))->wait_for(std::chrono::seconds(2));
    }
  } catch (const ::mqtt::exception& e) {
    spdlog::warn("mqtt: disconnect: {}", e.what());
  }
  connected_ = false;
}

void PahoIngest::onConnected() {
  connected_ = true;
  reconnects_.inc();
  spdlog::info("mqtt: connected to {} as {}", cfg_.url, cfg_.client_id);
  // Subscribe on every connect: a broker that lost our session (no persistence) must still
  // deliver. With a kept session this is a harmless repeat.
  try {
    if (!cfg_.subscriptions.empty()) {
      std::vector<int> qos(cfg_.subscriptions.size(), 1);
      auto filters = ::mqtt::string_collection::create(cfg_.subscriptions);
      subscribed_ = false;
      client_->subscribe(filters, qos, nullptr, *subscribe_listener_);
    }
  } catch (const ::mqtt::exception& e) {
    spdlog::error("mqtt: subscribe failed: {}", e.what());
  }
}

void PahoIngest::onLost(const std::string& cause) {
  connected_ = false;
  subscribed_ = false;
  spdlog::warn("mqtt: connection to {} lost{}{}", cfg_.url, cause.empty() ? "" : ": ", cause);
  {
    std::lock_guard lock(mu_);
    need_connect_ = true;
    last_error_ = "connection lost";
  }
  cv_.notify_all();
}

void PahoIngest::reconnectLoop() {
  std::mt19937_64 rng(std::random_device{}());
  int64_t backoff = cfg_.reconnect_min_ms;
  while (running_) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return !running_ || need_connect_; });
      if (!running_) {
        return;
      }
      need_connect_ = false;
    }
    auto opts = ::mqtt::connect_options_builder()
                    .clean_session(false)
                    .keep_alive_interval(std::chrono::seconds(cfg_.keepalive_s))
                    .connect_timeout(std::chrono::seconds(5))
                    .automatic_reconnect(false)
                    .finalize();
    if (!cfg_.username.empty()) {
      opts.set_user_name(cfg_.username);
      opts.set_password(cfg_.password);
    }
    bool ok = false;
    try {
      ok = client_->connect(opts)->wait_for(std::chrono::seconds(10));
    } catch (const ::mqtt::exception& e) {
      std::lock_guard lock(mu_);
      last_error_ = e.what();
    }
    if (ok && client_->is_connected()) {
      backoff = cfg_.reconnect_min_ms;
      continue;
    }
    {
      std::lock_guard lock(mu_);
      spdlog::warn("mqtt: cannot connect to {} ({}); retrying in {} ms", cfg_.url, last_error_,
                   backoff);
    }
    // Full jitter keeps a compound's gateways (and our restarts) from reconnecting in lockstep.
    std::uniform_int_distribution<int64_t> jitter(backoff / 2, backoff);
    int64_t wait_ms = jitter(rng);
    {
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, std::chrono::milliseconds(wait_ms), [&] { return !running_.load(); });
      need_connect_ = true;
    }
    backoff = std::min(backoff * 2, cfg_.reconnect_max_ms);
  }
}

void PahoIngest::write(const WriteRequest& req) {
  CommandMessage cmd = commandMessage(compound_, req);
  if (!cmd.error.empty()) {
    reportWriteFailed(sink_, req, cmd.error, clock_.wallMs());
    return;
  }
  try {
    if (!connected_) {
      reportWriteFailed(sink_, req, "local broker not connected", clock_.wallMs());
      return;
    }
    client_->publish(cmd.topic, cmd.payload, 1, false);
    commands_.inc();
  } catch (const ::mqtt::exception& e) {
    reportWriteFailed(sink_, req, std::string("publish failed: ") + e.what(), clock_.wallMs());
  }
}

void PahoIngest::refresh(const RefreshRequest& req) {
  CommandMessage cmd = refreshMessage(compound_, req);
  if (!cmd.error.empty() || !connected_) {
    return;  // best effort: the rule waits for the device's next regular report
  }
  try {
    client_->publish(cmd.topic, cmd.payload, 1, false);
    commands_.inc();
  } catch (const ::mqtt::exception&) {
  }
}

std::string PahoIngest::health() const {
  if (connected_) {
    return "ok";
  }
  std::lock_guard lock(mu_);
  return "disconnected from " + cfg_.url + (last_error_.empty() ? "" : ": " + last_error_);
}

} // namespace hgj::drivers::mqtt
