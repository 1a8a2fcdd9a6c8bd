#include "drivers/mqtt/paho_ingest.h"

#include "core/thread_name.h"
#include "drivers/mqtt/paho_tls.h"


#include <mqtt/async_client.h>
#include <spdlog/spdlog.h>

#include "core/backoff.h"
#include "core/log.h"

namespace hgj::drivers::mqtt {
namespace {

/// The longest one wait of our thread: it beats at least this often.
constexpr int64_t kStepMs = 500;
constexpr std::chrono::milliseconds kDeliverStep{250};
/// A message callback without progress for this long means the ingest is stuck.
constexpr int64_t kCallbackStuckMs = 5'000;
constexpr int64_t kConnectWaitMs = 10'000;
/// A connection that lasted this long resets the reconnect backoff.
constexpr int64_t kStableSessionMs = 5'000;
constexpr int kMaxInFlight = 64;

} // namespace

/// Paho calls this when the broker answered our SUBSCRIBE (on its own thread).
class PahoIngest::SubscribeListener final : public ::mqtt::iaction_listener {
public:
  explicit SubscribeListener(PahoIngest& driver) : driver_(driver) {}
  void on_success(const ::mqtt::token&) override {
    driver_.subscribed_ = true;
    spdlog::info("mqtt: subscribed to {} topic filters", driver_.subscriptions_.size());
  }
  void on_failure(const ::mqtt::token& tok) override {
    spdlog::error("mqtt: subscribe refused by the broker (reason {})", tok.get_reason_code());
  }

private:
  PahoIngest& driver_;
};

/// Paho calls this once a command of ours was written (QoS 0) or could not be (its threads).
class PahoIngest::PublishListener final : public ::mqtt::iaction_listener {
public:
  explicit PublishListener(PahoIngest& driver) : driver_(driver) {}
  void on_success(const ::mqtt::token&) override { done(); }
  void on_failure(const ::mqtt::token&) override { done(); }

private:
  void done() {
    int n = driver_.in_flight_.load();
    while (n > 0 && !driver_.in_flight_.compare_exchange_weak(n, n - 1)) {
    }
  }
  PahoIngest& driver_;
};

PahoIngest::PahoIngest(MqttConfig cfg, std::vector<std::string> subscriptions,
                       const model::Compound& compound, SampleSink& sink,
                       core::MetricsRegistry& metrics, const core::Clock& clock)
    : MqttIngest(metrics), cfg_(std::move(cfg)), subscriptions_(std::move(subscriptions)),
      compound_(compound), sink_(sink), clock_(clock),
      commands_queue_(cfg_.command_queue) {
  commands_queue_.setWake([this] {
    {
      std::lock_guard lock(mu_);
      wake_ = true;
    }
    cv_.notify_all();
  });
}

PahoIngest::~PahoIngest() { stop(); }

void PahoIngest::start() {
  if (running_.exchange(true)) {
    return;
  }
  joinLiveness();
  subscribe_listener_ = std::make_unique<SubscribeListener>(*this);
  publish_listener_ = std::make_unique<PublishListener>(*this);
  // No Paho persistence: inbound QoS 1 state lives in the broker's persistent session, and the
  // commands we publish are tracked (and retried) by the pipeline's actuator.
  client_ = std::make_unique<::mqtt::async_client>(
      cfg_.url, cfg_.client_id, static_cast<::mqtt::iclient_persistence*>(nullptr));
  client_->set_message_callback([this](::mqtt::const_message_ptr msg) {
    std::string_view topic = msg->get_topic();
    std::string_view payload;
    if (const auto& p = msg->get_payload_ref(); p) {
      payload = std::string_view(p.data(), p.size());
    }
    onMessage(std::move(msg), topic, payload);
  });
  client_->set_connected_handler([this](const std::string&) { onConnected(); });
  client_->set_connection_lost_handler([this](const std::string& cause) { onLost(cause); });
  thread_ = std::thread([this] {
    core::nameThisThread("hgj-mqtt-conn");
    run();
  });
}

void PahoIngest::stop() {
  if (!running_.exchange(false)) {
    return;
  }
  {
    std::lock_guard lock(mu_);
    wake_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) {
    thread_.join();
  }
  try {
    if (client_ && client_->is_connected()) {
      client_->disconnect(std::chrono::milliseconds(500))->wait_for(std::chrono::seconds(2));
    }
  } catch (const ::mqtt::exception& e) {
    spdlog::warn("mqtt: disconnect: {}", e.what());
  }
  connected_ = false;
  commands_failed_.inc(commands_queue_.failAll(sink_, "the gateway is stopping", clock_.wallMs()));
  leaveLiveness();
}

void PahoIngest::beat() {
  if (heartbeat_ == nullptr) {
    return;
  }
  const int64_t now = core::steadyMs(clock_);
  if (callback_since_.load() >= 0 && now - callback_beat_.load() > kCallbackStuckMs) {
    return;  // Paho's thread is stuck in our callback: let the watchdog see it
  }
  heartbeat_->beat();
}

void PahoIngest::onMessage(std::shared_ptr<const void> owner, std::string_view topic,
                           std::string_view payload) {
  received_.inc();
  MqttMessage m;
  m.topic = topic;
  m.payload = payload;
  m.rx_ms = clock_.wallMs();
  m.owner = std::move(owner);
  Sample sample(std::move(m));
  callback_beat_ = core::steadyMs(clock_);
  callback_since_ = callback_beat_.load();
  // Paho acks the message when this returns, so it returns only once the pipeline took it (or
  // is gone); meanwhile it shows progress for the heartbeat. Paho runs this callback holding a
  // lock that its publish needs too, so while the pipeline is full our thread could not send
  // a command: the callback sends them itself meanwhile (a safety cut must not wait for the
  // backlog).
  while (sink_.deliverFor(sample, kDeliverStep) == SampleSink::Delivery::kFull) {
    callback_beat_ = core::steadyMs(clock_);
    serveCommands(true);
  }
  if (!commands_queue_.empty()) {
    serveCommands(true);
  }
  callback_since_ = -1;
}

void PahoIngest::onConnected() {
  connected_ = true;
  in_flight_ = 0;  // whatever Paho held for the last connection is gone with it
  reconnects_.inc();
  spdlog::info("mqtt: connected to {} as {}", cfg_.url, cfg_.client_id);
  // Subscribe on every connect: a broker that lost our session (no persistence) must still
  // deliver. With a kept session this is a harmless repeat.
  try {
    if (!subscriptions_.empty()) {
      std::vector<int> qos(subscriptions_.size(), 1);
      auto filters = ::mqtt::string_collection::create(subscriptions_);
      subscribed_ = false;
      client_->subscribe(filters, qos, nullptr, *subscribe_listener_);
    } else {
      subscribed_ = true;
    }
  } catch (const ::mqtt::exception& e) {
    spdlog::error("mqtt: subscribe failed: {}", e.what());
  }
}

void PahoIngest::onLost(const std::string& cause) {
  connected_ = false;
  subscribed_ = false;
  spdlog::warn("mqtt: connection to {} lost{}{}", cfg_.url, cause.empty() ? "" : ": ",
               core::printable(cause));
  {
    std::lock_guard lock(mu_);
    need_connect_ = true;
    wake_ = true;
    last_error_ = "connection lost";
  }
  cv_.notify_all();
}

bool PahoIngest::connectOnce() {
  // MQTT 3.1.1 only. Left at its default, Paho C answers a failed 3.1.1 connect by queueing a
  // 3.1 CONNECT of its own behind ours: our next connect is "ignored" (-18), two connects race,
  // a failure callback can reach a connect token the C++ layer has already dropped, and the
  // session comes back as 3.1 (tests/integration/ingest/hostile_broker_test.cpp).
  auto opts = ::mqtt::connect_options_builder()
                  .mqtt_version(MQTTVERSION_3_1_1)
                  .clean_session(false)
                  .keep_alive_interval(std::chrono::seconds(cfg_.keepalive_s))
                  .connect_timeout(std::chrono::seconds(5))
                  .automatic_reconnect(false)
                  .finalize();
  if (!cfg_.username.empty()) {
    opts.set_user_name(cfg_.username);
    opts.set_password(cfg_.password);
  }
  if (cfg_.usesTls()) {
    opts.set_ssl(pahoSslOptions(cfg_.tls));
  }
  try {
    ::mqtt::token_ptr tok = client_->connect(opts);
    const int64_t until = core::steadyMs(clock_) + kConnectWaitMs;
    while (running_) {
      beat();
      serveCommands();  // not connected yet: writes are reported failed at once
      if (tok->wait_for(std::chrono::milliseconds(kStepMs))) {
        break;
      }
      if (core::steadyMs(clock_) >= until) {
        std::lock_guard lock(mu_);
        last_error_ = "no answer within 10 s";
        return false;
      }
    }
  } catch (const ::mqtt::exception& e) {
    std::lock_guard lock(mu_);
    last_error_ = e.what();
    return false;
  }
  return running_ && client_->is_connected();
}

void PahoIngest::run() {
  core::Backoff backoff(std::chrono::milliseconds(cfg_.reconnect_min_ms),
                        std::chrono::milliseconds(cfg_.reconnect_max_ms));
  int64_t connected_at = -1;
  while (running_) {
    beat();
    bool need = false;
    {
      std::lock_guard lock(mu_);
      need = need_connect_;
    }
    if (!need) {
      serveCommands();
      waitFor(kStepMs, true);
      continue;
    }
    if (connected_at >= 0 && core::steadyMs(clock_) - connected_at >= kStableSessionMs) {
      backoff.reset();
    }
    connected_at = -1;
    {
      std::lock_guard lock(mu_);
      need_connect_ = false;
    }
    if (connectOnce()) {
      connected_at = core::steadyMs(clock_);
      std::lock_guard lock(mu_);
      last_error_.clear();
      continue;
    }
    if (!running_) {
      return;
    }
    const auto delay = backoff.next();
    {
      std::lock_guard lock(mu_);
      need_connect_ = true;
      spdlog::warn("mqtt: cannot connect to {} ({}); retrying in {} ms", cfg_.url,
                   core::printable(last_error_), delay.count());
    }
    waitFor(delay.count(), false);
  }
}

void PahoIngest::waitFor(int64_t ms, bool until_lost) {
  const int64_t until = core::steadyMs(clock_) + ms;
  while (running_) {
    const int64_t left = until - core::steadyMs(clock_);
    if (left <= 0) {
      return;
    }
    {
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, std::chrono::milliseconds(std::min(left, kStepMs)),
                   [&] { return wake_ || !running_.load(); });
      wake_ = false;
    }
    beat();
    serveCommands();
    std::lock_guard lock(mu_);
    if (until_lost && need_connect_) {
      return;
    }
  }
}

void PahoIngest::serveCommands(bool from_callback) {
  // One thread at a time, so that commands leave in the order they were queued. Our thread
  // leaves them to a message callback in progress: that callback holds Paho's lock (a publish
  // of ours would wait for it) and serves them itself. The callback never waits for the mutex.
  std::unique_lock lock(publish_mu_, std::defer_lock);
  if (from_callback) {
    if (!lock.try_lock()) {
      return;
    }
  } else {
    if (callback_since_.load() >= 0) {
      return;
    }
    lock.lock();
  }
  Command command;
  while (commands_queue_.tryPop(command)) {
    const auto* req = std::get_if<WriteRequest>(&command);
    CommandMessage msg = req != nullptr
                             ? commandMessage(compound_, *req)
                             : refreshMessage(compound_, std::get<RefreshRequest>(command));
    std::string why = msg.error;
    if (why.empty() && !connected_) {
      why = "local broker not connected";
    } else if (why.empty() && in_flight_.load() >= kMaxInFlight) {
      why = "the local broker is not taking commands (" + std::to_string(kMaxInFlight) +
            " in flight)";
    }
    if (why.empty()) {
      try {
        ++in_flight_;
        client_->publish(msg.topic, msg.payload.data(), msg.payload.size(), 0, false, nullptr,
                         *publish_listener_);
        commands_.inc();
      } catch (const ::mqtt::exception& e) {
        --in_flight_;
        why = std::string("publish failed: ") + e.what();
      }
    }
    if (!why.empty() && req != nullptr) {
      commands_failed_.inc();
      reportWriteFailed(sink_, *req, why, clock_.wallMs());
    }
  }
}

void PahoIngest::write(const WriteRequest& req) {
  if (!commands_queue_.offerWrite(req, sink_, clock_.wallMs())) {
    commands_failed_.inc();
  }
}

void PahoIngest::refresh(const RefreshRequest& req) { (void)commands_queue_.push(req); }

std::string PahoIngest::health() const {
  if (connected_) {
    return "ok";
  }
  std::lock_guard lock(mu_);
  return "disconnected from " + cfg_.url + (last_error_.empty() ? "" : ": " + last_error_);
}

} // namespace hgj::drivers::mqtt
