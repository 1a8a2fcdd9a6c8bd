#pragma once

// What the MQTT client tests share: a sink standing in for the pipeline, the example compound,
// and a client under test.
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <mutex>
#include <string>
#include <vector>

#include <unistd.h>

#include <catch2/catch.hpp>

#include "core/clock.h"
#include "core/config_node.h"
#include "core/metrics.h"
#include "core/heartbeat.h"
#include "drivers/mqtt/mqtt_ingest.h"
#include "gateway/config/config.h"
#include "tests/support/test_support.h"

namespace hgj::test::ingest {

using drivers::MqttMessage;
using drivers::Sample;

/// Stands in for the pipeline queue: takes samples until `limit`, then blocks like a full queue
/// until the limit is raised or it is closed. Keeps the messages themselves (views into the
/// client's receive buffers), so a buffer reused too early shows as changed bytes.
class Sink final : public drivers::SampleSink {
public:
  bool deliver(Sample&& s) override {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return closed_ || taken_ < limit_; });
    return takeLocked(s);
  }
  Delivery deliverFor(Sample& s, std::chrono::milliseconds timeout) override {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, timeout, [&] { return closed_ || taken_ < limit_; })) {
      ++full_waits_;
      return Delivery::kFull;
    }
    return takeLocked(s) ? Delivery::kTaken : Delivery::kClosed;
  }
  /// As an idle pipeline's, when enabled (setHandleNow): takes the sample at once.
  bool handleNow(Sample& s) override {
    std::lock_guard lock(mu_);
    if (!handle_now_ || closed_ || taken_ >= limit_) {
      return false;
    }
    ++taken_now_;
    return takeLocked(s);
  }
  void setHandleNow(bool on) {
    std::lock_guard lock(mu_);
    handle_now_ = on;
  }
  /// Samples taken through handleNow (the rest came through deliver/deliverFor).
  size_t takenNow() const {
    std::lock_guard lock(mu_);
    return taken_now_;
  }
  /// Never blocks, as the pipeline's.
  void deliverResult(std::shared_ptr<const drivers::WriteResult> result) override {
    std::lock_guard lock(mu_);
    failed_writes_.push_back(result->error);
  }
  /// How often deliverFor() gave up on a full queue.
  size_t fullWaits() const {
    std::lock_guard lock(mu_);
    return full_waits_;
  }
  void setLimit(size_t n) {
    {
      std::lock_guard lock(mu_);
      limit_ = n;
    }
    cv_.notify_all();
  }
  void close() {
    {
      std::lock_guard lock(mu_);
      closed_ = true;
    }
    cv_.notify_all();
  }
  size_t count() const {
    std::lock_guard lock(mu_);
    return messages_.size();
  }
  std::vector<std::pair<std::string, std::string>> texts() const {
    std::lock_guard lock(mu_);
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& m : messages_) {
      out.emplace_back(std::string(m.topic), std::string(m.payload));
    }
    return out;
  }
  std::vector<std::string> failedWrites() const {
    std::lock_guard lock(mu_);
    return failed_writes_;
  }

private:
  bool takeLocked(Sample& s) {
    if (closed_) {
      return false;
    }
    ++taken_;
    if (auto* m = std::get_if<MqttMessage>(&s)) {
      messages_.push_back(std::move(*m));
    } else if (auto* w = std::get_if<std::shared_ptr<const drivers::WriteResult>>(&s)) {
      failed_writes_.push_back((*w)->error);
    }
    return true;
  }

  mutable std::mutex mu_;
  std::condition_variable cv_;
  size_t full_waits_ = 0;
  size_t limit_ = SIZE_MAX;
  size_t taken_ = 0;
  size_t taken_now_ = 0;
  bool handle_now_ = false;
  bool closed_ = false;
  std::vector<MqttMessage> messages_;
  std::vector<std::string> failed_writes_;
};

/// The example compound (for command topics); loaded once.
inline const config::GatewayConfig& exampleConfig() {
  static const config::GatewayConfig cfg = [] {
    core::Diagnostics diag;
    auto c = config::loadConfig(sourcePath("conf/gateway.yaml"), {}, diag);
    REQUIRE(diag.ok());
    return c;
  }();
  return cfg;
}

/// A client config for tests: quick reconnects.
inline drivers::mqtt::MqttConfig clientConfig(const std::string& url, const std::string& id) {
  drivers::mqtt::MqttConfig c;
  c.url = url;
  c.client_id = id;
  c.keepalive_s = 30;
  c.reconnect_min_ms = 50;
  c.reconnect_max_ms = 200;
  return c;
}

/// A client under test (cfg.client picks which), started, feeding `sink`; beats `liveness`.
struct Rig {
  Sink sink;
  core::MetricsRegistry metrics;
  core::Liveness liveness;
  std::unique_ptr<drivers::mqtt::MqttIngest> client;

  explicit Rig(const drivers::mqtt::MqttConfig& cfg,
               std::vector<std::string> filters = {"compound/#"},
               const core::Clock& clock = core::SystemClock::instance()) {
    client = drivers::mqtt::makeMqttIngest(cfg, std::move(filters), *exampleConfig().compound,
                                           sink, metrics, clock);
    client->setLiveness(liveness);
    client->start();
  }
  ~Rig() {
    sink.close();
    client->stop();
  }
  bool subscribed() {
    return waitFor([&] { return client->subscribed(); }, std::chrono::seconds(10));
  }
  /// The value of a metric line (exact name with labels), 0 when absent.
  double metric(const std::string& line) const {
    std::string text = const_cast<core::MetricsRegistry&>(metrics).render();
    size_t at = text.find("\n" + line + " ");
    if (at == std::string::npos) {
      return 0;
    }
    return std::stod(text.substr(at + line.size() + 2));
  }
};

/// CPU seconds (user + system) used so far by this process's thread named `name`; -1 if none.
inline double threadCpuSeconds(const std::string& name) {
  DIR* d = ::opendir("/proc/self/task");
  if (d == nullptr) {
    return -1;
  }
  double result = -1;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') {
      continue;
    }
    std::string base = std::string("/proc/self/task/") + e->d_name;
    std::ifstream comm(base + "/comm");
    std::string n;
    std::getline(comm, n);
    if (n != name) {
      continue;
    }
    std::ifstream stat(base + "/stat");
    std::string s((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    size_t close = s.rfind(')');
    std::istringstream rest(s.substr(close + 2));
    std::string field;
    unsigned long long utime = 0;
    unsigned long long stime = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i) {
      if (i == 14) {
        utime = std::stoull(field);
      } else if (i == 15) {
        stime = std::stoull(field);
      }
    }
    result = static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
  }
  ::closedir(d);
  return result;
}

/// Resident memory of this process in bytes.
inline double residentBytes() {
  std::ifstream statm("/proc/self/statm");
  long pages = 0;
  long resident = 0;
  statm >> pages >> resident;
  return static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE));
}

inline std::string parkingPayload(int i) {
  return R"({"occupied":true,"ts":)" + std::to_string(1764252000000LL + i) + "}";
}

} // namespace hgj::test::ingest
