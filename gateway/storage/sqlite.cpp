#include "gateway/storage/sqlite.h"

#include <cerrno>
#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>

#include <fcntl.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "core/fault_hooks.h"

namespace hgj::storage {

namespace {

[[noreturn]] void fail(sqlite3* db, int rc, std::string_view what) {
  std::string msg(what);
  msg += ": ";
  msg += db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  throw SqliteError(rc, msg);
}

// Polls finely for the first 5 ms, where a writer usually finds the lock another one held for a
// single short commit, then every ms, up to the timeout.
int busyHandler(void* busy, int count) {
  const auto& b = *static_cast<const Database::Busy*>(busy);
  if (b.heartbeat != nullptr) {
    b.heartbeat->beat();
  }
  constexpr int kFinePolls = 50;  // 50 x 0.1 ms
  const int64_t waited_ms =
      count < kFinePolls ? count / 10 : kFinePolls / 10 + (count - kFinePolls);
  if (waited_ms >= b.timeout_ms) {
    return 0;
  }
  std::this_thread::sleep_for(count < kFinePolls ? std::chrono::microseconds(100)
                                                 : std::chrono::microseconds(1000));
  return 1;
}

int64_t commitStallMs() {
  static const int64_t stall = core::faultHook("commit_stall_ms").value_or(0);
  return stall;
}

// SQLite creates a missing database file with mode 0644; the file holds the compound's
// history, so create it first with 0640 (SQLite gives its -wal and -shm files the same mode).
void createPrivate(const std::string& path) {
  int fd = ::open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0640);
  if (fd >= 0) {
    ::close(fd);
  }
}

} // namespace

Statement::Statement(sqlite3* db, std::string_view sql) : db_(db) {
  int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr);
  if (rc != SQLITE_OK) {
    fail(db, rc, "prepare \"" + std::string(sql.substr(0, 60)) + "\"");
  }
}

Statement::~Statement() { sqlite3_finalize(stmt_); }

Statement& Statement::operator=(Statement&& o) noexcept {
  if (this != &o) {
    sqlite3_finalize(stmt_);
    stmt_ = o.stmt_;
    db_ = o.db_;
    o.stmt_ = nullptr;
  }
  return *this;
}

Statement& Statement::bind(int i, int64_t v) {
  sqlite3_bind_int64(stmt_, i, v);
  return *this;
}

Statement& Statement::bind(int i, double v) {
  sqlite3_bind_double(stmt_, i, v);
  return *this;
}

Statement& Statement::bindStatic(int i, std::string_view v) {
  sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
  return *this;
}

Statement& Statement::bind(int i, std::string_view v) {
  sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  return *this;
}

Statement& Statement::bindNull(int i) {
  sqlite3_bind_null(stmt_, i);
  return *this;
}

Statement& Statement::bindOpt(int i, const std::string& v) {
  return v.empty() ? bindNull(i) : bind(i, std::string_view(v));
}

Statement& Statement::bindOpt(int i, int64_t v) { return v == 0 ? bindNull(i) : bind(i, v); }

Statement& Statement::bindValue(int i, const model::Value& v) {
  if (const auto* b = std::get_if<bool>(&v)) {
    sqlite3_bind_int64(stmt_, i, *b ? 1 : 0);
  } else if (const auto* d = std::get_if<double>(&v)) {
    sqlite3_bind_double(stmt_, i, *d);
  } else if (const auto* s = std::get_if<std::string>(&v)) {
    sqlite3_bind_text(stmt_, i, s->data(), static_cast<int>(s->size()), SQLITE_STATIC);
  } else {
    sqlite3_bind_null(stmt_, i);
  }
  return *this;
}

bool Statement::step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) {
    return true;
  }
  if (rc == SQLITE_DONE) {
    return false;
  }
  sqlite3_reset(stmt_);
  fail(db_, rc, "step");
}

void Statement::run() {
  Scope scope(*this);
  while (step()) {
  }
}

void Statement::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

std::string Statement::columnText(int i) const {
  const auto* t = sqlite3_column_text(stmt_, i);
  if (t == nullptr) {
    return {};
  }
  return std::string(reinterpret_cast<const char*>(t),
                     static_cast<size_t>(sqlite3_column_bytes(stmt_, i)));
}

model::Value Statement::columnValue(int i) const {
  switch (sqlite3_column_type(stmt_, i)) {
  case SQLITE_INTEGER:
  case SQLITE_FLOAT:
    return sqlite3_column_double(stmt_, i);
  case SQLITE_TEXT:
    return columnText(i);
  default:
    return {};
  }
}

Database::Database(const std::string& path, const OpenOptions& options)
    : path_(path), busy_{options.busy_timeout_ms},
      memory_(path == ":memory:" || path.empty()) {
  int flags = options.read_only ? SQLITE_OPEN_READONLY
                                : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  flags |= SQLITE_OPEN_NOMUTEX;
  if (!options.read_only && !memory_) {
    createPrivate(path);
  }
  int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = "open " + path + ": " + (db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc));
    sqlite3_close_v2(db_);
    db_ = nullptr;
    throw SqliteError(rc, msg);
  }
  sqlite3_busy_handler(db_, busyHandler, &busy_);
  try {
    if (!options.read_only) {
      exec("PRAGMA journal_mode=WAL");
      exec("PRAGMA synchronous=NORMAL");
      if (!options.checkpoints) {
        exec("PRAGMA wal_autocheckpoint=0");
      }
    }
    if (options.cache_kib > 0) {
      exec("PRAGMA cache_size=-" + std::to_string(options.cache_kib));
    }
  } catch (...) {
    sqlite3_close_v2(db_);
    throw;
  }
}

Database::~Database() {
  cache_.clear();  // finalized before the connection closes
  sqlite3_close_v2(db_);
}

Statement& Database::cached(const std::string& sql) {
  auto it = cache_.find(sql);
  if (it == cache_.end()) {
    it = cache_.emplace(sql, Statement(db_, sql)).first;
  }
  return it->second;
}

void Database::exec(std::string_view sql) {
  char* err = nullptr;
  std::string s(sql);
  int rc = sqlite3_exec(db_, s.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = "exec \"" + s.substr(0, 60) + "\": " + (err ? err : sqlite3_errstr(rc));
    sqlite3_free(err);
    throw SqliteError(rc, msg);
  }
}

int64_t Database::scalarInt(std::string_view sql) {
  Statement st(db_, sql);
  Statement::Scope scope(st);
  return st.step() ? st.columnInt(0) : 0;
}

int64_t Database::schemaVersion(std::string_view component, int64_t supported) {
  exec("CREATE TABLE IF NOT EXISTS schema_versions(component TEXT PRIMARY KEY, "
       "version INTEGER NOT NULL, updated_ms INTEGER)");
  Statement q(db_, "SELECT COALESCE(MAX(version), 0) FROM schema_versions WHERE component=?");
  Statement::Scope scope(q);
  q.bind(1, component);
  const int64_t found = q.step() ? q.columnInt(0) : 0;
  if (found > supported) {
    throw SqliteError(SQLITE_ERROR, "database has " + std::string(component) +
                                        " schema version " + std::to_string(found) +
                                        ", newer than this gateway's " +
                                        std::to_string(supported));
  }
  return found;
}

void Database::setSchemaVersion(std::string_view component, int64_t version, int64_t now_ms) {
  Statement st(db_, "INSERT OR REPLACE INTO schema_versions(component, version, updated_ms) "
                    "VALUES(?, ?, ?)");
  st.bindAll(component, version, Statement::Opt<int64_t>{now_ms}).run();  // 0: unknown, NULL
}

bool Database::checkpoint(bool truncate) {
  int rc = sqlite3_wal_checkpoint_v2(db_, nullptr,
                                     truncate ? SQLITE_CHECKPOINT_TRUNCATE
                                              : SQLITE_CHECKPOINT_PASSIVE,
                                     nullptr, nullptr);
  return rc == SQLITE_OK;
}

void Database::syncWal() {
  if (memory_) {
    return;
  }
  int fd = ::open((path_ + "-wal").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return;  // no WAL: everything is in the database file, synced by the checkpoint
  }
  int rc = ::fdatasync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) {
    throw SqliteError(err == ENOSPC ? SQLITE_FULL : SQLITE_IOERR,
                      std::string("fdatasync of the WAL: ") + std::strerror(err));
  }
}

int64_t Database::usedBytes() {
  return (scalarInt("PRAGMA page_count") - scalarInt("PRAGMA freelist_count")) *
         scalarInt("PRAGMA page_size");
}

void createSchema(Database& db, std::string_view component, std::string_view schema,
                  int64_t version, Durability durability, int64_t now_ms) {
  Transaction tx(db, durability);
  db.exec(schema);
  if (db.schemaVersion(component, version) != version) {
    db.setSchemaVersion(component, version, now_ms);
  }
  tx.commit();
}

Transaction::Transaction(Database& db, Durability durability)
    : db_(db), durability_(durability) {
  db_.exec("BEGIN IMMEDIATE");
}

Transaction::~Transaction() {
  if (open_) {
    rollback();
  }
}

void Transaction::commit() {
  if (int64_t stall = commitStallMs(); stall > 0) {
    // In slices, beating: a stalled disk is slow, not dead.
    for (int64_t left = stall; left > 0; left -= 100) {
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min<int64_t>(left, 100)));
      if (db_.heartbeat() != nullptr) {
        db_.heartbeat()->beat();
      }
    }
  }
  try {
    db_.exec("COMMIT");
  } catch (...) {
    rollback();
    throw;
  }
  open_ = false;
  if (durability_ == Durability::Power) {
    // The transaction is committed either way; a failed sync only means a power cut could
    // still take it. The next durable commit or checkpoint syncs it again.
    try {
      db_.syncWal();
    } catch (const SqliteError& e) {
      spdlog::error("storage: {}", e.what());
    }
  }
}

void Transaction::rollback() {
  open_ = false;
  // After SQLITE_FULL or an I/O error SQLite may have rolled back already.
  if (db_.inTransaction()) {
    sqlite3_exec(db_.raw(), "ROLLBACK", nullptr, nullptr, nullptr);
  }
}

ReadPool::ReadPool(std::string path, size_t max_idle, int64_t busy_timeout_ms)
    : path_(std::move(path)), max_idle_(max_idle), busy_timeout_ms_(busy_timeout_ms) {}

ReadPool::~ReadPool() = default;

bool ReadPool::with(const std::function<void(Database&)>& fn, std::string* error) const {
  std::unique_ptr<Database> db;
  {
    std::lock_guard lock(mu_);
    if (!idle_.empty()) {
      db = std::move(idle_.back());
      idle_.pop_back();
    }
  }
  try {
    if (!db) {
      OpenOptions o;
      o.read_only = true;
      o.busy_timeout_ms = busy_timeout_ms_;
      db = std::make_unique<Database>(path_, o);
    }
    fn(*db);
  } catch (const SqliteError& e) {
    if (error != nullptr) {
      *error = e.what();
    }
    return false;
  }
  std::lock_guard lock(mu_);
  if (idle_.size() < max_idle_) {
    idle_.push_back(std::move(db));
  }
  return true;
}

int64_t memoryUsed() {
  return sqlite3_memory_used();
}

std::string moveAside(const std::string& path, int64_t now_ms) {
  namespace fs = std::filesystem;
  std::string aside = path + ".corrupt-" + std::to_string(now_ms);
  std::error_code ec;
  fs::rename(path, aside, ec);
  fs::remove(path + "-wal", ec);
  fs::remove(path + "-shm", ec);
  return aside;
}

} // namespace hgj::storage
