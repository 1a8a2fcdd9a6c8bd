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
#include "gateway/alerts/delivery_book.h"
#include "gateway/alerts/message_format.h"
#include "gateway/storage/durable.h"

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

/// Delivers the notifications the AlertManager queued (its DeliveryBook, mirrored in
/// `alert_notifications`) to the HTTP channels (WeCom, DingTalk, generic webhook). One worker
/// thread per enabled HTTP channel, each with its own HTTP client, so a down or slow robot only
/// delays its own queue and never the pipeline or the other channels. Workers never touch the
/// database: they take notifications from memory (committed or not, so a full disk does not
/// stop a message) and record each outcome (sent, failed attempt, expired) through the
/// DurableSink, in order after the notification's own row.
///
/// Per channel: oldest first; several pending notifications go in one message (up to
/// `max_batch` and `max_bytes`), so the robot's `rate_per_minute` is never exceeded and a burst is
/// delayed and batched rather than dropped; a failed request (no answer, HTTP error, or a robot
/// errcode != 0) backs off exponentially from `retry_initial` to `retry_max`; rows are marked
/// `sent` only after the robot accepted them, so a restart resends whatever was not delivered
/// (at least once: a crash between the answer and the commit of `sent` repeats one message).
/// Rows older than `expire_after` are marked `expired` rather than sent.
///
/// Time comes from the injected clock (steady for rate and backoff), so tests drive retries with a
/// ManualClock and pumpOnce() without sleeping.
class Notifier {
public:
  /// `book` and `sink` are the AlertManager's (deliveries(), durableSink()) and must outlive
  /// the Notifier. Throws std::invalid_argument for a channel URL that does not parse.
  Notifier(const AlertsConfig& config, DeliveryBook& book, storage::DurableSink& sink,
           const core::Clock& clock, core::MetricsRegistry& metrics);
  ~Notifier();

  /// New notifications are queued: look now. Thread-safe, never blocks.
  void wake();
  /// Starts the worker threads.
  void start();
  /// Stops and joins them (an in-flight request finishes within its timeout).
  void stop();

  /// One delivery pass of one channel on the calling thread: for tests, and only while the
  /// workers are not started.
  PumpResult pumpOnce(const std::string& channel_id);

  /// Thread-safe.
  std::vector<ChannelStatus> status() const;

  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

private:
  struct Worker;
  void run(Worker& w);
  /// One pass of a channel's worker: expire, respect backoff and rate, take a batch, post it,
  /// record the outcome.
  PumpResult pump(Worker& w);
  int64_t nextWaitMs(const Worker& w) const;
  void refreshPending(Worker& w);
  /// Notifications older than delivery.expire_after are given up (recorded, counted).
  void expireOld(Worker& w, int64_t now_wall);
  /// True (and the wait hint set) while a backoff or the per-minute rate holds the channel.
  bool heldBack(Worker& w, int64_t now);
  /// The oldest pending notifications that fit one message of the channel.
  std::vector<OutgoingItem> nextBatch(Worker& w, const std::string& title,
                                      int64_t& oldest_created);
  /// Renders and sends one message; the error ("" when delivered), `too_fast` for throttling.
  std::string post(Worker& w, const std::string& title, const std::vector<OutgoingItem>& items,
                   int64_t now, bool& too_fast);
  void delivered(Worker& w, const std::vector<OutgoingItem>& items, std::vector<int64_t> ids,
                 int64_t now_wall);
  void failed(Worker& w, std::vector<int64_t> ids, const std::string& error, bool too_fast,
              int64_t now, int64_t now_wall);

  AlertsConfig config_;
  DeliveryBook& book_;
  storage::DurableSink& sink_;
  const core::Clock& clock_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<bool> running_{false};
  std::mutex wake_mu_;
  std::condition_variable wake_cv_;
  uint64_t wake_gen_ = 0;  // guarded by wake_mu_
  core::RateLimitedLog log_;
};

} // namespace hgj::alerts
