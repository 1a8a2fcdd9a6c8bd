#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "gateway/storage/durable.h"
#include "gateway/storage/sqlite.h"

namespace hgj::uplink {

/// What an upstream message is; decides what may be dropped when the outbox is full.
enum class Kind { Summary, Alert, Telemetry, Status, CmdResult };
constexpr size_t kKindCount = 5;

const char* kindName(Kind kind);
std::optional<Kind> parseKind(std::string_view name);
/// Summaries, telemetry and status are superseded by later ones; alerts and command results
/// are never dropped.
bool isDroppable(Kind kind);

/// One upstream message, ready to publish as is.
struct OutboxRow {
  int64_t seq = 0;
  std::string msg_id;
  Kind kind = Kind::Summary;
  std::string topic;
  std::string payload;
  int64_t created_ms = 0;
};

struct OutboxStats {
  int64_t rows = 0;               ///< messages not yet acknowledged (on disk or in memory)
  int64_t bytes = 0;              ///< their topic + payload bytes
  int64_t oldest_created_ms = 0;  ///< oldest row on disk; 0 when none
  int64_t last_seq = 0;
  int64_t unwritten = 0;          ///< messages in memory only (not yet committed)
  std::array<uint64_t, kKindCount> dropped{};  ///< by Kind, since this object was created
  uint64_t over_cap_kept = 0;  ///< alerts/results kept although the outbox was full
  uint64_t coalesced = 0;      ///< summaries replaced by a newer one before they were sent
};

/// The store-and-forward queue of upstream messages: the `outbox` table of the gateway's
/// database plus, in memory, the messages of this boot that are not yet committed.
///
/// Sequence: `seq = epoch * 2^32 + n`, where the epoch is this boot's number, made durable
/// (`outbox_sequence.last_seq = epoch * 2^32`) in the constructor before any message exists,
/// and n counts from 1 in memory. So `msg_id = "{site}:{seq}"` strictly increases per site
/// across restarts and crashes, and no two messages ever share one, without a write per
/// message.
///
/// A message is visible to fetchAfter() (and so published) from the moment it is staged, before
/// its row is committed: the uplink never waits for the disk. Its row is committed either by
/// the outbox's own connection (append(): at once; post(): by persist() on the uplink writer
/// thread) or in someone else's transaction (stage(): the alert's own transaction, one fsync for
/// both). A message whose commit fails stays in memory, is still sent, and is written again by
/// persist() once the disk takes it. A row is deleted only after its PUBACK (remove()); a
/// message acknowledged before its row was committed is deleted right after the commit.
///
/// Bounded in rows and bytes: when full, the oldest droppable rows (summary, telemetry,
/// status; oldest first) are deleted and counted; alerts and command results are never dropped
/// (kept over the cap and counted in `over_cap_kept`). The memory part holds only messages not
/// yet committed, so it is small unless the disk fails.
///
/// Thread-safe. One mutex guards the memory part (never held across a disk operation); a
/// second serialises the write connection; fetchAfter() reads on a third connection, so
/// publishing never waits for a writer.
class Outbox {
public:
  struct Limits {
    int64_t max_rows = 200'000;
    int64_t max_bytes = 64LL * 1024 * 1024;
    /// A new summary replaces the previous summary with the same Entry::coalesce_key when
    /// that one has never been handed to the uplink (fetchAfter): the platform gets the latest
    /// state, not every step of an outage. Only Kind::Summary; alerts are never coalesced.
    bool coalesce_summaries = false;
    /// The rendered topic names a summary's kind (native mode: one topic per summary type), so
    /// summaries left on disk by the last boot can be coalesced too. False where every summary
    /// shares one topic (ThingsBoard's v1/devices/me/telemetry): those are all sent.
    bool topic_is_coalesce_key = true;
  };
  /// Fills in topic and payload once the message's msg_id is known.
  using Render = std::function<void(const std::string& msg_id, std::string& topic,
                                    std::string& payload)>;
  struct Entry {
    Kind kind = Kind::Summary;
    Render render;
    /// Summaries only: what a newer summary must share to replace this one (the summary type).
    /// Empty: never coalesced.
    std::string coalesce_key = {};
  };
  /// Called (outside the lock) after rows were dropped to make room.
  using DropHandler = std::function<void(Kind kind, uint64_t dropped_total)>;
  /// Called (outside the lock, on the staging thread) after messages were staged: the uplink
  /// thread has something to send.
  using WakeHandler = std::function<void()>;

  /// Opens (creating when needed) the tables in `db_path` and makes this boot's epoch durable.
  /// Throws std::runtime_error when the database cannot be opened or has a newer schema.
  Outbox(const std::string& db_path, const std::string& site_id, Limits limits,
         const core::Clock& clock, core::MetricsRegistry& metrics);
  ~Outbox();
  Outbox(const Outbox&) = delete;
  Outbox& operator=(const Outbox&) = delete;

  /// Stages the entries and commits them on the outbox's connection before returning. Returns
  /// each entry's seq (0 for a droppable entry refused because the outbox is full of
  /// undroppable rows), or nullopt when the commit failed: the messages then stay in memory,
  /// are sent, and are written by a later persist().
  std::optional<std::vector<int64_t>> append(std::vector<Entry> entries);
  /// Stages the entries for sending now; persist() commits them. Never waits for the disk.
  std::vector<int64_t> post(std::vector<Entry> entries);
  /// Stages the entries for sending now and returns the write that records them, to be
  /// committed in the caller's own transaction (DurableSink). Never waits for the disk.
  storage::DurableWrite stage(std::vector<Entry> entries);
  /// Commits what post() staged and what failed before, drops over the cap, deletes rows
  /// acknowledged before they were committed. Uplink writer thread (or any, serialised).
  /// False when something is still unwritten.
  bool persist();
  /// Messages with seq > `after_seq`, oldest first, at most `limit`: the committed rows merged
  /// with the staged ones, without those already acknowledged or coalesced. A summary returned
  /// here is never coalesced afterwards (it may be on its way). One caller at a time (the
  /// uplink's send lock). With `memory_only`, a fetch that would need the disk (rows committed
  /// and let go of above `after_seq`) returns nothing instead: it never waits for SQLite.
  std::vector<OutboxRow> fetchAfter(int64_t after_seq, int limit, bool memory_only = false);
  /// The broker acknowledged these messages: their rows are deleted (one durable transaction;
  /// a failure is retried by persist()), staged ones forgotten. False when a delete failed.
  bool remove(const std::vector<int64_t>& seqs);

  OutboxStats stats() const;
  void setDropHandler(DropHandler handler);
  void setWakeHandler(WakeHandler handler);
  int64_t epoch() const;

  static constexpr int kSchemaVersion = 1;

private:
  enum class Writer : uint8_t { Own, External };
  struct Staged {
    OutboxRow row;
    Writer writer = Writer::Own;
    bool acked = false;    // acknowledged: not sent again; its row is deleted once committed
    bool writing = false;  // in a persist() transaction right now
  };

  std::vector<int64_t> stageLocked(std::vector<Entry>& entries, Writer writer,
                                   std::vector<OutboxRow>* copies);
  std::vector<int64_t> stageAndWake(std::vector<Entry>& entries, Writer writer,
                                    std::vector<OutboxRow>* copies);
  int64_t nextSeqLocked();
  void saveEpoch(int64_t epoch);
  void committed(const std::vector<int64_t>& seqs);
  bool deletePending();
  void publishLocked();
  /// A message that needs no sending (acknowledged, or replaced by a newer one): not sent
  /// again, its row deleted by the next deletePending(). False when it already was. Under mu_.
  bool retireLocked(int64_t seq);

  /// What making room in a full outbox dropped (persist()).
  struct Trim {
    std::array<uint64_t, kKindCount> dropped{};  ///< by kind (then: each kind's total so far)
    std::set<int64_t> refused;  ///< staged rows dropped before being written
    int64_t rows = 0;           ///< rows dropped from disk
    int64_t bytes = 0;
    uint64_t kept_over = 0;     ///< undroppable rows kept over the cap
  };
  /// persist()'s steps: take the rows to write (false: nothing to do), drop the oldest
  /// droppable messages until the caps hold (inside the write transaction), then account for
  /// what was written and dropped.
  bool takeUnwritten(std::vector<OutboxRow>& rows, int64_t& rows_now, int64_t& bytes_now);
  Trim makeRoom(const std::vector<OutboxRow>& rows, int64_t rows_now, int64_t bytes_now);
  void settleWritten(const std::vector<OutboxRow>& rows, Trim& trim, int64_t oldest,
                     DropHandler& handler);
  void coalesceLocked(const std::string& key, int64_t newer_seq);

  const std::string db_path_;
  const std::string site_id_;
  const Limits limits_;
  const core::Clock& clock_;
  core::Gauge& depth_gauge_;
  core::Gauge& bytes_gauge_;
  std::array<core::Counter*, kKindCount> dropped_counters_{};
  std::array<core::Counter*, kKindCount> added_counters_{};
  core::Counter& coalesced_counter_;

  mutable std::mutex mu_;
  std::map<int64_t, Staged> staged_;        // guarded by mu_: not yet committed
  std::set<int64_t> delete_;                // guarded by mu_: committed rows to delete, counted
  std::set<int64_t> late_delete_;           // guarded by mu_: acked before their commit
  std::set<int64_t> refused_;               // guarded by mu_: dropped before being written
  bool trim_due_ = false;                   // guarded by mu_: rows written by others, over cap
  int64_t epoch_ = 0;                       // guarded by mu_
  int64_t counter_ = 0;                     // guarded by mu_
  // The highest seq that may be on disk without a copy in staged_ (rows left by the last boot,
  // rows committed and let go of since). fetchAfter() past it needs no disk read: the staged
  // copies are the whole answer, so an alert staged now is handed over without touching SQLite.
  int64_t disk_only_max_ = 0;               // guarded by mu_
  OutboxStats stats_;                       // guarded by mu_
  DropHandler drop_handler_;                // guarded by mu_
  // Coalescing: the newest summary per coalesce key; the highest seq ever returned by fetchAfter();
  // coalesced seqs, with the number of fetches started before they were coalesced (a fetch
  // that started earlier may have read the row: it drops it before returning).
  std::map<std::string, int64_t> newest_summary_;  // guarded by mu_
  int64_t fetched_floor_ = 0;                      // guarded by mu_
  uint64_t fetches_started_ = 0;                   // guarded by mu_
  std::map<int64_t, uint64_t> coalesced_;          // guarded by mu_
  WakeHandler wake_handler_;                // guarded by mu_

  std::mutex write_mu_;
  std::unique_ptr<storage::Database> db_;    // guarded by write_mu_
  std::mutex read_mu_;
  std::unique_ptr<storage::Database> read_db_;  // guarded by read_mu_
  storage::Statement fetch_;                    // guarded by read_mu_

  mutable std::mutex published_mu_;
  OutboxStats published_;  // guarded by published_mu_: a copy for other threads

  // A failing disk fails every write and fetch: warn a few times a minute, not per ack.
  core::RateLimitedLog write_log_{5, std::chrono::seconds(60)};
};

} // namespace hgj::uplink
