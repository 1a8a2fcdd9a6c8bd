#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/heartbeat.h"
#include "core/log.h"
#include "core/metrics.h"
#include "drivers/driver.h"
#include "drivers/mqtt/mqtt_commands.h"
#include "drivers/mqtt/mqtt_config.h"
#include "drivers/mqtt/mqtt_ingest.h"
#include "drivers/mqtt/mqtt_session.h"
#include "model/compound.h"

namespace hgj::drivers::mqtt {

/// MQTT ingest over our own MQTT 3.1.1 session (MqttIngest, `mqtt.client: batched`): a Session
/// (mqtt_session.h: the protocol, checked strictly) driven over a non-blocking TCP socket by one
/// thread of ours, which owns both.
///
/// The thread reads the socket in large chunks (up to 64 KiB per system call), hands every
/// PUBLISH to the SampleSink as a view into that chunk (no byte copied), and acknowledges a
/// chunk's messages with one write once the sink took them. While the pipeline queue is full it
/// waits in steps of 250 ms (SampleSink::deliverFor), beating its heartbeat, sending commands and
/// keepalives in between; it reads nothing meanwhile, so the broker, which keeps at most its
/// inflight window unacknowledged, slows down with the gateway.
///
/// A malformed packet, one that takes longer than mqtt.packet_timeout to arrive, a broker that
/// stops answering PINGREQ or stops taking bytes for 10 s: the connection is closed, counted
/// (hgj_mqtt_protocol_errors_total{reason}), logged with a rate limit, and the thread reconnects
/// after a core::Backoff delay (full jitter). A session that ran 5 s without a violation resets
/// the backoff. health() says `degraded` while the session waits for the rest of one packet for
/// more than a second (a broker dripping bytes), before the packet timeout cuts it.
///
/// write() and refresh() queue the command (bounded, mqtt.command_queue) and wake the thread,
/// which publishes it at QoS 1 when connected, or reports the write failed ("local broker not
/// connected"; a write whose bytes were still unsent when the connection ended: "connection
/// lost before the command was sent"). A device confirms a write by a later report (the
/// pipeline's actuator watches for it). Plain TCP only: the local broker is on the box or the
/// compound's LAN.
class BatchedIngest final : public MqttIngest {
public:
  BatchedIngest(MqttConfig cfg, std::vector<std::string> subscriptions,
                const model::Compound& compound, SampleSink& sink, core::MetricsRegistry& metrics,
                const core::Clock& clock);
  ~BatchedIngest() override;

  void start() override;
  void stop() override;
  // write() and refresh(): any thread, never block (drivers/driver.h); a refresh is dropped when
  // the queue is full (best effort).
  void write(const WriteRequest& request) override;
  void refresh(const RefreshRequest& request) override;
  std::string health() const override;

private:
  class Observer;
  struct Unsent {
    uint64_t end = 0;  ///< Session::queuedTotal() once its bytes were queued
    WriteRequest request;
  };
  enum class Handed { kTaken, kStopping };

  void run();
  bool connectSocket(std::string& error);
  /// Runs one connection until it ends; returns why.
  std::string runConnection();
  /// Hands one message to the sink in bounded waits.
  /// `last_of_read`: nothing more is buffered behind it, so an idle pipeline may handle it on
  /// this thread (SampleSink::handleNow) instead of being woken for it.
  Handed hand(MqttMessage&& message, bool last_of_read);
  /// Sends what waits in the command queue (or fails it while not connected).
  void serveCommands();
  /// Writes what the session has to send without blocking; false on a socket error.
  bool flush();
  void failUnsent(const std::string& why);
  void waitBackoff(std::chrono::milliseconds delay);
  void drainWake();
  void closeSocket();
  void beat();
  void publishState();
  void setError(std::string e);
  int64_t nowMs() const { return core::steadyMs(clock_); }

  MqttConfig cfg_;
  const model::Compound& compound_;
  SampleSink& sink_;
  const core::Clock& clock_;
  core::Counter& oversized_;
  core::Counter& duplicates_;
  std::array<core::Counter*, 12> violations_{};  ///< by wire::Violation
  core::RateLimitedLog drop_log_;
  core::RateLimitedLog violation_log_;
  std::unique_ptr<Observer> observer_;
  size_t filter_count_;

  std::atomic<bool> running_{false};
  std::atomic<int64_t> stuck_since_ms_{-1};  ///< steady ms; -1: not inside a packet
  std::atomic<uint64_t> stuck_received_{0};
  std::atomic<uint64_t> stuck_declared_{0};
  std::thread thread_;
  int wake_fd_ = -1;  ///< eventfd: stop() and write() wake the thread's poll
  CommandQueue commands_queue_;

  // The thread's own.
  Session session_;
  int fd_ = -1;
  bool sink_closed_ = false;
  bool was_connected_ = false;
  std::deque<Unsent> unsent_;

  mutable std::mutex mu_;
  std::string last_error_;  // guarded by mu_
  std::string refused_;     // guarded by mu_: subscriptions the broker refused
};

} // namespace hgj::drivers::mqtt
