#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "core/bounded_queue.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "gateway/config/config.h"
#include "model/compound.h"
#include "model/reading.h"

namespace hgj::storage {

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

/// A decision to write a point, recorded (durably) before it is executed.
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

/// The gateway's SQLite store for readings, point state, actuations and latches. One writer
/// thread owns the write connection: callers on the pipeline thread hand over batches that are
/// inserted in transactions committed every `commit_interval` (WAL, synchronous=NORMAL), except
/// actuation records, which are committed at once with synchronous=FULL before their callback
/// runs. Alerts and the upstream outbox use their own connections on the same file.
class Store {
public:
  Store(const config::StorageConfig& cfg, std::shared_ptr<const model::Compound> compound,
        core::MetricsRegistry& metrics, const core::Clock& clock);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  /// Opens and migrates the database. A file that is not a database (or is corrupt) is moved
  /// aside to `<path>.corrupt-<unix ms>` and a new one is created; `events()` then reports it.
  /// Throws SqliteError when the database cannot be opened at all.
  void open();
  /// Persisted point states and latches (before start()).
  std::vector<StoredPoint> loadState();
  std::vector<LatchRecord> loadLatches();
  void start();
  /// Commits everything queued and joins the writer.
  void stop();

  /// Pipeline thread. Waits while more than `queue_max_rows` readings are queued (backpressure
  /// through the pipeline queue to the broker); if the writer stays stuck for `busy_timeout`
  /// (at most 500 ms), the batch is dropped and counted (reason "storage_backlog"), so rules and actuation keep
  /// running on a dead disk.
  bool submitReadings(std::vector<model::Reading>&& batch);
  void submitState(std::vector<StoredPoint>&& changed);
  void submitLatch(LatchRecord latch);
  /// Records the actuation durably, then calls `after_commit` on the writer thread (which must
  /// only queue work, e.g. Driver::write). If the record cannot be written the callback still
  /// runs: a safety cut is never held back by a failing disk.
  void submitActuation(ActuationRecord record, std::function<void()> after_commit);
  /// Records an actuation that may run only once its record is durable (an energizing write):
  /// `done(true)` runs on the writer thread after its transaction committed, `done(false)` when
  /// it could not be written or queued (then possibly on the calling thread). `done` must only
  /// queue work.
  void recordActuation(ActuationRecord record, std::function<void(bool durable)> done);
  /// Updates an actuation's outcome (confirmed / failed).
  void updateActuation(uint64_t request_id, std::string state, std::string error);

  /// Events raised since the last call (pipeline thread turns them into alerts).
  std::vector<StorageEvent> takeEvents();
  /// "ok" or what is wrong, for /healthz.
  std::string health() const;
  const std::string& path() const { return cfg_.path; }
  size_t queuedRows() const { return queued_rows_.load(); }
  /// Blocks until every batch submitted before the call is committed (tests, shutdown).
  bool flush(std::chrono::milliseconds timeout);

private:
  struct Flush {
    std::shared_ptr<std::promise<void>> done;
  };
  struct ActuationOp {
    ActuationRecord record;
    std::function<void()> after_commit;
    std::function<void(bool durable)> done;  // recordActuation()
  };
  struct ActuationUpdate {
    uint64_t request_id;
    std::string state;
    std::string error;
  };
  using Op = std::variant<std::vector<model::Reading>, std::vector<StoredPoint>, LatchRecord,
                          ActuationOp, ActuationUpdate, Flush>;

  void run();
  void migrate();
  void prepareStatements();
  void begin();
  void commit(bool durable);
  void syncWal();
  void apply(Op& op, std::vector<std::function<void()>>& callbacks, bool& durable,
             std::vector<Flush>& flushes);
  void retention();
  void fail(const std::exception& e, size_t rows);
  void raise(std::string kind, std::string message);
  void releaseRows(size_t n);

  config::StorageConfig cfg_;
  std::shared_ptr<const model::Compound> compound_;
  const core::Clock& clock_;
  core::Counter& stored_;
  core::Counter& dropped_backlog_;
  core::Counter& dropped_error_;
  core::Counter& commits_;
  core::Histogram& commit_seconds_;
  core::Counter& retention_deleted_;

  std::unique_ptr<class Database> db_;
  struct Statements;
  std::unique_ptr<Statements> st_;
  core::BoundedQueue<Op> queue_;
  std::atomic<size_t> queued_rows_{0};
  std::mutex space_mu_;
  std::condition_variable space_cv_;
  core::RateLimitedLog backlog_log_;
  std::thread writer_;
  std::atomic<bool> running_{false};
  bool in_txn_ = false;
  size_t rows_in_txn_ = 0;
  std::vector<std::function<void(bool)>> record_outcomes_;  // writer thread: this round's

  mutable std::mutex events_mu_;
  std::vector<StorageEvent> events_;  // guarded by events_mu_
  std::string health_ = "ok";         // guarded by events_mu_
};

} // namespace hgj::storage
