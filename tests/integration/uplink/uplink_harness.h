#pragma once

// Integration helpers of the uplink tests: a recording MQTT subscriber (Paho); the broker is
// tests/support's.


#include <mutex>
#include <string>
#include <vector>

#include <mqtt/async_client.h>

#include "tests/unit/uplink/uplink_fixtures.h"

namespace hgj::uplink::testing {

using hgj::test::Broker;
using hgj::test::freePort;
/// Whether something accepts TCP connections on 127.0.0.1:port.
inline bool portAccepts(int port) { return hgj::test::portOpen(port); }

struct Received {
  std::string topic;
  std::string payload;
  bool retained = false;
};

/// Subscribes at QoS 1 with a persistent session (clean_session off) and reconnects by itself,
/// so what the broker queued for it while it was away is delivered. Thread-safe.
class Recorder {
public:
  Recorder(const std::string& url, std::vector<std::string> filters,
           const std::string& client_id = "recorder")
      : client_(url, client_id, mqtt::create_options(MQTTVERSION_3_1_1),
                static_cast<mqtt::iclient_persistence*>(nullptr)),
        filters_(std::move(filters)) {
    client_.set_message_callback([this](mqtt::const_message_ptr m) {
      std::lock_guard lock(mu_);
      got_.push_back({m->get_topic(), m->get_payload_str(), m->is_retained()});
    });
    client_.set_connected_handler([this](const std::string&) {
      for (const auto& f : filters_) {
        client_.subscribe(f, 1);
      }
    });
    mqtt::connect_options opts;
    opts.set_clean_session(false);
    opts.set_keep_alive_interval(5);
    opts.set_automatic_reconnect(1, 1);
    client_.connect(opts)->wait_for(std::chrono::seconds(5));
    waitFor([&] { return client_.is_connected(); }, std::chrono::seconds(5));
    for (const auto& f : filters_) {
      client_.subscribe(f, 1)->wait_for(std::chrono::seconds(5));
    }
  }
  ~Recorder() {
    try {
      client_.disconnect()->wait_for(std::chrono::seconds(2));
    } catch (...) {
    }
  }

  std::vector<Received> messages() const {
    std::lock_guard lock(mu_);
    return got_;
  }
  std::vector<Received> on(const std::string& topic) const {
    std::vector<Received> out;
    std::lock_guard lock(mu_);
    for (const auto& m : got_) {
      if (m.topic == topic) {
        out.push_back(m);
      }
    }
    return out;
  }
  size_t count() const {
    std::lock_guard lock(mu_);
    return got_.size();
  }
  void publish(const std::string& topic, const std::string& payload) {
    client_.publish(topic, payload, 1, false)->wait_for(std::chrono::seconds(5));
  }

private:
  mqtt::async_client client_;
  std::vector<std::string> filters_;
  mutable std::mutex mu_;
  std::vector<Received> got_;
};

} // namespace hgj::uplink::testing
