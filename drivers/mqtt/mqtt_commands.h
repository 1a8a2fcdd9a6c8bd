#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <variant>
#include <vector>

#include "drivers/driver.h"
#include "model/compound.h"

namespace hgj::drivers::mqtt {

/// A write request as the MQTT message that carries it: the profile's command topic and
/// `{"<point>": value, "<id_field>": "<request id>"}`. `error` is set (and the rest empty) when
/// the device's profile has no MQTT command.
struct CommandMessage {
  std::string topic;
  std::string payload;
  std::string error;
};
CommandMessage commandMessage(const model::Compound& compound, const WriteRequest& request);
/// A refresh request as the MQTT message that carries it: the profile's refresh topic and
/// payload; `error` is set when the profile declares no refresh.
CommandMessage refreshMessage(const model::Compound& compound, const RefreshRequest& request);

/// Reports a write that could not even be sent as a failed WriteResult through the sink
/// (SampleSink::deliverResult: never blocks).
void reportWriteFailed(SampleSink& sink, const WriteRequest& request, std::string why,
                       int64_t ts_ms);

/// A write or a refresh on its way from the pipeline thread to an MQTT client's own thread.
using Command = std::variant<WriteRequest, RefreshRequest>;

/// The hand-over of drivers/driver.h: the pipeline thread pushes (never blocks; a full queue
/// refuses), the client's thread pops one command whenever it can send one, so the queue alone
/// holds what waits. `wake` (set before use) is called after every push, to wake the client's
/// thread. Thread-safe.
class CommandQueue {
public:
  explicit CommandQueue(size_t capacity) : capacity_(capacity) {}
  void setWake(std::function<void()> wake) { wake_ = std::move(wake); }

  /// False when `capacity` commands are already waiting.
  bool push(Command command) {
    {
      std::lock_guard lock(mu_);
      if (items_.size() >= capacity_) {
        return false;
      }
      items_.push_back(std::move(command));
    }
    if (wake_) {
      wake_();
    }
    return true;
  }
  /// The oldest waiting command, if any.
  bool tryPop(Command& out) {
    std::lock_guard lock(mu_);
    if (items_.empty()) {
      return false;
    }
    out = std::move(items_.front());
    items_.pop_front();
    return true;
  }
  /// write() of a client: queued, or refused (false) and reported failed through `sink` at
  /// once ("mqtt command queue full").
  bool offerWrite(const WriteRequest& request, SampleSink& sink, int64_t now_ms) {
    if (push(request)) {
      return true;
    }
    reportWriteFailed(sink, request,
                      "mqtt command queue full (" + std::to_string(capacity_) +
                          " waiting for the local broker)",
                      now_ms);
    return false;
  }
  /// A stopping client: every waiting write reported failed with `why`, refreshes dropped. The
  /// number of writes failed.
  size_t failAll(SampleSink& sink, const std::string& why, int64_t now_ms) {
    size_t failed = 0;
    Command left;
    while (tryPop(left)) {
      if (auto* req = std::get_if<WriteRequest>(&left)) {
        reportWriteFailed(sink, *req, why, now_ms);
        ++failed;
      }
    }
    return failed;
  }
  bool empty() const {
    std::lock_guard lock(mu_);
    return items_.empty();
  }
  size_t capacity() const { return capacity_; }

private:
  const size_t capacity_;
  std::function<void()> wake_;
  mutable std::mutex mu_;
  std::deque<Command> items_;  // guarded by mu_
};

} // namespace hgj::drivers::mqtt
