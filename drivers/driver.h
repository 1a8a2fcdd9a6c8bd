#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "model/compound.h"
#include "model/reading.h"

namespace hgj::drivers {

/// A message exactly as the MQTT driver received it; the profile layer decodes it on the
/// pipeline thread. `topic` and `payload` point into storage kept alive by `owner` (the client
/// library's own message object), so handing a message over copies no bytes.
struct MqttMessage {
  std::shared_ptr<const void> owner;
  std::string_view topic;
  std::string_view payload;
  int64_t rx_ms = 0;

  /// A message owning copies of its text (tests, other drivers).
  static MqttMessage copyOf(std::string topic, std::string payload, int64_t rx_ms) {
    auto texts = std::make_shared<std::pair<std::string, std::string>>(std::move(topic),
                                                                       std::move(payload));
    MqttMessage m;
    m.topic = texts->first;
    m.payload = texts->second;
    m.owner = std::move(texts);
    m.rx_ms = rx_ms;
    return m;
  }
};

/// Readings a Modbus line thread decoded from one poll of one device (through the profile layer's
/// register decoding).
struct ReadingBatch {
  model::DeviceIndex device = model::kNoDevice;
  std::vector<model::Reading> readings;
};

/// A device's reachability changed (Modbus timeouts and back-off; MQTT status topics).
struct DeviceHealth {
  model::DeviceIndex device = model::kNoDevice;
  bool online = false;
  std::string reason;  ///< "timeout", "exception 06 (slave busy)", ...
  /// Non-empty when the device answers but refuses every read its profile asks for (Modbus
  /// exceptions 01-03): not online, and not merely silent either (the API shows it `faulted`).
  std::string fault;
  int64_t ts_ms = 0;
};

/// A request to set a writable point. Results come back as a WriteResult sample.
struct WriteRequest {
  uint64_t id = 0;
  model::DeviceIndex device = model::kNoDevice;
  model::PointId point = 0;
  model::Value value;
  std::string origin;  ///< "rule:<name>", "api:operator", "upstream:<client id>#<cmd id>"
  /// The write removes power (the point's profile `safe` value: a port cut, a shed cut, a pile
  /// stop). A driver never refuses or delays it for a queue limit or a rate limit, and sends it
  /// ahead of anything else it has queued (polls, other writes).
  bool de_energize = false;
};

/// A request to read a device again now, out of its cycle: a safety rule saw a first hazardous
/// sample and wants the confirming one without waiting for the device's next report (MQTT: the
/// profile's refresh command; Modbus: an immediate poll). Best effort: a driver that cannot ask
/// ignores it; the rule then waits for the next regular sample.
struct RefreshRequest {
  model::DeviceIndex device = model::kNoDevice;
  std::string origin;  ///< "rule:<name>"
};

/// The outcome of a WriteRequest. `ok` only after the device confirmed the value (Modbus
/// read-back; for MQTT a later report showing it).
struct WriteResult {
  uint64_t request_id = 0;
  model::DeviceIndex device = model::kNoDevice;
  model::PointId point = 0;
  model::Value value;
  bool ok = false;
  int attempts = 0;
  std::string error;  ///< why it failed: "read-back mismatch (wrote 0, read 1)", "timeout", ...
  int64_t ts_ms = 0;

  /// The failed outcome of `request`.
  static WriteResult failure(const WriteRequest& request, std::string why, int attempts,
                             int64_t ts_ms) {
    WriteResult r;
    r.request_id = request.id;
    r.device = request.device;
    r.point = request.point;
    r.value = request.value;
    r.attempts = attempts;
    r.error = std::move(why);
    r.ts_ms = ts_ms;
    return r;
  }
};

/// What a driver hands to the pipeline. Write results are rare and large, so they are boxed: a
/// sample is the size of an MQTT message view, and the pipeline queue holds thousands of them.
using Sample =
    std::variant<MqttMessage, ReadingBatch, DeviceHealth, std::shared_ptr<const WriteResult>>;

/// Where drivers deliver samples (the pipeline's bounded queue). `deliver` blocks while the queue
/// is full (backpressure) and returns false only when the gateway is shutting down.
/// Called from driver threads.
class SampleSink {
public:
  virtual ~SampleSink() = default;
  virtual bool deliver(Sample&& sample) = 0;
  /// A write's outcome. Never blocks on the implementation the gateway runs (the pipeline keeps
  /// results apart from the readings queue, so a full queue never holds up a write's failure);
  /// the default forwards to deliver() for simple sinks in tests.
  virtual void deliverResult(std::shared_ptr<const WriteResult> result) {
    deliver(Sample(std::move(result)));
  }
  enum class Delivery { kTaken, kFull, kClosed };
  /// deliver() in bounded steps: waits at most `timeout` for room. kFull leaves `sample` as it
  /// was, so a driver thread can beat its heartbeat (core/heartbeat.h) and try again while the
  /// pipeline applies backpressure. The default (simple sinks in tests) blocks in deliver().
  virtual Delivery deliverFor(Sample& sample, std::chrono::milliseconds /*timeout*/) {
    return deliver(std::move(sample)) ? Delivery::kTaken : Delivery::kClosed;
  }
  /// Handles `sample` on the caller's thread, now, if the sink is idle: for the last message
  /// of a driver's read, so that at the rates devices really send (a message every few
  /// milliseconds) no second thread is woken per message. True: taken (and handled); false:
  /// `sample` is untouched and goes through deliverFor. Never blocks. The default never takes.
  virtual bool handleNow(Sample& /*sample*/) { return false; }
};

/// A southbound driver. start() launches its threads, stop() joins them. write() and refresh()
/// never block, whatever the device, the broker or the line is doing: they queue the request to
/// the driver's own thread, which sends it and reports a write's outcome (including "could not
/// be sent") through SampleSink::deliverResult. They are called on the pipeline's work (the
/// pipeline thread, or a driver thread inside SampleSink::handleNow), which
/// must never wait for a device: a safety cut leaves the moment the rule decides.
class Driver {
public:
  virtual ~Driver() = default;
  virtual const char* name() const = 0;
  virtual void start() = 0;
  virtual void stop() = 0;
  /// Whether this driver reaches `device` (so writes can be routed).
  virtual bool handles(const model::Device& device) const = 0;
  /// Queues a write; the result arrives through the SampleSink as a WriteResult.
  virtual void write(const WriteRequest& request) = 0;
  /// Queues an out-of-cycle read of the device (see RefreshRequest); never blocks.
  virtual void refresh(const RefreshRequest& request) = 0;
  /// Per-subsystem status for /healthz: "ok", or what is wrong.
  virtual std::string health() const = 0;
};

} // namespace hgj::drivers
