#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/compound.h"
#include "tests/support/test_support.h"
#include "tools/sim/scenario.h"
#include "tools/sim/world.h"

namespace mqtt {
class async_client;
} // namespace mqtt

namespace hgj::sim::test {

// The shared helpers of tests/support, under the names the simulator's tests use.
using hgj::test::freePort;
using hgj::test::waitFor;

struct Message {
  std::string topic;
  std::string payload;
  nlohmann::json json() const;
};

/// Subscribes to every topic of a broker and records what arrives; reconnects by itself.
class Recorder {
public:
  explicit Recorder(const std::string& url, const std::string& filter = "#");
  ~Recorder();
  std::vector<Message> messages() const;
  std::vector<Message> on(const std::string& topic) const;
  /// True once a message on `topic` satisfies `pred`.
  bool waitFor(const std::string& topic, const std::function<bool(const nlohmann::json&)>& pred,
               std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;
  void publish(const std::string& topic, const std::string& payload);
  bool connected() const;
  void clear();

private:
  mutable std::mutex mu_;
  std::vector<Message> messages_;  // guarded by mu_
  std::unique_ptr<mqtt::async_client> client_;
};

/// Records what a World publishes (no broker).
class RecordingPublisher final : public Publisher {
public:
  bool publish(const std::string& topic, const std::string& payload) override {
    messages.push_back({topic, payload});
    return true;
  }
  std::vector<Message> messages;
};

/// A small compound with one device of every kind the simulator plays:
/// P-B1-0001..0010 (0003 linked to EV-01, 0004 LoRaWAN), EV-01, EV-02, MQTT shed S01 with
/// ports S01/P01..P03, smoke detector SD-S01, Modbus shed controller M01 (line "sheds", unit 1)
/// with ports M01/P01..P03, meter MT-EV-01 (line "garage", unit 10, linked to EV-01), CO
/// sensors CO-B1-01 (MQTT) and CO-B1-02 (line "garage", unit 20), display DSP-01 (line
/// "garage", unit 30).
std::shared_ptr<model::Compound> smallCompound();

/// Parses scenario YAML text (throws core::ConfigError).
Scenario scenarioFromText(const std::string& yaml);

} // namespace hgj::sim::test
