#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/metrics.h"

struct sqlite3;
struct sqlite3_stmt;

namespace hgj::uplink {

/// What an upstream message is; decides what may be dropped when the outbox is full.
enum class Kind { Summary, Alert, Telemetry, Status, CmdResult };
constexpr size_t kKindCount = 5;

const char* kindName(Kind kind);
std::optional<Kind> parseKind(std::string_view name);
/// Summaries, telemetry and status are superseded by later ones; alerts and command results
/// are never dropped.
bool isDroppable(Kind kind);

/// One committed upstream message, ready to publish as is.
struct OutboxRow {
  int64_t seq = 0;
  std::string msg_id;
  Kind kind = Kind::Summary;
  std::string topic;
  std::string payload;
  int64_t created_ms = 0;
};

struct OutboxStats {
  int64_t rows = 0;
  int64_t bytes = 0;          ///< topic + payload bytes of all rows
  int64_t oldest_created_ms = 0;  ///< 0 when empty
  int64_t last_seq = 0;
  std::array<uint64_t, kKindCount> dropped{};  ///< by Kind, since this object was created
  uint64_t over_cap_kept = 0;  ///< alerts/results kept although the outbox was full
};

/// The durable store-and-forward queue of upstream messages: table `outbox` in the gateway's
/// SQLite file, on a connection of its own (WAL, busy_timeout, synchronous=FULL so a commit
/// survives a power cut). `seq` comes from a per-site counter persisted in `outbox_sequence` in
/// the same transaction as the row, so `msg_id = "{site}:{seq}"` strictly increases across
/// restarts and kill -9. Bounded in rows and bytes: when full, the oldest droppable rows
/// (summary, telemetry, status; oldest first) are deleted and counted; alerts and command
/// results are never dropped (they are kept over the cap and counted in `over_cap_kept`).
///
/// Thread-safe: append() is called by the pipeline thread (alerts) and the uplink threads
/// (summaries, results); remove() by the uplink writer thread, fetchAfter() by the uplink thread.
/// One mutex serialises the write connection (a call holds it for one transaction, including the
/// wait for SQLite's write lock); fetchAfter() reads on a second connection and stats() reads a
/// copy, so neither ever waits for a writer. Lock waits poll every 0.1 ms for the first 5 ms
/// (SQLite's default handler sleeps up to 100 ms between tries), up to 5 s.
class Outbox {
public:
  struct Limits {
    int64_t max_rows = 200'000;
    int64_t max_bytes = 64LL * 1024 * 1024;
  };
  /// Fills in topic and payload once the message's msg_id is known.
  using Render = std::function<void(const std::string& msg_id, std::string& topic,
                                    std::string& payload)>;
  struct Entry {
    Kind kind = Kind::Summary;
    Render render;
  };
  /// Called (on the appending thread, outside the lock) after rows were dropped to make room.
  using DropHandler = std::function<void(Kind kind, uint64_t dropped_total)>;

  /// Opens (creating when needed) the tables in `db_path`. Throws std::runtime_error when the
  /// database cannot be opened or has a newer schema.
  Outbox(const std::string& db_path, const std::string& site_id, Limits limits,
         const core::Clock& clock, core::MetricsRegistry& metrics);
  ~Outbox();
  Outbox(const Outbox&) = delete;
  Outbox& operator=(const Outbox&) = delete;

  /// Commits all entries in one transaction before returning. Returns each entry's seq (0 for a
  /// droppable entry refused because the outbox is full of undroppable rows), or nullopt when
  /// SQLite failed (nothing was committed; logged).
  std::optional<std::vector<int64_t>> append(std::vector<Entry> entries);
  /// Rows with seq > `after_seq`, oldest first, at most `limit`.
  std::vector<OutboxRow> fetchAfter(int64_t after_seq, int limit);
  /// Deletes acknowledged rows (absent ones are ignored) in one durable transaction.
  bool remove(const std::vector<int64_t>& seqs);

  OutboxStats stats() const;
  void setDropHandler(DropHandler handler);

  static constexpr int kSchemaVersion = 1;

private:
  void exec(const char* sql);
  sqlite3_stmt* prepare(const char* sql);
  void refreshOldestLocked();
  void publishGaugesLocked();
  // Deletes the oldest droppable row; false when there is none.
  bool dropOldestLocked(Kind& dropped_kind);

  const std::string site_id_;
  const Limits limits_;
  const core::Clock& clock_;
  core::Gauge& depth_gauge_;
  core::Gauge& bytes_gauge_;
  std::array<core::Counter*, kKindCount> dropped_counters_{};

  mutable std::mutex mu_;
  sqlite3* db_ = nullptr;           // guarded by mu_: the write connection
  sqlite3_stmt* insert_ = nullptr;  // guarded by mu_
  sqlite3_stmt* save_seq_ = nullptr;
  sqlite3_stmt* delete_ = nullptr;
  std::mutex read_mu_;
  sqlite3* read_db_ = nullptr;      // guarded by read_mu_
  sqlite3_stmt* fetch_ = nullptr;   // guarded by read_mu_, on read_db_
  sqlite3_stmt* oldest_of_kind_ = nullptr;
  sqlite3_stmt* oldest_ = nullptr;
  sqlite3_stmt* begin_ = nullptr;
  sqlite3_stmt* commit_ = nullptr;
  sqlite3_stmt* rollback_ = nullptr;
  OutboxStats stats_;  // guarded by mu_: the working copy
  mutable std::mutex published_mu_;
  OutboxStats published_;  // guarded by published_mu_: stats_ after the last commit
  DropHandler drop_handler_;  // set before use, read under mu_
};

} // namespace hgj::uplink
