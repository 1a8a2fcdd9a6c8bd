#include "gateway/storage/store.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "core/fault_hooks.h"
#include "gateway/storage/sqlite.h"

namespace hgj::storage {

namespace fs = std::filesystem;

namespace {

constexpr int kSchemaVersion = 1;
constexpr int64_t kMaxStallMs = 500;

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

bool isCorruption(int code) { return code == SQLITE_CORRUPT || code == SQLITE_NOTADB; }

} // namespace

struct Store::Statements {
  Statement insert_reading;
  Statement upsert_state;
  Statement insert_actuation;
  Statement update_actuation;
  Statement upsert_latch;
  Statement delete_latch;
  Statement begin;
  Statement commit;
};

Store::Store(const config::StorageConfig& cfg, std::shared_ptr<const model::Compound> compound,
             core::MetricsRegistry& metrics, const core::Clock& clock)
    : cfg_(cfg), compound_(std::move(compound)), clock_(clock),
      stored_(metrics.counter("hgj_readings_stored_total", "readings committed to SQLite")),
      dropped_backlog_(metrics.counter("hgj_readings_dropped_total",
                                       "readings dropped, by reason",
                                       {{"reason", "storage_backlog"}})),
      dropped_error_(metrics.counter("hgj_readings_dropped_total", "readings dropped, by reason",
                                     {{"reason", "storage_error"}})),
      commits_(metrics.counter("hgj_storage_commits_total", "SQLite transactions committed")),
      commit_seconds_(metrics.histogram("hgj_storage_commit_seconds",
                                        "time to commit one batch",
                                        {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5})),
      retention_deleted_(metrics.counter("hgj_storage_retention_deleted_total",
                                         "readings deleted by retention")),
      queue_(65536) {
  metrics.gaugeFn("hgj_storage_queue_rows", "readings waiting for the writer",
                  [this] { return static_cast<double>(queued_rows_.load()); });
}

Store::~Store() { stop(); }

void Store::open() {
  if (cfg_.path != ":memory:") {
    fs::path parent = fs::path(cfg_.path).parent_path();
    if (!parent.empty()) {
      std::error_code ec;
      fs::create_directories(parent, ec);
    }
  }
  for (int attempt = 0; attempt < 2; ++attempt) {
    try {
      db_ = std::make_unique<Database>(cfg_.path, cfg_.busy_timeout_ms);
      db_->scalarInt("SELECT count(*) FROM sqlite_master");
      migrate();
      prepareStatements();
      return;
    } catch (const SqliteError& e) {
      db_.reset();
      if (!isCorruption(e.code()) || attempt > 0 || cfg_.path == ":memory:") {
        throw;
      }
      std::string aside = cfg_.path + ".corrupt-" + std::to_string(clock_.wallMs());
      spdlog::error("storage: {} is not a usable database ({}); moving it to {} and starting a "
                    "new one",
                    cfg_.path, e.what(), aside);
      std::error_code ec;
      fs::rename(cfg_.path, aside, ec);
      fs::remove(cfg_.path + "-wal", ec);
      fs::remove(cfg_.path + "-shm", ec);
      raise("db_recovered", "数据库文件损坏，已移至 " + aside + " 并新建数据库");
    }
  }
}

void Store::migrate() {
  db_->exec("PRAGMA synchronous=NORMAL");
  // Readings are appended (no index): the hot pages are few, and SQLite's default 2 MB cache
  // would be a tenth of the gateway's memory.
  db_->exec("PRAGMA cache_size=-512");
  db_->exec("CREATE TABLE IF NOT EXISTS schema_versions(component TEXT PRIMARY KEY, "
            "version INTEGER NOT NULL, updated_ms INTEGER)");
  Statement get = db_->prepare("SELECT version FROM schema_versions WHERE component='store'");
  int64_t version = get.step() ? get.columnInt(0) : 0;
  get.reset();
  if (version > kSchemaVersion) {
    throw SqliteError(SQLITE_ERROR, "database schema version " + std::to_string(version) +
                                        " is newer than this gateway (" +
                                        std::to_string(kSchemaVersion) + ")");
  }
  if (version < 1) {
    db_->exec("BEGIN");
    db_->exec(kSchemaV1);
    Statement set = db_->prepare(
        "INSERT OR REPLACE INTO schema_versions(component, version, updated_ms) VALUES('store', "
        "?, ?)");
    set.bind(1, int64_t{1}).bind(2, clock_.wallMs()).run();
    db_->exec("COMMIT");
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
  st_->begin = db_->prepare("BEGIN");
  st_->commit = db_->prepare("COMMIT");
}

std::vector<StoredPoint> Store::loadState() {
  std::vector<StoredPoint> out;
  Statement q = db_->prepare(
      "SELECT device, point, value, quality, source_ms, since_ms, updated_ms FROM point_state");
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
    StoredPoint sp;
    sp.device = d;
    sp.point = *p;
    auto v = model::coerce(q.columnValue(2), def->type);
    if (!v) {
      continue;
    }
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

void Store::start() {
  if (running_.exchange(true)) {
    return;
  }
  writer_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "hgj-store");
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
}

bool Store::submitReadings(std::vector<model::Reading>&& batch) {
  size_t n = batch.size();
  if (n == 0) {
    return true;
  }
  {
    // Backpressure while the writer is merely behind (the pipeline queue then fills and the
    // broker holds the rest); drop only when it stays stuck, so rules keep running on a dead disk.
    // The wait is capped well below the rules' hold times: a stuck disk may cost readings, never
    // more than half a second of the safety rules' attention per batch.
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
  if (!queue_.pushFor(Op(std::move(batch)), std::chrono::milliseconds(cfg_.busy_timeout_ms))) {
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

void Store::submitLatch(LatchRecord latch) {
  queue_.pushFor(Op(std::move(latch)), std::chrono::milliseconds(200));
}

void Store::submitActuation(ActuationRecord record, std::function<void()> after_commit) {
  ActuationOp op{std::move(record), std::move(after_commit)};
  Op wrapped(std::move(op));
  if (!queue_.pushFor(std::move(wrapped), std::chrono::milliseconds(200))) {
    // The record cannot be queued (writer stuck): act anyway, safety first.
    spdlog::error("storage: actuation record could not be queued; executing it unrecorded");
    if (auto* a = std::get_if<ActuationOp>(&wrapped); a != nullptr && a->after_commit) {
      a->after_commit();
    }
  }
}

void Store::recordActuation(ActuationRecord record, std::function<void(bool durable)> done) {
  ActuationOp op{std::move(record), nullptr, std::move(done)};
  Op wrapped(std::move(op));
  if (!queue_.pushFor(std::move(wrapped), std::chrono::milliseconds(200))) {
    if (auto* a = std::get_if<ActuationOp>(&wrapped); a != nullptr && a->done) {
      a->done(false);
    }
  }
}

void Store::updateActuation(uint64_t request_id, std::string state, std::string error) {
  queue_.pushFor(Op(ActuationUpdate{request_id, std::move(state), std::move(error)}),
                 std::chrono::milliseconds(200));
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
  if (kind == "write_failed" || kind == "disk_full") {
    health_ = kind + ": " + message;
  }
  events_.push_back({std::move(kind), std::move(message)});
}

void Store::syncWal() {
  if (cfg_.path == ":memory:") {
    return;
  }
  int fd = ::open((cfg_.path + "-wal").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return;
  }
  if (::fdatasync(fd) != 0) {
    spdlog::error("storage: fdatasync of the WAL failed: {}", std::strerror(errno));
  }
  ::close(fd);
}

void Store::begin() {
  if (!in_txn_) {
    st_->begin.run();
    in_txn_ = true;
    rows_in_txn_ = 0;
  }
}

void Store::commit(bool durable) {
  if (!in_txn_) {
    return;
  }
  auto t0 = std::chrono::steady_clock::now();
  // Test-only (HGJ_FAULTS, docs/reliability.md): a disk whose every commit stalls this long,
  // holding the write lock, as a slow eMMC's fsync does.
  if (auto stall = core::faultHook("commit_stall_ms"); stall && *stall > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(*stall));
  }
  st_->commit.run();
  if (durable) {
    // Actuation records and latches must survive a power cut, readings only a process crash:
    // with synchronous=NORMAL a WAL commit is written but not synced, so sync the WAL file now
    // (that also makes every earlier commit durable).
    syncWal();
  }
  in_txn_ = false;
  stored_.inc(rows_in_txn_);
  rows_in_txn_ = 0;
  commits_.inc();
  commit_seconds_.observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  std::lock_guard lock(events_mu_);
  if (health_ != "ok") {
    health_ = "ok";
  }
}

void Store::apply(Op& op, std::vector<std::function<void()>>& callbacks, bool& durable,
                  std::vector<Flush>& flushes) {
  const model::Compound& c = *compound_;
  if (auto* readings = std::get_if<std::vector<model::Reading>>(&op)) {
    releaseRows(readings->size());
    begin();
    auto& ins = st_->insert_reading;
    for (const auto& r : *readings) {
      ins.bindStatic(1, c.devices[r.device].id)
          .bindStatic(2, c.pointName(r.point))
          .bindValue(3, r.value)
          .bindStatic(4, model::qualityName(r.quality))
          .bind(5, r.source_ms)
          .bind(6, r.ingest_ms);
      ins.step();
      sqlite3_reset(ins.raw());
    }
    rows_in_txn_ += readings->size();
  } else if (auto* states = std::get_if<std::vector<StoredPoint>>(&op)) {
    begin();
    auto& up = st_->upsert_state;
    for (const auto& s : *states) {
      up.bindStatic(1, c.devices[s.device].id)
          .bindStatic(2, c.pointName(s.point))
          .bindValue(3, s.value)
          .bindStatic(4, model::qualityName(s.quality))
          .bind(5, s.source_ms)
          .bind(6, s.since_ms)
          .bind(7, s.updated_ms);
      up.step();
      sqlite3_reset(up.raw());
    }
  } else if (auto* latch = std::get_if<LatchRecord>(&op)) {
    begin();
    if (latch->set) {
      st_->upsert_latch.bindStatic(1, c.devices[latch->device].id)
          .bindStatic(2, c.pointName(latch->point))
          .bind(3, std::string_view(latch->rule))
          .bindValue(4, latch->value)
          .bind(5, latch->since_ms)
          .run();
    } else {
      st_->delete_latch.bindStatic(1, c.devices[latch->device].id)
          .bindStatic(2, c.pointName(latch->point))
          .run();
    }
    durable = true;
  } else if (auto* act = std::get_if<ActuationOp>(&op)) {
    begin();
    const auto& r = act->record;
    st_->insert_actuation.bind(1, static_cast<int64_t>(r.request_id))
        .bind(2, r.ts_ms)
        .bindStatic(3, c.devices[r.device].id)
        .bindStatic(4, c.pointName(r.point))
        .bindValue(5, r.value)
        .bind(6, std::string_view(r.origin))
        .bind(7, std::string_view(r.state))
        .bind(8, std::string_view(r.error))
        .bind(9, r.ts_ms)
        .run();
    durable = true;
    if (act->after_commit) {
      callbacks.push_back(std::move(act->after_commit));
    }
    if (act->done) {
      record_outcomes_.push_back(std::move(act->done));
    }
  } else if (auto* upd = std::get_if<ActuationUpdate>(&op)) {
    begin();
    st_->update_actuation.bind(1, std::string_view(upd->state))
        .bind(2, std::string_view(upd->error))
        .bind(3, clock_.wallMs())
        .bind(4, static_cast<int64_t>(upd->request_id))
        .run();
    durable = true;
  } else if (auto* fl = std::get_if<Flush>(&op)) {
    flushes.push_back(*fl);
  }
}

void Store::fail(const std::exception& e, size_t rows) {
  if (in_txn_) {
    sqlite3_exec(db_->raw(), "ROLLBACK", nullptr, nullptr, nullptr);
    in_txn_ = false;
  }
  dropped_error_.inc(rows);
  rows_in_txn_ = 0;
  const auto* se = dynamic_cast<const SqliteError*>(&e);
  bool full = se != nullptr && se->code() == SQLITE_FULL;
  spdlog::error("storage: write failed ({}); {} readings of this batch dropped", e.what(), rows);
  raise(full ? "disk_full" : "write_failed",
        full ? "存储空间已满，正在按保留策略清理旧数据" : std::string("写入失败: ") + e.what());
  if (full) {
    retention();
  }
}

void Store::run() {
  std::vector<Op> ops;
  std::vector<std::function<void()>> callbacks;
  std::vector<Flush> flushes;
  auto next_commit = clock_.steadyNow() + core::Millis(cfg_.commit_interval_ms);
  auto next_retention = clock_.steadyNow() + core::Millis(cfg_.retention_check_ms);
  while (true) {
    auto now = clock_.steadyNow();
    auto wait = in_txn_ ? std::max(core::Millis(0), std::chrono::duration_cast<core::Millis>(
                                                        next_commit - now))
                        : core::Millis(cfg_.commit_interval_ms);
    ops.clear();
    size_t n = queue_.popAll(ops, 256, wait);
    bool closed = n == 0 && queue_.closed() && queue_.size() == 0;
    bool durable = false;
    size_t i = 0;
    try {
      for (; i < ops.size(); ++i) {
        apply(ops[i], callbacks, durable, flushes);
        if (rows_in_txn_ >= cfg_.batch_max_rows) {
          commit(false);
          next_commit = clock_.steadyNow() + core::Millis(cfg_.commit_interval_ms);
        }
      }
      now = clock_.steadyNow();
      if (durable || !flushes.empty() || closed || now >= next_commit) {
        commit(durable);
        next_commit = now + core::Millis(cfg_.commit_interval_ms);
      }
      for (auto& d : record_outcomes_) {
        d(true);
      }
      record_outcomes_.clear();
    } catch (const std::exception& e) {
      // Everything of the rolled-back transaction and of the ops not yet applied is lost.
      size_t lost = rows_in_txn_;
      for (size_t k = i; k < ops.size(); ++k) {
        if (auto* r = std::get_if<std::vector<model::Reading>>(&ops[k])) {
          lost += r->size();
          if (k > i) {
            releaseRows(r->size());
          }
        } else if (auto* a = std::get_if<ActuationOp>(&ops[k]); a != nullptr) {
          // Safety first: an unrecorded actuation is still executed.
          if (a->after_commit) {
            callbacks.push_back(std::move(a->after_commit));
          }
          if (a->done) {
            record_outcomes_.push_back(std::move(a->done));
          }
        } else if (auto* f = std::get_if<Flush>(&ops[k]); f != nullptr && k > i) {
          flushes.push_back(*f);
        }
      }
      fail(e, lost);
      for (auto& d : record_outcomes_) {
        d(false);
      }
      record_outcomes_.clear();
      next_commit = clock_.steadyNow() + core::Millis(cfg_.commit_interval_ms);
    }
    for (auto& cb : callbacks) {
      cb();
    }
    callbacks.clear();
    for (auto& f : flushes) {
      f.done->set_value();
    }
    flushes.clear();
    if (clock_.steadyNow() >= next_retention) {
      retention();
      next_retention = clock_.steadyNow() + core::Millis(cfg_.retention_check_ms);
    }
    if (closed) {
      break;
    }
  }
}

void Store::retention() {
  if (in_txn_) {
    try {
      commit(false);
    } catch (const std::exception&) {
      sqlite3_exec(db_->raw(), "ROLLBACK", nullptr, nullptr, nullptr);
      in_txn_ = false;
    }
  }
  try {
    int64_t cutoff = clock_.wallMs() - cfg_.retention_max_age_ms;
    int64_t max_bytes = cfg_.retention_max_mb * 1024 * 1024;
    // Rows are appended in ingest order, so the oldest rows have the lowest ids: delete from the
    // front in chunks (each its own short transaction, so the writer never stalls for long).
    Statement oldest = db_->prepare("SELECT min(id), min(ingest_ms) FROM readings WHERE id = "
                                    "(SELECT min(id) FROM readings)");
    Statement del = db_->prepare(
        "DELETE FROM readings WHERE id < (SELECT min(id) FROM readings) + ?");
    for (int round = 0; round < 1000; ++round) {
      bool too_old = false;
      if (oldest.step() && !oldest.columnNull(0)) {
        too_old = oldest.columnInt(1) < cutoff;
      }
      oldest.reset();
      int64_t page_size = db_->scalarInt("PRAGMA page_size");
      int64_t used = (db_->scalarInt("PRAGMA page_count") -
                      db_->scalarInt("PRAGMA freelist_count")) *
                     page_size;
      bool too_big = used > max_bytes;
      if (!too_old && !too_big) {
        break;
      }
      del.bind(1, int64_t{5000}).run();
      int64_t n = db_->changes();
      retention_deleted_.inc(static_cast<uint64_t>(n));
      if (n == 0) {
        break;
      }
    }
  } catch (const std::exception& e) {
    spdlog::error("storage: retention failed: {}", e.what());
  }
}

} // namespace hgj::storage
