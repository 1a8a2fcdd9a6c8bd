#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "gateway/alerts/alerts_config.h"

namespace hgj::alerts {

/// Delivery state of one channel, for /healthz and the API.
struct ChannelStatus {
  std::string id;
  std::string type;
  int64_t pending = 0;        ///< notifications waiting (including retries)
  int64_t messages_sent = 0;  ///< HTTP messages delivered since start
  int64_t failures = 0;       ///< failed attempts since start
  int64_t backoff_ms = 0;     ///< current backoff; 0 = healthy
  std::string last_error;
};

/// What one delivery pass of a channel did.
struct PumpResult {
  int delivered = 0;     ///< notifications delivered (several per message when batched)
  bool attempted = false;  ///< a request was made
  bool ok = false;         ///< and it succeeded
};

/// Delivers the notifications the AlertManager committed to `alert_notifications` to the HTTP
/// channels (WeCom, DingTalk, generic webhook). One worker thread per enabled HTTP channel, each
/// with its own SQLite connection (WAL, synchronous=FULL) and HTTP client, so a down or slow robot
/// only delays its own queue and never the pipeline or the other channels.
///
/// Per channel: oldest first; several pending notifications go in one message (up to
/// `max_batch` and `max_bytes`), so the robot's `rate_per_minute` is never exceeded and a burst is
/// delayed and batched rather than dropped; a failed request (no answer, HTTP error, or a robot
/// errcode != 0) backs off exponentially from `retry_initial` to `retry_max`; rows are marked
/// `sent` only after the robot accepted them, so a restart resends whatever was not delivered.
/// Rows older than `expire_after` are marked `expired` rather than sent.
///
/// Time comes from the injected clock (steady for rate and backoff), so tests drive retries with a
/// ManualClock and pumpOnce() without sleeping.
class Notifier {
public:
  /// Throws DbError when the database cannot be opened (startup).
  Notifier(const AlertsConfig& config, const std::string& db_path, const core::Clock& clock,
           core::MetricsRegistry& metrics);
  ~Notifier();
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  /// Starts the worker threads.
  void start();
  /// Stops and joins them (an in-flight request finishes within its timeout).
  void stop();
  /// New notifications were committed: look now. Thread-safe, never blocks.
  void wake();

  /// One delivery pass of one channel on the calling thread: for tests, and only while the
  /// workers are not started.
  PumpResult pumpOnce(const std::string& channel_id);

  /// Thread-safe.
  std::vector<ChannelStatus> status() const;

private:
  struct Worker;
  void run(Worker& w);
  PumpResult pump(Worker& w);
  int64_t nextWaitMs(const Worker& w) const;

  AlertsConfig config_;
  const core::Clock& clock_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<bool> running_{false};
  std::mutex wake_mu_;
  std::condition_variable wake_cv_;
  uint64_t wake_gen_ = 0;  // guarded by wake_mu_
  core::RateLimitedLog log_;
};

} // namespace hgj::alerts
