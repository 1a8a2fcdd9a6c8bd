#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/backoff.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "gateway/pipeline/commands.h"
#include "gateway/pipeline/read_model.h"
#include "gateway/uplink/outbox.h"
#include "gateway/uplink/replay_pacer.h"
#include "gateway/uplink/summaries.h"
#include "gateway/uplink/uplink_config.h"
#include "gateway/uplink/wire_format.h"

namespace hgj::uplink {

/// The link to the district platform: a second MQTT connection (Paho async client, QoS 1) fed
/// from the durable outbox.
///
/// Threads: start() launches the uplink thread, which owns the MQTT client: connecting (TLS,
/// credentials, keepalive, last will `hgj/{site}/status` = `offline` retained, `online` retained
/// once connected), reconnecting with exponential backoff and jitter, draining the outbox in seq
/// order with at most `inflight` unacknowledged publishes, paced by a ReplayPacer (at most
/// `replay.max_rate` messages/s, less while PUBACKs come back slowly),
/// and executing upstream commands through the CommandSink (waiting on each future with a
/// deadline, without blocking the drain). It is woken as soon as a message is committed and
/// never waits for SQLite's write lock on its way to a publish (it reads on its own
/// connection). The writes it would otherwise wait for run on a second, uplink writer thread:
/// deleting rows after their PUBACK (all acks queued meanwhile in one transaction), building
/// summaries from the read model on their periods and on significant change, and batching raw
/// telemetry. Paho's callback threads only hand acks, lost connections and incoming commands to
/// the uplink thread under a mutex.
///
/// An alert staged by stage() is published by the staging thread itself when the send lock is
/// free and the link is up (no wake-up of the uplink thread on its way); otherwise the uplink
/// thread, woken by the stage, publishes it on its turn.
///
/// Every message is staged in the outbox (memory) and published at once, while its row is
/// committed (by the outbox, or in the alert's own transaction); after a restart (or kill -9)
/// the outbox is sent again from its oldest row, so the platform sees every committed msg_id at
/// least once, in order, duplicates carrying the same msg_id.
///
/// Ownership: the ReadModel, CommandSink, Clock and MetricsRegistry must outlive this object.
/// When `config.enabled` is false nothing is opened: enqueue() accepts and discards.
class Uplink {
public:
  /// Opens the outbox in `db_path` (throws std::runtime_error when it cannot).
  Uplink(const UplinkConfig& config, const std::string& site_id, const std::string& db_path,
         const pipeline::ReadModel& read_model, pipeline::CommandSink& commands,
         const core::Clock& clock, core::MetricsRegistry& metrics);
  ~Uplink();
  Uplink(const Uplink&) = delete;
  Uplink& operator=(const Uplink&) = delete;

  void start();
  /// Publishes `offline` (native mode), disconnects and joins the thread. Idempotent. Rows not
  /// yet acknowledged stay in the outbox for the next start.
  void stop();

  /// Commits one message to the outbox (adds `msg_id` and `ts`); the uplink thread may publish
  /// it as soon as it is staged, before the commit. Native topic `hgj/{site}/{subtopic}`
  /// (alerts: subtopic "alerts"). Thread-safe; costs one SQLite transaction (fsync), so call it
  /// for events, not per reading. False when SQLite failed (logged; the message is kept in
  /// memory, sent, and written later) or a droppable message was refused because the outbox is
  /// full of alerts.
  bool enqueue(Kind kind, const std::string& subtopic, nlohmann::json body);

  struct Message {
    Kind kind = Kind::Summary;
    std::string subtopic;
    nlohmann::json body;
  };
  /// Commits several messages in one transaction (summaries of one tick, bulk loads).
  bool enqueueMany(std::vector<Message> messages);

  /// The alert path: hands the message (with `msg_id` and `ts`) to the uplink thread at once and
  /// returns the write that records it in the outbox, for the caller to commit in its own
  /// transaction (the alert and its message: one fsync). The message is published without
  /// waiting for that commit; until it commits it lives in memory (sent again after a
  /// reconnect like any other). Nullopt when the uplink is disabled. Thread-safe, never waits
  /// for the disk.
  std::optional<storage::DurableWrite> stage(Kind kind, const std::string& subtopic,
                                             nlohmann::json body);

  /// Sends every summary at the next turn of the uplink thread. Thread-safe.
  void requestSummaries();

  /// Called when the full outbox dropped messages, with the kind and the running total, on the
  /// thread that enqueued (the pipeline thread for alerts): the wiring raises an alert from it.
  /// Set before start().
  void setDropHandler(Outbox::DropHandler handler);

  /// Where `config_push` commands go (docs/remote-config.md): `submit` validates and stores a
  /// bundle and returns the answer; `answered` is called on the uplink thread once that answer
  /// is in the outbox (a restart may follow). Set before start(); without it a push is refused.
  struct ConfigPushHandler {
    std::function<std::future<pipeline::CommandResult>(config_push::ConfigBundle bundle,
                                                       std::string request_id,
                                                       std::string identity)>
        submit;
    std::function<void()> answered;
  };
  void setConfigPushHandler(ConfigPushHandler handler) { config_push_ = std::move(handler); }

  /// "connected to ssl://..; outbox 0" or "disconnected (why); retry in 4s; outbox 1523 (oldest
  /// 2h)". Thread-safe.
  std::string health() const;
  bool connected() const { return connected_.load(); }
  OutboxStats outboxStats() const;

private:
  struct Link;
  struct SessionMessage {
    std::string topic;
    std::string payload;
    bool retained = false;
  };
  struct PendingCommand {
    ParsedCommand parsed;
    std::future<pipeline::CommandResult> future;
    core::SteadyTime deadline;
    bool config_push = false;
  };

  void run();
  void loopOnce();
  /// One connection attempt (uplink thread, send lock held): on failure the backoff's next
  /// delay and the error for health(); on success onConnected().
  void tryConnect();
  /// A fresh session: the window restarts from the outbox's oldest row, `online` goes first.
  void onConnected();
  void dropLink(const std::string& why);
  void processAcks(bool force = false);
  /// Publishes from the outbox while the window and the pacer allow. `from_uplink` false: the
  /// alert fast path (another thread, send_mu_ held): reads no disk, and a failed publish is
  /// put back for the uplink thread, which owns dropping the link.
  void fillWindow(bool from_uplink = true);
  /// The alert fast path: an alert just staged is published on the staging thread when the
  /// send lock is free and the link is up, instead of waiting for the uplink thread to wake.
  void publishStagedNow();
  /// The local policy for a parsed command (uplink.commands): per-point write allow-list,
  /// TLS for writes, overrides; sets the command's audit identity.
  void authorize(ParsedCommand& p) const;
  void handleIncoming();
  void pollCommands();
  void answer(const ParsedCommand& cmd, bool ok, int status, const std::string& message);
  void runSummaries();
  void runTelemetry();
  void runWriter();
  void wakeWriter();
  /// Waits (uplink thread) until the writer has deleted every row acked so far, so that a
  /// reconnect does not send acknowledged rows again.
  void waitForDeletes(std::chrono::milliseconds timeout);
  void announceDevices();
  core::SteadyTime nextWake() const;

  const UplinkConfig config_;
  const std::string site_id_;
  const pipeline::ReadModel& read_model_;
  pipeline::CommandSink& commands_;
  const core::Clock& clock_;
  const WireFormat format_;
  std::unique_ptr<Outbox> outbox_;  // null when disabled

  core::Counter& published_;
  core::Counter& published_at_once_;
  core::Counter& acked_total_;
  core::Counter& connects_;
  core::Counter& connect_failures_;
  core::Counter& commands_ok_;
  core::Counter& commands_failed_;
  core::Counter& commands_refused_;
  core::Counter& incoming_dropped_;
  core::Gauge& connected_gauge_;
  core::Gauge& oldest_age_gauge_;
  core::Gauge& replay_rate_gauge_;
  core::Gauge& ack_rtt_gauge_;
  core::Counter& replay_backoffs_;
  core::RateLimitedLog refused_log_{5, std::chrono::seconds(60)};

  // Shared with Paho's callback threads and enqueue().
  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stop_requested_ = false;          // guarded by mu_
  bool work_ = false;                    // guarded by mu_: something to do now
  std::vector<int64_t> acked_;           // guarded by mu_: seqs (0 = session message)
  bool lost_ = false;                    // guarded by mu_
  std::string lost_cause_;               // guarded by mu_
  std::deque<std::pair<std::string, std::string>> incoming_;  // guarded by mu_
  size_t incoming_bytes_ = 0;            // guarded by mu_: payload bytes in incoming_
  bool summaries_requested_ = false;     // guarded by mu_
  std::string last_error_;               // guarded by mu_
  core::SteadyTime next_attempt_{};      // guarded by mu_

  std::atomic<bool> connected_{false};
  std::thread thread_;

  // Shared between the uplink thread (and requesters) and the writer thread.
  std::mutex writer_mu_;
  std::condition_variable writer_wake_;
  std::condition_variable deletes_done_;
  bool writer_stop_ = false;          // guarded by writer_mu_
  bool writer_work_ = false;          // guarded by writer_mu_
  std::vector<int64_t> to_delete_;    // guarded by writer_mu_: acked rows not yet deleted
  uint64_t deletes_queued_ = 0;       // guarded by writer_mu_: batches handed over
  uint64_t deletes_done_count_ = 0;   // guarded by writer_mu_: batches deleted (or failed)
  std::thread writer_;

  // The link and the send window: the uplink thread holds send_mu_ for each turn; an alert's
  // stage() takes it only when it is free (try_lock) to publish at once (publishStagedNow).
  // Everything from link_ to sent_at_ is guarded by it; the rest of this block is the uplink
  // thread's own.
  std::mutex send_mu_;
  std::atomic<std::thread::id> uplink_tid_{};
  std::unique_ptr<Link> link_;
  // Reconnect delays (full jitter): a district's gateways that lost the same platform broker
  // do not come back in step. Reset after a connection that lasted kStableConnection.
  core::Backoff backoff_;
  core::SteadyTime connected_at_{};
  int inflight_ = 0;
  std::vector<int64_t> acked_rows_;  // acknowledged, not yet handed to the writer
  core::SteadyTime acked_rows_since_{};
  int64_t cursor_ = 0;
  std::deque<OutboxRow> rows_;
  std::deque<SessionMessage> session_;
  bool announced_ = false;
  ReplayPacer pacer_;
  // outbox seq (or -session serial) -> publish time, for the pacer's round trips
  std::unordered_map<int64_t, core::SteadyTime> sent_at_;
  int64_t session_serial_ = 0;
  uint64_t backoffs_reported_ = 0;
  std::mt19937_64 rng_{std::random_device{}()};  // the first reconnect's spread
  std::vector<PendingCommand> pending_;
  ConfigPushHandler config_push_;
  std::deque<std::pair<std::string, pipeline::CommandResult>> recent_results_;

  // Writer thread only.
  SummaryBuilder summaries_;
  std::array<core::SteadyTime, kSummaryTypeCount> summary_sent_{};
  std::array<nlohmann::json, kSummaryTypeCount> summary_sig_{};
  uint64_t summary_version_ = 0;
  core::SteadyTime summary_checked_{};
  core::SteadyTime telemetry_at_{};
  int64_t telemetry_after_ms_ = 0;
};

} // namespace hgj::uplink
