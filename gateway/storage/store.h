#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "core/bounded_queue.h"
#include "core/clock.h"
#include "core/heartbeat.h"
#include "core/log.h"
#include "core/metrics.h"
#include "gateway/storage/durable.h"
#include "gateway/storage/storage_config.h"
#include "model/compound.h"
#include "model/reading.h"

namespace hgj::storage {

class Database;

/// A point's persisted state: the latest value and since when it has held it.
struct StoredPoint {
  model::DeviceIndex device = model::kNoDevice;
  model::PointId point = 0;
  model::Value value;
  model::Quality quality = model::Quality::Good;
  int64_t source_ms = 0;
  int64_t since_ms = 0;
  int64_t updated_ms = 0;
};

/// A decision to write a point, recorded durably.
struct ActuationRecord {
  uint64_t request_id = 0;
  int64_t ts_ms = 0;
  model::DeviceIndex device = model::kNoDevice;
  model::PointId point = 0;
  model::Value value;
  std::string origin;  ///< "rule:<name>", "api:<user>", "upstream:<id>"
  std::string state;   ///< "decided", "confirmed", "failed"
  std::string error;
};

/// A safety latch (a point a safety rule cut), persisted so a restart keeps it.
struct LatchRecord {
  model::DeviceIndex device = model::kNoDevice;
  model::PointId point = 0;
  std::string rule;
  model::Value value;
  int64_t since_ms = 0;
  bool set = true;  ///< false = cleared
};

/// Something the storage layer wants the operators to know (an alert is raised for it).
struct StorageEvent {
  std::string kind;  ///< "db_recovered", "write_failed", "disk_full", "retention"
  std::string message;
};

/// The gateway's SQLite writer: the one thread that owns the write connection of the database
/// file. It stores readings and point state (Durability::Process, one transaction per
/// `commit_interval` or `batch_max_rows`), and everything that must survive a power cut
/// (Durability::Power): actuation records, latches, and the DurableWrites other components
/// submit (alerts with their notifications and upstream messages, delivery states). Work is
/// buffered in memory between commits and written in one short transaction, so the write lock
/// is held for milliseconds, never across a tick; durable work is committed at once, together
/// with whatever readings are buffered.
///
/// Faults: a transaction that fails is rolled back; its readings are dropped and counted
/// (`reason="storage_error"`; on a lock held past `busy_timeout` they are kept, bounded, and
/// tried again), while point state and every durable item stay in memory (bounded) and are
/// tried again, in order, until they commit: a full disk loses no latch, actuation record or
/// alert, it only delays their record. On a full disk the store releases its reserve file
/// (`<path>.reserve`), deletes readings past retention and, per failed commit, at most a tenth
/// of the rest (oldest first, at most 1,000 rows); when the database itself is what filled the
/// disk it keeps it below that size from then on. A StorageEvent tells the operators, and
/// health() says "disk_full: ..." until the filesystem has room for the reserve again.
///
/// Threads: the submit methods and flush() may be called from any thread; the pipeline thread
/// is the usual caller. open()/load*() run before start(), on the caller's thread.
class Store : public DurableSink {
public:
  Store(const StorageConfig& cfg, std::shared_ptr<const model::Compound> compound,
        core::MetricsRegistry& metrics, const core::Clock& clock);
  ~Store() override;
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  /// Opens and migrates the database. A file that is not a database (or is corrupt) is moved
  /// aside to `<path>.corrupt-<unix ms>` and a new one is created; `events()` then reports it.
  /// Throws SqliteError when the database cannot be opened at all.
  void open();
  /// Persisted point states and latches (before start()).
  std::vector<StoredPoint> loadState();
  std::vector<LatchRecord> loadLatches();
  /// The writer thread beats a heartbeat named "storage writer" in `liveness` every time round
  /// its loop and during every wait for the database lock. Call before start().
  void setLiveness(core::Liveness* liveness) { liveness_ = liveness; }
  void start();
  /// Commits everything queued and joins the writer.
  void stop();

  /// Pipeline thread. Waits while more than `queue_max_rows` readings are queued (backpressure
  /// through the pipeline queue to the broker); if the writer stays stuck for `busy_timeout`
  /// (at most 500 ms), the batch is dropped and counted (reason "storage_backlog"), so rules and
  /// actuation keep running on a dead disk.
  bool submitReadings(std::vector<model::Reading>&& batch);
  void submitState(std::vector<StoredPoint>&& changed);
  /// Never waits; committed durably, in order with the other durable work.
  void submitLatch(LatchRecord latch);
  /// Records the actuation durably, then calls `after_commit` on the writer thread (which must
  /// only queue work, e.g. Driver::write). If the record cannot be written the callback runs at
  /// the first failed attempt (a safety cut is never held back by a failing disk) and the record
  /// is still kept and written later. Never waits.
  void submitActuation(ActuationRecord record, std::function<void()> after_commit);
  /// Records an actuation that may run only once its record is durable (an energizing write):
  /// `done(true)` runs on the writer thread after its transaction committed with
  /// Durability::Power, `done(false)` when the commit failed or the record could not be queued
  /// (then possibly on the calling thread). `done` must only queue work. Never waits.
  void recordActuation(ActuationRecord record, std::function<void(bool durable)> done);
  /// Updates an actuation's outcome (confirmed / failed). Never waits.
  void updateActuation(uint64_t request_id, std::string state, std::string error);
  /// DurableSink: never waits; see the class comment.
  void submit(std::vector<DurableWrite> writes) override;

  /// Events raised since the last call (pipeline thread turns them into alerts).
  std::vector<StorageEvent> takeEvents();
  /// "ok" or what is wrong, for /healthz.
  std::string health() const;
  const std::string& path() const { return cfg_.path; }
  size_t queuedRows() const { return queued_rows_.load(); }
  /// Durable items waiting for a successful commit (any thread).
  size_t durableBacklog() const { return durable_backlog_.load(); }
  /// Blocks until every batch submitted before the call had its commit attempted (tests,
  /// shutdown). False on timeout.
  bool flush(std::chrono::milliseconds timeout);

private:
  struct Flush {
    std::shared_ptr<std::promise<void>> done;
  };
  struct Wake {};
  using Op = std::variant<std::vector<model::Reading>, std::vector<StoredPoint>, Flush, Wake>;

  struct ActuationItem {
    ActuationRecord record;
    std::function<void()> after_commit;
    std::function<void(bool durable)> done;  // recordActuation()
  };
  struct ActuationUpdate {
    uint64_t request_id;
    std::string state;
    std::string error;
    int64_t at_ms;
  };
  using DurableItem = std::variant<LatchRecord, ActuationItem, ActuationUpdate, DurableWrite>;

  void run();
  void migrate();
  void prepareStatements();
  void pushDurable(DurableItem item, size_t bytes);
  void take(std::vector<Op>& ops, std::vector<Flush>& flushes);
  bool commitDue(core::SteadyTime now, bool forced) const;
  void commitNow();
  void writeAll(Database& db, bool durable);
  void applyDurable(Database& db, DurableItem& item);
  void onCommitted(double seconds, size_t rows, bool durable);
  void onFailed(const SqliteError& e);
  void dropPoisonedItems();
  void retention(bool emergency);
  void freeSpace();
  void ensureReserve();
  /// After a full disk: clears disk_low_ once the filesystem has room for the reserve again.
  void checkSpace();
  void releaseReserve();
  void raise(std::string kind, std::string message);
  void setHealth(std::string h);
  void releaseRows(size_t n);
  void beat();

  StorageConfig cfg_;
  std::shared_ptr<const model::Compound> compound_;
  const core::Clock& clock_;
  core::Counter& stored_;
  core::Counter& dropped_backlog_;
  core::Counter& dropped_error_;
  core::Counter& commits_;
  core::Counter& commit_failures_;
  core::Histogram& commit_seconds_;
  core::Counter& retention_deleted_;
  core::Counter& durable_dropped_;

  std::unique_ptr<Database> db_;
  struct Statements;
  std::unique_ptr<Statements> st_;
  core::BoundedQueue<Op> queue_;
  std::atomic<size_t> queued_rows_{0};
  std::mutex space_mu_;
  std::condition_variable space_cv_;
  core::RateLimitedLog backlog_log_;
  core::RateLimitedLog fail_log_;
  std::thread writer_;
  std::atomic<bool> running_{false};
  core::Liveness* liveness_ = nullptr;
  core::Heartbeat* heartbeat_ = nullptr;

  std::mutex inbox_mu_;
  std::vector<std::pair<DurableItem, size_t>> inbox_;  // guarded by inbox_mu_
  std::atomic<size_t> durable_backlog_{0};  // items in inbox_ and durable_
  std::atomic<size_t> durable_bytes_{0};    // their approximate bytes

  // Writer thread only: what the next transaction writes.
  std::vector<std::vector<model::Reading>> readings_;
  size_t reading_rows_ = 0;
  std::map<std::pair<model::DeviceIndex, model::PointId>, StoredPoint> states_;
  std::deque<std::pair<DurableItem, size_t>> durable_;
  core::SteadyTime next_commit_{};
  bool degraded_ = false;           // the last commit failed
  core::SteadyTime retry_at_{};     // degraded: no attempt before
  int64_t retry_delay_ms_ = 0;
  bool episode_reported_ = false;   // one event per failure episode
  int64_t size_cap_bytes_ = 0;      // retention's size cap (lowered after a full disk)
  bool have_reserve_ = false;
  bool disk_low_ = false;           // a commit hit a full disk; the disk has not had room since

  mutable std::mutex events_mu_;
  std::vector<StorageEvent> events_;  // guarded by events_mu_
  std::string health_ = "ok";         // guarded by events_mu_
};

} // namespace hgj::storage
