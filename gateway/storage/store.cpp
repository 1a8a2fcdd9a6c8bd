#include "gateway/storage/store.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "core/fault_hooks.h"
#include "core/thread_name.h"
#include "gateway/storage/sqlite.h"

namespace hgj::storage {

namespace fs = std::filesystem;

namespace {

constexpr int kSchemaVersion = 1;
constexpr int64_t kMaxStallMs = 500;
// Durable work waiting for a commit (a full disk, a dead one) is held in memory up to this; an
// alert with its notifications and message is a few KiB, so this is tens of thousands of them.
constexpr size_t kMaxDurableBytes = 32 * 1024 * 1024;
constexpr int64_t kRetryMinMs = 100;
constexpr int64_t kRetryMaxMs = 2000;
// At start, corruption is looked for this long at most (a large healthy file is not read
// through before the gateway is ready).
constexpr int64_t kQuickCheckBudgetMs = 300;
constexpr int64_t kRetentionChunk = 5000;
constexpr int64_t kEmergencyChunk = 1000;

// Version 1: readings, point state with since-when, actuations and safety latches.
constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE IF NOT EXISTS readings(
  id INTEGER PRIMARY KEY,
  device TEXT NOT NULL,
  point TEXT NOT NULL,
  value,
  quality TEXT NOT NULL,
  ts_ms INTEGER NOT NULL,
  ingest_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS point_state(
  device TEXT NOT NULL,
  point TEXT NOT NULL,
  value,
  quality TEXT NOT NULL,
  source_ms INTEGER NOT NULL,
  since_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL,
  PRIMARY KEY(device, point)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS actuations(
  request_id INTEGER PRIMARY KEY,
  ts_ms INTEGER NOT NULL,
  device TEXT NOT NULL,
  point TEXT NOT NULL,
  value,
  origin TEXT NOT NULL,
  state TEXT NOT NULL,
  error TEXT,
  updated_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS latches(
  device TEXT NOT NULL,
  point TEXT NOT NULL,
  rule TEXT NOT NULL,
  value,
  since_ms INTEGER NOT NULL,
  PRIMARY KEY(device, point)) WITHOUT ROWID;
)sql";

// Errors a later attempt can get past: the disk, the lock, memory. Anything else (a constraint,
// a bad statement) would fail again the same way.
bool transient(const SqliteError& e) {
  switch (e.code()) {
  case SQLITE_FULL:
  case SQLITE_IOERR:
  case SQLITE_BUSY:
  case SQLITE_LOCKED:
  case SQLITE_NOMEM:
  case SQLITE_CANTOPEN:
  case SQLITE_READONLY:
  case SQLITE_PROTOCOL:
  case SQLITE_CORRUPT:
  case SQLITE_NOTADB:
    return true;
  default:
    return false;
  }
}

// A quick_check with a time budget: corruption in the first pages (where a torn or overwritten
// file shows it) is found at start; a large healthy file is not read through.
std::string quickCheck(Database& db, int64_t budget_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(budget_ms);
  sqlite3_progress_handler(
      db.raw(), 1000,
      [](void* d) {
        return std::chrono::steady_clock::now() >
                       *static_cast<std::chrono::steady_clock::time_point*>(d)
                   ? 1
                   : 0;
      },
      &deadline);
  std::string result = "ok";
  try {
    Statement q = db.prepare("PRAGMA quick_check(1)");
    Statement::Scope scope(q);
    if (q.step()) {
      result = q.columnText(0);
    }
  } catch (const SqliteError& e) {
    if (e.code() != SQLITE_INTERRUPT) {
      sqlite3_progress_handler(db.raw(), 0, nullptr, nullptr);
      throw;
    }
  }
  sqlite3_progress_handler(db.raw(), 0, nullptr, nullptr);
  return result;
}

struct Space {
  int64_t total = 0;
  int64_t avail = 0;
  int64_t reserve = 0;  // the reserve file's size on this filesystem
};

// The filesystem of `db_path`; nullopt when it cannot be asked.
std::optional<Space> space(const std::string& db_path) {
  std::string dir = fs::path(db_path).parent_path().string();
  struct statvfs st {};
  if (::statvfs(dir.empty() ? "." : dir.c_str(), &st) != 0) {
    return std::nullopt;
  }
  Space s;
  s.total = static_cast<int64_t>(st.f_blocks) * static_cast<int64_t>(st.f_frsize);
  s.avail = static_cast<int64_t>(st.f_bavail) * static_cast<int64_t>(st.f_frsize);
  s.reserve = std::clamp<int64_t>(s.total / 32, 512 * 1024, 8 * 1024 * 1024);
  return s;
}

} // namespace

struct Store::Statements {
  Statement insert_reading;
  Statement upsert_state;
  Statement insert_actuation;
  Statement update_actuation;
  Statement upsert_latch;
  Statement delete_latch;
};

Store::Store(const StorageConfig& cfg, std::shared_ptr<const model::Compound> compound,
             core::MetricsRegistry& metrics, const core::Clock& clock)
    : cfg_(cfg), compound_(std::move(compound)), clock_(clock),
      stored_(metrics.counter("hgj_readings_stored_total", "readings committed to SQLite")),
      dropped_backlog_(metrics.counter("hgj_readings_dropped_total",
                                       "readings dropped, by reason",
                                       {{"reason", "storage_backlog"}})),
      dropped_error_(metrics.counter("hgj_readings_dropped_total", "readings dropped, by reason",
                                     {{"reason", "storage_error"}})),
      commits_(metrics.counter("hgj_storage_commits_total", "SQLite transactions committed")),
      commit_failures_(metrics.counter("hgj_storage_commit_failures_total",
                                       "SQLite transactions that failed and were rolled back")),
      commit_seconds_(metrics.histogram("hgj_storage_commit_seconds",
                                        "time to commit one batch",
                                        {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5})),
      retention_deleted_(metrics.counter("hgj_storage_retention_deleted_total",
                                         "readings deleted by retention")),
      durable_dropped_(metrics.counter(
          "hgj_storage_durable_dropped_total",
          "durable records (alerts, latches, actuations) given up: memory bound or invalid")),
      queue_(65536), fail_log_(5, std::chrono::seconds(60)),
      size_cap_bytes_(cfg.retention_max_mb * 1024 * 1024) {
  metrics.gaugeFn("hgj_storage_queue_rows", "readings waiting for the writer",
                  [this] { return static_cast<double>(queued_rows_.load()); });
  metrics.gaugeFn("hgj_storage_durable_backlog",
                  "durable records waiting for a successful commit",
                  [this] { return static_cast<double>(durable_backlog_.load()); });
}

Store::~Store() { stop(); }

void Store::open() {
  const bool memory = cfg_.path == ":memory:";
  if (!memory) {
    fs::path parent = fs::path(cfg_.path).parent_path();
    if (!parent.empty()) {
      std::error_code ec;
      fs::create_directories(parent, ec);
    }
    // A WAL without its database (the file was deleted or lost) would be replayed into the new
    // file: keep it aside instead, and say so.
    std::error_code ec;
    if (!fs::exists(cfg_.path, ec) && fs::exists(cfg_.path + "-wal", ec)) {
      std::string aside = cfg_.path + "-wal.orphan-" + std::to_string(clock_.wallMs());
      fs::rename(cfg_.path + "-wal", aside, ec);
      fs::remove(cfg_.path + "-shm", ec);
      spdlog::error("storage: {} is missing but its WAL is there; moved the WAL to {} and "
                    "started a new database",
                    cfg_.path, aside);
      raise("db_recovered", "数据库文件丢失，已新建数据库（原 WAL 文件已移至 " + aside + "）");
    }
  }
  for (int attempt = 0; attempt < 2; ++attempt) {
    try {
      OpenOptions o;
      o.busy_timeout_ms = cfg_.busy_timeout_ms;
      o.checkpoints = true;
      // Readings are appended (no index): the hot pages are few, and SQLite's default 2 MB
      // cache would be a tenth of the gateway's memory.
      o.cache_kib = 512;
      db_ = std::make_unique<Database>(cfg_.path, o);
      db_->scalarInt("SELECT count(*) FROM sqlite_master");
      if (std::string check = quickCheck(*db_, kQuickCheckBudgetMs); check != "ok") {
        throw SqliteError(SQLITE_CORRUPT, "integrity check: " + check);
      }
      migrate();
      prepareStatements();
      ensureReserve();
      return;
    } catch (const SqliteError& e) {
      st_.reset();
      db_.reset();
      if (!e.corrupt() || attempt > 0 || memory) {
        throw;
      }
      std::string aside = moveAside(cfg_.path, clock_.wallMs());
      spdlog::error("storage: {} is not a usable database ({}); moved it to {} and started a "
                    "new one",
                    cfg_.path, e.what(), aside);
      raise("db_recovered", "数据库文件损坏，已移至 " + aside + " 并新建数据库");
    }
  }
}

void Store::migrate() {
  if (db_->schemaVersion("store", kSchemaVersion) < 1) {
    Transaction tx(*db_, Durability::Power);
    db_->exec(kSchemaV1);
    db_->setSchemaVersion("store", 1, clock_.wallMs());
    tx.commit();
  }
}

void Store::prepareStatements() {
  st_ = std::make_unique<Statements>();
  st_->insert_reading = db_->prepare(
      "INSERT INTO readings(device, point, value, quality, ts_ms, ingest_ms) "
      "VALUES(?,?,?,?,?,?)");
  st_->upsert_state = db_->prepare(
      "INSERT INTO point_state(device, point, value, quality, source_ms, since_ms, updated_ms) "
      "VALUES(?,?,?,?,?,?,?) ON CONFLICT(device, point) DO UPDATE SET value=excluded.value, "
      "quality=excluded.quality, source_ms=excluded.source_ms, since_ms=excluded.since_ms, "
      "updated_ms=excluded.updated_ms");
  st_->insert_actuation = db_->prepare(
      "INSERT OR REPLACE INTO actuations(request_id, ts_ms, device, point, value, origin, state, "
      "error, updated_ms) VALUES(?,?,?,?,?,?,?,?,?)");
  st_->update_actuation = db_->prepare(
      "UPDATE actuations SET state=?, error=?, updated_ms=? WHERE request_id=?");
  st_->upsert_latch = db_->prepare(
      "INSERT OR REPLACE INTO latches(device, point, rule, value, since_ms) VALUES(?,?,?,?,?)");
  st_->delete_latch = db_->prepare("DELETE FROM latches WHERE device=? AND point=?");
}

std::vector<StoredPoint> Store::loadState() {
  std::vector<StoredPoint> out;
  Statement q = db_->prepare(
      "SELECT device, point, value, quality, source_ms, since_ms, updated_ms FROM point_state");
  Statement::Scope scope(q);
  while (q.step()) {
    model::DeviceIndex d = compound_->deviceIndex(q.columnText(0));
    auto p = compound_->pointId(q.columnText(1));
    if (d == model::kNoDevice || !p) {
      continue;  // a device or point that left the config
    }
    const model::PointDef* def = compound_->devices[d].profile->point(*p);
    if (def == nullptr) {
      continue;
    }
    auto v = model::coerce(q.columnValue(2), def->type);
    if (!v) {
      continue;
    }
    StoredPoint sp;
    sp.device = d;
    sp.point = *p;
    sp.value = *v;
    std::string quality = q.columnText(3);
    sp.quality = quality == "good"    ? model::Quality::Good
                 : quality == "stale" ? model::Quality::Stale
                                      : model::Quality::Bad;
    sp.source_ms = q.columnInt(4);
    sp.since_ms = q.columnInt(5);
    sp.updated_ms = q.columnInt(6);
    out.push_back(std::move(sp));
  }
  return out;
}

std::vector<LatchRecord> Store::loadLatches() {
  std::vector<LatchRecord> out;
  Statement q = db_->prepare("SELECT device, point, rule, value, since_ms FROM latches");
  Statement::Scope scope(q);
  while (q.step()) {
    model::DeviceIndex d = compound_->deviceIndex(q.columnText(0));
    auto p = compound_->pointId(q.columnText(1));
    if (d == model::kNoDevice || !p) {
      continue;
    }
    LatchRecord l;
    l.device = d;
    l.point = *p;
    l.rule = q.columnText(2);
    const model::PointDef* def = compound_->devices[d].profile->point(*p);
    auto v = def ? model::coerce(q.columnValue(3), def->type) : std::nullopt;
    l.value = v ? *v : q.columnValue(3);
    l.since_ms = q.columnInt(4);
    out.push_back(std::move(l));
  }
  return out;
}

namespace {
constexpr int64_t kWriterStallMs = 5 * 60 * 1000;
} // namespace

void Store::start() {
  if (running_.exchange(true)) {
    return;
  }
  if (liveness_ != nullptr) {
    // A commit behind a slow or failing eMMC can take seconds; restarting the daemon would not
    // speed the disk up and would interrupt the safety loop, which never waits on the disk.
    // Only a writer silent for minutes (a deadlock) stops the watchdog's feed.
    heartbeat_ = &liveness_->add("storage writer", kWriterStallMs);
  }
  db_->setHeartbeat(heartbeat_);
  writer_ = std::thread([this] {
    core::nameThisThread("hgj-store");
    try {
      run();
    } catch (const std::exception& e) {
      spdlog::critical("storage writer stopped: {}", e.what());
      raise("write_failed", std::string("存储线程异常停止: ") + e.what());
    }
  });
}

void Store::stop() {
  if (!running_.exchange(false)) {
    return;
  }
  space_cv_.notify_all();
  queue_.close();
  if (writer_.joinable()) {
    writer_.join();
  }
  if (liveness_ != nullptr && heartbeat_ != nullptr) {
    liveness_->retire(*heartbeat_);
  }
}

void Store::beat() {
  if (heartbeat_ != nullptr) {
    heartbeat_->beat();
  }
}

bool Store::submitReadings(std::vector<model::Reading>&& batch) {
  size_t n = batch.size();
  if (n == 0) {
    return true;
  }
  {
    // Backpressure while the writer is merely behind (the pipeline queue then fills and the
    // broker holds the rest); drop only when it stays stuck, so rules keep running on a dead
    // disk. The wait is capped well below the rules' hold times: a stuck disk may cost
    // readings, never more than half a second of the safety rules' attention per batch.
    std::unique_lock lock(space_mu_);
    auto limit = std::chrono::milliseconds(std::min<int64_t>(cfg_.busy_timeout_ms, kMaxStallMs));
    bool room = space_cv_.wait_for(lock, limit, [&] {
      return queued_rows_.load() == 0 || queued_rows_.load() + n <= cfg_.queue_max_rows ||
             !running_.load();
    });
    if (!room) {
      dropped_backlog_.inc(n);
      backlog_log_.warn("storage: the writer is stuck; dropped {} readings", n);
      return false;
    }
    queued_rows_ += n;
  }
  // Woken per batch: a test of the alert path (alerts storage: the readings writer holds no
  // lock between commits) relies on the writer taking readings off the queue promptly; holding
  // them for its tick (BoundedQueue::pushQuietFor) made it racy under ASan (docs/benchmarks.md).
  const bool pushed =
      queue_.pushFor(Op(std::move(batch)), std::chrono::milliseconds(cfg_.busy_timeout_ms));
  if (!pushed) {
    releaseRows(n);
    dropped_backlog_.inc(n);
    return false;
  }
  return true;
}

void Store::releaseRows(size_t n) {
  {
    std::lock_guard lock(space_mu_);
    queued_rows_ -= n;
  }
  space_cv_.notify_all();
}

void Store::submitState(std::vector<StoredPoint>&& changed) {
  if (!changed.empty()) {
    queue_.pushFor(Op(std::move(changed)), std::chrono::milliseconds(50));
  }
}

void Store::pushDurable(DurableItem item, size_t bytes) {
  if (durable_bytes_.load() + bytes > kMaxDurableBytes) {
    // Far past what a full disk of a few minutes explains: refuse rather than grow.
    durable_dropped_.inc();
    fail_log_.warn("storage: {} durable records ({} bytes) waiting; dropping a new one",
                    durable_backlog_.load(), durable_bytes_.load());
    if (auto* a = std::get_if<ActuationItem>(&item)) {
      if (a->after_commit) {
        a->after_commit();
      }
      if (a->done) {
        a->done(false);
      }
    }
    return;
  }
  {
    std::lock_guard lock(inbox_mu_);
    inbox_.emplace_back(std::move(item), bytes);
  }
  durable_backlog_ += 1;
  durable_bytes_ += bytes;
  queue_.pushUrgent(Op(Wake{}));
}

void Store::submitLatch(LatchRecord latch) {
  size_t bytes = sizeof(LatchRecord) + latch.rule.size();
  pushDurable(DurableItem(std::move(latch)), bytes);
}

void Store::submitActuation(ActuationRecord record, std::function<void()> after_commit) {
  size_t bytes = sizeof(ActuationItem) + record.origin.size() + record.error.size();
  pushDurable(DurableItem(ActuationItem{std::move(record), std::move(after_commit)}), bytes);
}

void Store::recordActuation(ActuationRecord record, std::function<void(bool durable)> done) {
  size_t bytes = sizeof(ActuationItem) + record.origin.size() + record.error.size();
  pushDurable(DurableItem(ActuationItem{std::move(record), nullptr, std::move(done)}), bytes);
}

void Store::updateActuation(uint64_t request_id, std::string state, std::string error) {
  size_t bytes = sizeof(ActuationUpdate) + error.size();
  pushDurable(DurableItem(ActuationUpdate{request_id, std::move(state), std::move(error),
                                          clock_.wallMs()}),
              bytes);
}

void Store::submit(std::vector<DurableWrite> writes) {
  for (auto& w : writes) {
    size_t bytes = w.bytes;
    pushDurable(DurableItem(std::move(w)), bytes);
  }
}

bool Store::flush(std::chrono::milliseconds timeout) {
  auto done = std::make_shared<std::promise<void>>();
  auto fut = done->get_future();
  if (!queue_.pushFor(Op(Flush{done}), timeout)) {
    return false;
  }
  return fut.wait_for(timeout) == std::future_status::ready;
}

std::vector<StorageEvent> Store::takeEvents() {
  std::lock_guard lock(events_mu_);
  return std::exchange(events_, {});
}

std::string Store::health() const {
  std::lock_guard lock(events_mu_);
  return health_;
}

void Store::raise(std::string kind, std::string message) {
  std::lock_guard lock(events_mu_);
  events_.push_back({std::move(kind), std::move(message)});
}

void Store::setHealth(std::string h) {
  std::lock_guard lock(events_mu_);
  health_ = std::move(h);
}

void Store::take(std::vector<Op>& ops, std::vector<Flush>& flushes) {
  for (auto& op : ops) {
    if (auto* r = std::get_if<std::vector<model::Reading>>(&op)) {
      releaseRows(r->size());
      if (degraded_ && reading_rows_ + r->size() > cfg_.queue_max_rows) {
        // The disk is failing: keep a bounded backlog for the next attempt (the oldest readings,
        // up to exactly queue_max_rows, so what is kept stays a gap-free prefix per device
        // whatever the batch sizes), drop the rest.
        const size_t room =
            cfg_.queue_max_rows > reading_rows_ ? cfg_.queue_max_rows - reading_rows_ : 0;
        dropped_error_.inc(r->size() - room);
        r->erase(r->begin() + static_cast<std::ptrdiff_t>(room), r->end());
        if (r->empty()) {
          continue;
        }
      }
      reading_rows_ += r->size();
      readings_.push_back(std::move(*r));
    } else if (auto* s = std::get_if<std::vector<StoredPoint>>(&op)) {
      // Only the latest state of a point matters; a failed commit keeps it for the next one.
      for (auto& p : *s) {
        states_[{p.device, p.point}] = std::move(p);
      }
    } else if (auto* f = std::get_if<Flush>(&op)) {
      flushes.push_back(*f);
    }
  }
  std::vector<std::pair<DurableItem, size_t>> inbox;
  {
    std::lock_guard lock(inbox_mu_);
    inbox.swap(inbox_);
  }
  for (auto& item : inbox) {
    durable_.push_back(std::move(item));
  }
}

bool Store::commitDue(core::SteadyTime now, bool forced) const {
  if (reading_rows_ == 0 && states_.empty() && durable_.empty()) {
    return false;
  }
  if (forced) {
    return true;
  }
  if (degraded_) {
    return now >= retry_at_;
  }
  return !durable_.empty() || reading_rows_ >= cfg_.batch_max_rows || now >= next_commit_;
}

void Store::run() {
  std::vector<Op> ops;
  std::vector<Flush> flushes;
  const auto interval = core::Millis(cfg_.commit_interval_ms);
  next_commit_ = clock_.steadyNow() + interval;
  auto next_retention = clock_.steadyNow() + core::Millis(cfg_.retention_check_ms);
  auto next_space_check = clock_.steadyNow();
  while (true) {
    beat();
    auto now = clock_.steadyNow();
    bool buffered = reading_rows_ > 0 || !states_.empty() || !durable_.empty();
    core::SteadyTime until = degraded_ ? retry_at_ : next_commit_;
    auto wait = buffered ? std::clamp(std::chrono::duration_cast<core::Millis>(until - now),
                                      core::Millis(0), interval)
                         : interval;
    ops.clear();
    size_t n = queue_.popAll(ops, 256, wait);
    bool closed = n == 0 && queue_.closed() && queue_.size() == 0;
    take(ops, flushes);
    beat();
    now = clock_.steadyNow();
    if (commitDue(now, closed || !flushes.empty())) {
      commitNow();
    } else if (!buffered && now >= next_commit_) {
      next_commit_ = now + interval;
    }
    for (auto& f : flushes) {
      f.done->set_value();
    }
    flushes.clear();
    if (disk_low_ && clock_.steadyNow() >= next_space_check) {
      checkSpace();
      next_space_check = clock_.steadyNow() + std::chrono::seconds(1);
    }
    if (clock_.steadyNow() >= next_retention) {
      retention(false);
      ensureReserve();
      next_retention = clock_.steadyNow() + core::Millis(cfg_.retention_check_ms);
    }
    if (closed) {
      if (!durable_.empty()) {
        spdlog::error("storage: stopping with {} durable records not written (the disk is "
                      "failing)",
                      durable_.size());
      }
      break;
    }
  }
}

void Store::commitNow() {
  const size_t rows = reading_rows_;
  const bool durable = !durable_.empty();
  auto t0 = std::chrono::steady_clock::now();
  try {
    Transaction tx(*db_, durable ? Durability::Power : Durability::Process);
    writeAll(*db_, durable);
    tx.commit();
  } catch (const SqliteError& e) {
    onFailed(e);
    return;
  }
  onCommitted(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
              rows, durable);
}

void Store::writeAll(Database& db, bool durable) {
  const model::Compound& c = *compound_;
  // Both tables start with (device, point, value, quality).
  auto point = [&c](Statement& st, model::DeviceIndex d, model::PointId p, const model::Value& v,
                    model::Quality q) -> Statement& {
    return st.bindStatic(1, c.devices[d].id)
        .bindStatic(2, c.pointName(p))
        .bindValue(3, v)
        .bindStatic(4, model::qualityName(q));
  };
  for (const auto& batch : readings_) {
    for (const auto& r : batch) {
      point(st_->insert_reading, r.device, r.point, r.value, r.quality)
          .bind(5, r.source_ms)
          .bind(6, r.ingest_ms)
          .run();
    }
  }
  for (const auto& [key, s] : states_) {
    point(st_->upsert_state, s.device, s.point, s.value, s.quality)
        .bind(5, s.source_ms)
        .bind(6, s.since_ms)
        .bind(7, s.updated_ms)
        .run();
  }
  if (durable) {
    for (auto& [item, bytes] : durable_) {
      applyDurable(db, item);
    }
  }
}

void Store::applyDurable(Database& db, DurableItem& item) {
  const model::Compound& c = *compound_;
  if (auto* latch = std::get_if<LatchRecord>(&item)) {
    if (latch->set) {
      st_->upsert_latch.bindStatic(1, c.devices[latch->device].id)
          .bindStatic(2, c.pointName(latch->point))
          .bind(3, latch->rule)
          .bindValue(4, latch->value)
          .bind(5, latch->since_ms)
          .run();
    } else {
      st_->delete_latch.bindStatic(1, c.devices[latch->device].id)
          .bindStatic(2, c.pointName(latch->point))
          .run();
    }
  } else if (auto* act = std::get_if<ActuationItem>(&item)) {
    const auto& r = act->record;
    st_->insert_actuation.bind(1, static_cast<int64_t>(r.request_id))
        .bind(2, r.ts_ms)
        .bindStatic(3, c.devices[r.device].id)
        .bindStatic(4, c.pointName(r.point))
        .bindValue(5, r.value)
        .bind(6, r.origin)
        .bind(7, r.state)
        .bind(8, r.error)
        .bind(9, r.ts_ms)
        .run();
  } else if (auto* upd = std::get_if<ActuationUpdate>(&item)) {
    st_->update_actuation.bind(1, upd->state)
        .bind(2, upd->error)
        .bind(3, upd->at_ms)
        .bind(4, static_cast<int64_t>(upd->request_id))
        .run();
  } else if (auto* w = std::get_if<DurableWrite>(&item); w != nullptr && w->apply) {
    w->apply(db);
  }
}

void Store::onCommitted(double seconds, size_t rows, bool durable) {
  stored_.inc(rows);
  commits_.inc();
  commit_seconds_.observe(seconds);
  readings_.clear();
  reading_rows_ = 0;
  states_.clear();
  next_commit_ = clock_.steadyNow() + core::Millis(cfg_.commit_interval_ms);
  if (durable) {
    std::deque<std::pair<DurableItem, size_t>> done;
    done.swap(durable_);
    durable_backlog_ -= done.size();
    for (auto& [item, bytes] : done) {
      durable_bytes_ -= bytes;
      if (auto* a = std::get_if<ActuationItem>(&item)) {
        if (a->after_commit) {
          a->after_commit();
        }
        if (a->done) {
          a->done(true);
        }
      } else if (auto* w = std::get_if<DurableWrite>(&item); w != nullptr && w->committed) {
        w->committed();
      }
    }
  }
  if (degraded_) {
    degraded_ = false;
    retry_delay_ms_ = 0;
    episode_reported_ = false;
    spdlog::info("storage: writing again");
    // Writing again on space that retention freed inside the file: the disk itself is still
    // full, and the operators must still hear it until it has room again.
    setHealth(disk_low_ ? "disk_full: writing in space freed by retention; the filesystem is "
                          "still full"
                        : "ok");
  }
}

void Store::onFailed(const SqliteError& e) {
  commit_failures_.inc();
  const auto now = clock_.steadyNow();
  // Safety first: an actuation is executed even when its record cannot be written yet (the
  // record stays queued and is written once the disk takes it).
  for (auto& [item, bytes] : durable_) {
    if (auto* a = std::get_if<ActuationItem>(&item); a != nullptr && a->after_commit) {
      auto cb = std::move(a->after_commit);
      a->after_commit = nullptr;
      cb();
    }
  }
  // An energizing write runs only once its record is durable: refused now (the actuator reports
  // it), and its record is not kept, since what it records will not happen.
  for (auto it = durable_.begin(); it != durable_.end();) {
    auto* a = std::get_if<ActuationItem>(&it->first);
    if (a == nullptr || !a->done) {
      ++it;
      continue;
    }
    auto done = std::move(a->done);
    durable_backlog_ -= 1;
    durable_bytes_ -= it->second;
    it = durable_.erase(it);
    done(false);
  }
  if (!transient(e)) {
    // Something in the batch is invalid and would fail every time: find it and let the rest
    // through.
    spdlog::error("storage: a transaction failed ({}); writing its parts one by one", e.what());
    dropPoisonedItems();
    return;
  }
  const bool busy = e.code() == SQLITE_BUSY || e.code() == SQLITE_LOCKED;
  if (!busy && reading_rows_ > 0) {
    // The disk refused them; the broker does not hold them any more. Counted, not retried.
    dropped_error_.inc(reading_rows_);
    readings_.clear();
    reading_rows_ = 0;
  }
  retry_delay_ms_ = retry_delay_ms_ == 0 ? kRetryMinMs : std::min(retry_delay_ms_ * 2, kRetryMaxMs);
  retry_at_ = now + core::Millis(retry_delay_ms_);
  degraded_ = true;
  std::string kind = e.full() ? "disk_full" : "write_failed";
  setHealth(kind + ": " + e.what() + (durable_.empty() ? ""
                                                       : "; " + std::to_string(durable_.size()) +
                                                             " durable records waiting"));
  fail_log_.warn("storage: commit failed ({}); {} durable records kept for the next attempt",
                  e.what(), durable_.size());
  if (!episode_reported_) {
    episode_reported_ = true;
    raise(kind, e.full() ? "存储空间已满，正在按保留策略清理旧数据；告警照常发送"
                         : std::string("写入失败: ") + e.what());
  }
  if (e.full()) {
    disk_low_ = true;
    freeSpace();
    retry_at_ = clock_.steadyNow();
  }
}

void Store::dropPoisonedItems() {
  // Readings and states are plain inserts of known columns; what fails is a durable item.
  std::deque<std::pair<DurableItem, size_t>> items;
  items.swap(durable_);
  auto rows = reading_rows_;
  try {
    Transaction tx(*db_, Durability::Process);
    writeAll(*db_, false);
    tx.commit();
    stored_.inc(rows);
  } catch (const SqliteError& e) {
    dropped_error_.inc(rows);
    fail_log_.warn("storage: readings batch failed alone too: {}", e.what());
  }
  readings_.clear();
  reading_rows_ = 0;
  states_.clear();
  for (auto& entry : items) {
    try {
      Transaction tx(*db_, Durability::Power);
      applyDurable(*db_, entry.first);
      tx.commit();
    } catch (const SqliteError& e) {
      if (transient(e)) {
        durable_.push_back(std::move(entry));
        continue;
      }
      durable_dropped_.inc();
      durable_backlog_ -= 1;
      durable_bytes_ -= entry.second;
      spdlog::error("storage: a durable record is invalid and was dropped: {}", e.what());
      if (auto* a = std::get_if<ActuationItem>(&entry.first); a != nullptr && a->done) {
        a->done(false);
      }
      continue;
    }
    durable_backlog_ -= 1;
    durable_bytes_ -= entry.second;
    if (auto* w = std::get_if<DurableWrite>(&entry.first); w != nullptr && w->committed) {
      w->committed();
    }
  }
}

void Store::freeSpace() {
  // The reserve file gives the deletions below room for their WAL frames even when something
  // else filled the disk to the last block.
  releaseReserve();
  db_->checkpoint(false);
  try {
    int64_t used = db_->usedBytes();
    auto sp = space(cfg_.path);
    // When the database is what filled the disk, keep it below that size from now on (until a
    // restart), so it reuses its own free pages instead of growing into the wall again. When
    // something else filled it, shrinking the database would only delete history.
    int64_t cap = used / 10 * 9;
    if (sp && used >= sp->total / 2 && cap < size_cap_bytes_) {
      size_cap_bytes_ = cap;
      spdlog::warn("storage: the disk is full; readings are kept under {} MiB from now on",
                   cap / (1024 * 1024));
    }
  } catch (const SqliteError& e) {
    spdlog::error("storage: cannot measure the database: {}", e.what());
  }
  retention(true);
}

void Store::retention(bool emergency) {
  int64_t deleted = 0;
  try {
    const int64_t cutoff = clock_.wallMs() - cfg_.retention_max_age_ms;
    const int64_t chunk = kRetentionChunk;
    // Rows are appended in ingest order, so the oldest rows have the lowest ids: delete from
    // the front in chunks, each its own short transaction, so the writer never stalls for long.
    Statement oldest = db_->prepare("SELECT ingest_ms FROM readings ORDER BY id LIMIT 1");
    Statement del = db_->prepare(
        "DELETE FROM readings WHERE id < (SELECT min(id) FROM readings) + ?");
    // By age, a chunk may reach past the cutoff: only its old rows go.
    Statement del_old = db_->prepare(
        "DELETE FROM readings WHERE id < (SELECT min(id) FROM readings) + ? AND ingest_ms < ?");
    for (int round = 0; round < 1000; ++round) {
      beat();
      bool too_old = false;
      {
        Statement::Scope scope(oldest);
        too_old = oldest.step() && oldest.columnInt(0) < cutoff;
      }
      const bool too_big = db_->usedBytes() > size_cap_bytes_;
      if (!too_old && !too_big) {
        break;
      }
      Transaction tx(*db_, Durability::Process);
      if (too_big) {
        // Just enough rows for the excess, at the average row's weight (over-estimated: the
        // other tables count too), so the last chunk does not take the newest readings with it.
        const int64_t used = db_->usedBytes();
        const int64_t rows = db_->scalarInt(
            "SELECT COALESCE(max(id) - min(id) + 1, 0) FROM readings");
        const int64_t per_row = std::max<int64_t>(1, used / std::max<int64_t>(rows, 1));
        const int64_t excess = used - size_cap_bytes_;
        del.bind(1, std::clamp<int64_t>((excess + per_row - 1) / per_row, 1, chunk)).run();
      } else {
        del_old.bind(1, chunk).bind(2, cutoff).run();
      }
      int64_t n = db_->changes();
      tx.commit();
      deleted += n;
      retention_deleted_.inc(static_cast<uint64_t>(n));
      if (n == 0) {
        break;
      }
    }
    if (emergency && deleted == 0) {
      // Nothing was due, yet the disk refused a commit: make room for the next ones by
      // deleting the oldest tenth of the readings, at most kEmergencyChunk rows per failure, so
      // a disk that stays full costs the oldest history a little at a time.
      int64_t rows = db_->scalarInt("SELECT COALESCE(max(id) - min(id) + 1, 0) FROM readings");
      if (rows > 0) {
        Transaction tx(*db_, Durability::Process);
        del.bind(1, std::clamp<int64_t>(rows / 10, 1, kEmergencyChunk)).run();
        int64_t n = db_->changes();
        tx.commit();
        deleted += n;
        retention_deleted_.inc(static_cast<uint64_t>(n));
      }
    }
  } catch (const SqliteError& e) {
    fail_log_.warn("storage: retention failed: {}", e.what());
  }
  if (emergency && deleted > 0) {
    spdlog::warn("storage: deleted the {} oldest readings to make room", deleted);
    raise("retention", "存储空间已满：已删除最早的 " + std::to_string(deleted) + " 条读数");
  }
}

void Store::ensureReserve() {
  if (have_reserve_ || cfg_.path == ":memory:") {
    return;
  }
  auto sp = space(cfg_.path);
  if (!sp || sp->avail < 2 * sp->reserve) {
    return;  // not now: retention frees pages inside the file, the disk itself stays tight
  }
  std::string path = cfg_.path + ".reserve";
  int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0640);
  if (fd < 0) {
    return;
  }
  int rc = ::posix_fallocate(fd, 0, sp->reserve);
  ::close(fd);
  if (rc != 0) {
    ::unlink(path.c_str());
    return;
  }
  have_reserve_ = true;
}

void Store::checkSpace() {
  auto sp = space(cfg_.path);
  if (!sp || sp->avail < 2 * sp->reserve) {
    return;
  }
  ensureReserve();
  disk_low_ = false;
  spdlog::info("storage: the disk has room again ({} MiB free)", sp->avail / (1024 * 1024));
  if (!degraded_) {
    setHealth("ok");
  }
}

void Store::releaseReserve() {
  if (::unlink((cfg_.path + ".reserve").c_str()) == 0) {
    spdlog::warn("storage: released the reserve file to make room");
  }
  have_reserve_ = false;
}

} // namespace hgj::storage
