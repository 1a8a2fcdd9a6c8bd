#include "tests/support/fault_load.h"

#include <mqtt/async_client.h>

#include "tests/support/test_support.h"

namespace hgj::test {

struct LoadPublisher::Device : public mqtt::callback {
  Device(const std::string& url, const std::string& id, int per_device)
      : client(url, "hgj-load-" + id, mqtt::create_options(MQTTVERSION_3_1_1, per_device + 16),
               static_cast<mqtt::iclient_persistence*>(nullptr)),
        acked(static_cast<size_t>(per_device) + 1, 0),
        published_at(static_cast<size_t>(per_device) + 1) {}

  void delivery_complete(mqtt::delivery_token_ptr tok) override {
    auto msg = tok ? tok->get_message() : nullptr;
    if (!msg) {
      return;
    }
    const std::string& p = msg->get_payload_str();
    size_t at = p.find("\"seq\":");
    if (at == std::string::npos) {
      return;
    }
    int seq = std::atoi(p.c_str() + at + 6);
    std::lock_guard lock(mu);
    if (seq > 0 && static_cast<size_t>(seq) < acked.size() && acked[static_cast<size_t>(seq)] == 0) {
      acked[static_cast<size_t>(seq)] = 1;
      ++acked_count;
    }
  }

  mqtt::async_client client;
  std::string topic;
  mutable std::mutex mu;
  std::vector<uint8_t> acked;  // guarded by mu, index = seq
  size_t acked_count = 0;      // guarded by mu
  std::vector<std::chrono::steady_clock::time_point> published_at;  // guarded by mu
  int published = 0;                                                // guarded by mu
};

LoadPublisher::LoadPublisher(LoadSpec spec) : spec_(std::move(spec)) {
  for (const auto& id : spec_.devices) {
    auto d = std::make_unique<Device>(spec_.url, id, spec_.per_device);
    d->topic = "compound/parking/" + id + "/state";
    d->client.set_callback(*d);
    mqtt::connect_options opts;
    opts.set_clean_session(false);
    opts.set_keep_alive_interval(5);
    opts.set_automatic_reconnect(std::chrono::milliseconds(100), std::chrono::seconds(1));
    opts.set_max_inflight(1000);
    if (!spec_.password.empty()) {
      opts.set_user_name(id);
      opts.set_password(spec_.password);
    }
    d->client.connect(opts)->wait_for(std::chrono::seconds(10));
    devices_.push_back(std::move(d));
  }
  thread_ = std::thread([this] { run(); });
}

LoadPublisher::~LoadPublisher() {
  stop();
  for (auto& d : devices_) {
    try {
      d->client.disconnect()->wait_for(std::chrono::seconds(2));
    } catch (const std::exception&) {
    }
  }
}

void LoadPublisher::stop() {
  stop_ = true;
  if (thread_.joinable()) {
    thread_.join();
  }
}

void LoadPublisher::run() {
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + spec_.max_time;
  const size_t n = devices_.size();
  const size_t total = n * static_cast<size_t>(spec_.per_device);
  for (size_t i = 0; i < total && !stop_; ++i) {
    // Pacing of the load (not a wait for something to happen): message i is due at i / rate.
    auto due = start + std::chrono::microseconds(static_cast<int64_t>(1e6 * i / spec_.rate));
    std::this_thread::sleep_until(due);
    if (std::chrono::steady_clock::now() >= deadline) {
      break;
    }
    Device& d = *devices_[i % n];
    const int seq = static_cast<int>(i / n) + 1;
    const std::string payload = std::string("{\"occupied\":") + (seq % 2 != 0 ? "true" : "false") +
                                ",\"ts\":" + std::to_string(ts(seq)) +
                                ",\"seq\":" + std::to_string(seq) + "}";
    // A device whose client refuses the message (buffer full while the broker is away) tries
    // again, as real firmware does; bounded by the deadline.
    while (!stop_ && std::chrono::steady_clock::now() < deadline) {
      try {
        {
          std::lock_guard lock(d.mu);
          d.published_at[static_cast<size_t>(seq)] = std::chrono::steady_clock::now();
        }
        d.client.publish(d.topic, payload, 1, false);
        std::lock_guard lock(d.mu);
        d.published = seq;
        break;
      } catch (const mqtt::exception&) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
  }
  done_ = true;
}

bool LoadPublisher::waitDone(std::chrono::milliseconds timeout) {
  const size_t total = devices_.size() * static_cast<size_t>(spec_.per_device);
  return waitFor([&] { return ackedTotal() == total || (done_ && stop_); }, timeout) &&
         ackedTotal() == total;
}

std::string LoadPublisher::topic(size_t device) const { return devices_.at(device)->topic; }

int LoadPublisher::published(size_t device) const {
  std::lock_guard lock(devices_.at(device)->mu);
  return devices_[device]->published;
}

bool LoadPublisher::acked(size_t device, int seq) const {
  const Device& d = *devices_.at(device);
  std::lock_guard lock(d.mu);
  return seq > 0 && static_cast<size_t>(seq) < d.acked.size() &&
         d.acked[static_cast<size_t>(seq)] != 0;
}

std::vector<int> LoadPublisher::ackedSeqs(size_t device) const {
  const Device& d = *devices_.at(device);
  std::lock_guard lock(d.mu);
  std::vector<int> out;
  for (size_t s = 1; s < d.acked.size(); ++s) {
    if (d.acked[s] != 0) {
      out.push_back(static_cast<int>(s));
    }
  }
  return out;
}

size_t LoadPublisher::ackedTotal() const {
  size_t n = 0;
  for (const auto& d : devices_) {
    std::lock_guard lock(d->mu);
    n += d->acked_count;
  }
  return n;
}

size_t LoadPublisher::publishedTotal() const {
  size_t n = 0;
  for (const auto& d : devices_) {
    std::lock_guard lock(d->mu);
    n += static_cast<size_t>(d->published);
  }
  return n;
}

std::chrono::steady_clock::time_point LoadPublisher::publishedAt(size_t device, int seq) const {
  const Device& d = *devices_.at(device);
  std::lock_guard lock(d.mu);
  return d.published_at.at(static_cast<size_t>(seq));
}

} // namespace hgj::test
