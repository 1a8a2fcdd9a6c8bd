#include "gateway/uplink/outbox.h"

#include <algorithm>
#include <stdexcept>

#include <spdlog/spdlog.h>

namespace hgj::uplink {

namespace {

using storage::Database;
using storage::Durability;
using storage::SqliteError;
using storage::Statement;
using storage::Transaction;

constexpr std::array<const char*, kKindCount> kKindNames = {"summary", "alert", "telemetry",
                                                             "status", "cmd_result"};
constexpr std::array<Kind, 3> kDropOrder = {Kind::Summary, Kind::Telemetry, Kind::Status};
constexpr int kEpochShift = 32;
constexpr int64_t kMaxCounter = (int64_t{1} << kEpochShift) - 1;

constexpr const char* kInsert =
    "INSERT OR IGNORE INTO outbox(seq, msg_id, kind, topic, payload, created_ms) "
    "VALUES(?1, ?2, ?3, ?4, ?5, ?6)";

int64_t rowBytes(const OutboxRow& r) {
  return static_cast<int64_t>(r.topic.size() + r.payload.size());
}

void insertRow(Statement& ins, const OutboxRow& r) {
  ins.bind(1, r.seq)
      .bind(2, r.msg_id)
      .bind(3, kindName(r.kind))
      .bind(4, r.topic)
      .bind(5, r.payload)
      .bind(6, r.created_ms)
      .run();
}

} // namespace

const char* kindName(Kind kind) {
  return kKindNames[static_cast<size_t>(kind)];
}

std::optional<Kind> parseKind(std::string_view name) {
  for (size_t i = 0; i < kKindNames.size(); ++i) {
    if (name == kKindNames[i]) {
      return static_cast<Kind>(i);
    }
  }
  return std::nullopt;
}

bool isDroppable(Kind kind) {
  return kind == Kind::Summary || kind == Kind::Telemetry || kind == Kind::Status;
}

Outbox::Outbox(const std::string& db_path, const std::string& site_id, Limits limits,
               const core::Clock& clock, core::MetricsRegistry& metrics)
    : db_path_(db_path),
      site_id_(site_id),
      limits_(limits),
      clock_(clock),
      depth_gauge_(metrics.gauge("hgj_outbox_depth", "upstream messages waiting in the outbox")),
      bytes_gauge_(metrics.gauge("hgj_outbox_bytes", "bytes of upstream messages in the outbox")),
      coalesced_counter_(metrics.counter(
          "hgj_outbox_coalesced_total",
          "summaries replaced by a newer one of the same topic before they were sent")) {
  for (size_t i = 0; i < kKindCount; ++i) {
    added_counters_[i] = &metrics.counter("hgj_outbox_messages_total",
                                          "messages put into the outbox (given a msg_id)",
                                          {{"kind", kKindNames[i]}});
    dropped_counters_[i] = &metrics.counter(
        "hgj_outbox_dropped_total", "outbox messages dropped because the outbox was full",
        {{"kind", kKindNames[i]}});
  }
  int64_t last = 0;
  try {
    db_ = std::make_unique<Database>(db_path);
    // Same definition as the store's: whichever component opens the file first creates it.
    db_->exec("CREATE TABLE IF NOT EXISTS schema_versions(component TEXT PRIMARY KEY, "
              "version INTEGER NOT NULL, updated_ms INTEGER)");
    db_->exec("CREATE TABLE IF NOT EXISTS outbox(seq INTEGER PRIMARY KEY, msg_id TEXT NOT NULL, "
              "kind TEXT NOT NULL, topic TEXT NOT NULL, payload TEXT NOT NULL, "
              "created_ms INTEGER NOT NULL)");
    // Finding the oldest summary when full must not scan past thousands of alerts.
    db_->exec("CREATE INDEX IF NOT EXISTS outbox_kind_seq ON outbox(kind, seq)");
    db_->exec("CREATE TABLE IF NOT EXISTS outbox_sequence(site TEXT PRIMARY KEY, "
              "last_seq INTEGER NOT NULL)");
    db_->exec("INSERT INTO schema_versions(component, version, updated_ms) VALUES('uplink', 1, " +
              std::to_string(clock_.wallMs()) + ") ON CONFLICT(component) DO NOTHING");
    int64_t version =
        db_->scalarInt("SELECT version FROM schema_versions WHERE component='uplink'");
    if (version > kSchemaVersion) {
      throw std::runtime_error("outbox: database has schema version " +
                               std::to_string(version) + ", this build knows " +
                               std::to_string(kSchemaVersion));
    }
    // The boot's epoch is above this site's persisted sequence and any row still queued (rows
    // written under another site id share the table's key space).
    Statement s = db_->prepare(
        "SELECT MAX(COALESCE((SELECT last_seq FROM outbox_sequence WHERE site=?1), 0), "
        "COALESCE((SELECT MAX(seq) FROM outbox), 0)), "
        "(SELECT COUNT(*) FROM outbox), "
        "(SELECT COALESCE(SUM(length(CAST(topic AS BLOB)) + length(CAST(payload AS BLOB))), 0) "
        "FROM outbox), "
        "(SELECT created_ms FROM outbox ORDER BY seq LIMIT 1)");
    {
      Statement::Scope scope(s);
      s.bind(1, site_id_);
      if (s.step()) {
        last = s.columnInt(0);
        stats_.rows = s.columnInt(1);
        stats_.bytes = s.columnInt(2);
        stats_.oldest_created_ms = s.columnInt(3);
      }
    }
    // Fetching runs on a connection of its own: in WAL a reader never waits for a writer.
    read_db_ = std::make_unique<Database>(db_path);
    fetch_ = read_db_->prepare("SELECT seq, msg_id, kind, topic, payload, created_ms "
                               "FROM outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2");
    if (limits_.coalesce_summaries && limits_.topic_is_coalesce_key) {
      // Summaries left by the last boot (an outage across a restart) are replaced too.
      Statement newest = db_->prepare(
          "SELECT topic, MAX(seq) FROM outbox WHERE kind='summary' GROUP BY topic");
      Statement::Scope scope(newest);
      while (newest.step()) {
        newest_summary_[newest.columnText(0)] = newest.columnInt(1);
      }
    }
  } catch (const SqliteError& e) {
    throw std::runtime_error(std::string("outbox: ") + e.what());
  }
  epoch_ = (last >> kEpochShift) + 1;
  stats_.last_seq = last;
  saveEpoch(epoch_);
  std::lock_guard lock(mu_);
  disk_only_max_ = last;
  publishLocked();
}

Outbox::~Outbox() = default;

void Outbox::saveEpoch(int64_t epoch) {
  // Durable before the first message of the epoch: after a crash the next boot starts above it,
  // so no msg_id is ever given to two different messages. A connection of its own, so this
  // never waits behind the outbox's write mutex.
  try {
    Database db(db_path_);
    Transaction tx(db, Durability::Power);
    db.prepare("INSERT INTO outbox_sequence(site, last_seq) VALUES(?1, ?2) "
               "ON CONFLICT(site) DO UPDATE SET last_seq=MAX(last_seq, excluded.last_seq)")
        .bind(1, site_id_)
        .bind(2, epoch << kEpochShift)
        .run();
    tx.commit();
  } catch (const SqliteError& e) {
    spdlog::error("outbox: cannot record sequence epoch {} ({}); a crash before it is written "
                  "may reuse message ids of this boot",
                  epoch, e.what());
  }
}

int64_t Outbox::epoch() const {
  std::lock_guard lock(mu_);
  return epoch_;
}

void Outbox::setDropHandler(DropHandler handler) {
  std::lock_guard lock(mu_);
  drop_handler_ = std::move(handler);
}

void Outbox::setWakeHandler(WakeHandler handler) {
  std::lock_guard lock(mu_);
  wake_handler_ = std::move(handler);
}

int64_t Outbox::nextSeqLocked() {
  if (counter_ >= kMaxCounter) {
    // Four billion messages in one boot: start a new epoch (rare; a short durable write).
    ++epoch_;
    counter_ = 0;
    saveEpoch(epoch_);
  }
  return (epoch_ << kEpochShift) + ++counter_;
}

std::vector<int64_t> Outbox::stageLocked(std::vector<Entry>& entries, Writer writer,
                                         std::vector<OutboxRow>* copies) {
  std::vector<int64_t> seqs;
  seqs.reserve(entries.size());
  const int64_t now_ms = clock_.wallMs();
  for (auto& e : entries) {
    Staged s;
    s.writer = writer;
    s.row.seq = nextSeqLocked();
    s.row.msg_id = site_id_ + ":" + std::to_string(s.row.seq);
    s.row.kind = e.kind;
    s.row.created_ms = now_ms;
    e.render(s.row.msg_id, s.row.topic, s.row.payload);
    stats_.rows += 1;
    stats_.bytes += rowBytes(s.row);
    stats_.unwritten += 1;
    stats_.last_seq = s.row.seq;
    if (copies != nullptr) {
      copies->push_back(s.row);
    }
    added_counters_[static_cast<size_t>(e.kind)]->inc();
    seqs.push_back(s.row.seq);
    if (limits_.coalesce_summaries && e.kind == Kind::Summary && !e.coalesce_key.empty()) {
      coalesceLocked(e.coalesce_key, s.row.seq);
    }
    staged_.emplace(s.row.seq, std::move(s));
  }
  publishLocked();
  return seqs;
}

void Outbox::coalesceLocked(const std::string& key, int64_t newer_seq) {
  auto [it, inserted] = newest_summary_.try_emplace(key, newer_seq);
  const int64_t older = it->second;
  it->second = newer_seq;
  // Handed to the uplink already (maybe published, maybe acknowledged): it stays.
  if (inserted || older <= fetched_floor_) {
    return;
  }
  // What remove() does for an acknowledged message (persist() runs deletePending() first, in
  // this same append).
  if (!retireLocked(older)) {
    return;
  }
  coalesced_.emplace(older, fetches_started_);
  stats_.coalesced += 1;
  coalesced_counter_.inc();
}

std::vector<int64_t> Outbox::stageAndWake(std::vector<Entry>& entries, Writer writer,
                                          std::vector<OutboxRow>* copies) {
  std::vector<int64_t> seqs;
  WakeHandler wake;
  {
    std::lock_guard lock(mu_);
    seqs = stageLocked(entries, writer, copies);
    wake = wake_handler_;
  }
  if (wake) {
    wake();
  }
  return seqs;
}

std::optional<std::vector<int64_t>> Outbox::append(std::vector<Entry> entries) {
  std::vector<int64_t> seqs = stageAndWake(entries, Writer::Own, nullptr);
  if (!persist()) {
    return std::nullopt;
  }
  // A droppable message refused for lack of room was dropped by persist() before it was
  // written: it is neither staged nor on disk.
  std::lock_guard lock(mu_);
  for (auto& seq : seqs) {
    auto it = staged_.find(seq);
    if (it == staged_.end() && refused_.erase(seq) > 0) {
      seq = 0;
    }
  }
  while (refused_.size() > 1024) {  // refusals of post()ed messages nobody asks about
    refused_.erase(refused_.begin());
  }
  return seqs;
}

std::vector<int64_t> Outbox::post(std::vector<Entry> entries) {
  return stageAndWake(entries, Writer::Own, nullptr);
}

storage::DurableWrite Outbox::stage(std::vector<Entry> entries) {
  auto rows = std::make_shared<std::vector<OutboxRow>>();
  std::vector<int64_t> seqs = stageAndWake(entries, Writer::External, rows.get());
  storage::DurableWrite w;
  w.bytes = 128;
  for (const auto& r : *rows) {
    w.bytes += static_cast<size_t>(rowBytes(r)) + r.msg_id.size();
  }
  w.apply = [rows](Database& db) {
    Statement ins = db.prepare(kInsert);
    for (const auto& r : *rows) {
      insertRow(ins, r);
    }
  };
  w.committed = [this, seqs = std::move(seqs)] { committed(seqs); };
  return w;
}

void Outbox::committed(const std::vector<int64_t>& seqs) {
  std::lock_guard lock(mu_);
  for (int64_t seq : seqs) {
    auto it = staged_.find(seq);
    if (it == staged_.end()) {
      continue;
    }
    if (it->second.acked) {
      late_delete_.insert(seq);
    }
    staged_.erase(it);
    stats_.unwritten -= 1;
    disk_only_max_ = std::max(disk_only_max_, seq);
  }
  trim_due_ = trim_due_ || stats_.rows > limits_.max_rows || stats_.bytes > limits_.max_bytes;
  if (stats_.oldest_created_ms == 0 && !seqs.empty()) {
    stats_.oldest_created_ms = clock_.wallMs();
  }
  publishLocked();
}

bool Outbox::takeUnwritten(std::vector<OutboxRow>& rows, int64_t& rows_now,
                           int64_t& bytes_now) {
  std::lock_guard lock(mu_);
  for (auto& [seq, s] : staged_) {
    if (s.writer == Writer::Own && !s.acked && !s.writing) {
      s.writing = true;
      rows.push_back(s.row);
    }
  }
  rows_now = stats_.rows;
  bytes_now = stats_.bytes;
  // With nothing new to write, trim only after others wrote rows (the alerts' own
  // transactions): an outbox full of alerts is not scanned again on every call.
  if (rows.empty() && !trim_due_) {
    return false;
  }
  trim_due_ = false;
  return true;
}

Outbox::Trim Outbox::makeRoom(const std::vector<OutboxRow>& rows, int64_t rows_now,
                              int64_t bytes_now) {
  Trim trim;
  // The oldest droppable message goes first, on disk or about to be written.
  Statement oldest_of_kind = db_->prepare(
      "SELECT seq, length(CAST(topic AS BLOB)) + length(CAST(payload AS BLOB)) FROM outbox "
      "WHERE kind=?1 ORDER BY seq LIMIT 1");
  Statement del = db_->prepare("DELETE FROM outbox WHERE seq=?1");
  while (rows_now > limits_.max_rows || bytes_now > limits_.max_bytes) {
    int64_t best_seq = 0;
    int64_t best_bytes = 0;
    Kind best_kind = Kind::Summary;
    bool on_disk = false;
    for (Kind k : kDropOrder) {
      Statement::Scope scope(oldest_of_kind);
      oldest_of_kind.bind(1, kindName(k));
      if (oldest_of_kind.step()) {
        int64_t seq = oldest_of_kind.columnInt(0);
        if (best_seq == 0 || seq < best_seq) {
          best_seq = seq;
          best_bytes = oldest_of_kind.columnInt(1);
          best_kind = k;
          on_disk = true;
        }
      }
    }
    for (const auto& r : rows) {
      if (isDroppable(r.kind) && trim.refused.count(r.seq) == 0) {
        if (best_seq == 0 || r.seq < best_seq) {
          best_seq = r.seq;
          best_bytes = rowBytes(r);
          best_kind = r.kind;
          on_disk = false;
        }
        break;  // rows are in seq order: the first droppable one is the oldest
      }
    }
    if (best_seq == 0) {
      for (const auto& r : rows) {
        trim.kept_over += isDroppable(r.kind) ? 0 : 1;
      }
      break;
    }
    if (on_disk) {
      del.bind(1, best_seq).run();
      trim.rows += 1;
      trim.bytes += best_bytes;
    } else {
      trim.refused.insert(best_seq);
    }
    rows_now -= 1;
    bytes_now -= best_bytes;
    trim.dropped[static_cast<size_t>(best_kind)] += 1;
  }
  return trim;
}

void Outbox::settleWritten(const std::vector<OutboxRow>& rows, Trim& trim, int64_t oldest,
                           DropHandler& handler) {
  std::lock_guard lock(mu_);
  for (const auto& r : rows) {
    auto it = staged_.find(r.seq);
    if (it == staged_.end()) {
      continue;
    }
    const bool was_refused = trim.refused.count(r.seq) > 0;
    if (it->second.acked && !was_refused) {
      late_delete_.insert(r.seq);  // acknowledged while being written
    } else if (!it->second.acked && was_refused) {
      stats_.rows -= 1;
      stats_.bytes -= rowBytes(r);
      refused_.insert(r.seq);
    }
    staged_.erase(it);
    stats_.unwritten -= 1;
    disk_only_max_ = std::max(disk_only_max_, r.seq);
  }
  stats_.rows -= trim.rows;
  stats_.bytes -= trim.bytes;
  stats_.over_cap_kept += trim.kept_over;
  stats_.oldest_created_ms = oldest;
  bool any = false;
  for (size_t k = 0; k < kKindCount; ++k) {
    if (trim.dropped[k] > 0) {
      stats_.dropped[k] += trim.dropped[k];
      dropped_counters_[k]->inc(trim.dropped[k]);
      any = true;
    }
  }
  publishLocked();
  if (any) {
    // The handler is told each kind's total so far, outside the lock.
    handler = drop_handler_;
    for (size_t k = 0; k < kKindCount; ++k) {
      trim.dropped[k] = trim.dropped[k] > 0 ? stats_.dropped[k] : 0;
    }
  }
}

bool Outbox::persist() {
  std::lock_guard wlock(write_mu_);
  bool deleted = deletePending();
  std::vector<OutboxRow> rows;
  int64_t rows_now = 0;
  int64_t bytes_now = 0;
  if (!takeUnwritten(rows, rows_now, bytes_now)) {
    return deleted;
  }
  const bool over = rows_now > limits_.max_rows || bytes_now > limits_.max_bytes;
  if (rows.empty() && !over) {
    return deleted;
  }
  Trim trim;
  int64_t oldest = 0;
  try {
    Transaction tx(*db_, Durability::Power);
    trim = makeRoom(rows, rows_now, bytes_now);
    Statement ins = db_->prepare(kInsert);
    for (const auto& r : rows) {
      if (trim.refused.count(r.seq) == 0) {
        insertRow(ins, r);
      }
    }
    tx.commit();
    oldest = db_->scalarInt("SELECT created_ms FROM outbox ORDER BY seq LIMIT 1");
  } catch (const SqliteError& e) {
    std::lock_guard lock(mu_);
    for (const auto& r : rows) {
      if (auto it = staged_.find(r.seq); it != staged_.end()) {
        it->second.writing = false;
      }
    }
    write_log_.warn("outbox: {} messages not written yet (kept in memory, sent anyway): {}",
                    rows.size(), e.what());
    return false;
  }
  DropHandler handler;
  settleWritten(rows, trim, oldest, handler);
  if (handler) {
    for (size_t k = 0; k < kKindCount; ++k) {
      if (trim.dropped[k] > 0) {
        handler(static_cast<Kind>(k), trim.dropped[k]);
      }
    }
  }
  return deleted;
}

bool Outbox::retireLocked(int64_t seq) {
  auto it = staged_.find(seq);
  if (it == staged_.end()) {
    delete_.insert(seq);
    return true;
  }
  Staged& s = it->second;
  if (s.acked) {
    return false;
  }
  s.acked = true;
  stats_.rows -= 1;
  stats_.bytes -= rowBytes(s.row);
  if (s.writer == Writer::Own && !s.writing) {
    // Never written and no longer needed.
    staged_.erase(it);
    stats_.unwritten -= 1;
  }
  return true;
}

bool Outbox::remove(const std::vector<int64_t>& seqs) {
  if (seqs.empty()) {
    return true;
  }
  {
    std::lock_guard lock(mu_);
    for (int64_t seq : seqs) {
      retireLocked(seq);
    }
    publishLocked();
  }
  std::lock_guard wlock(write_mu_);
  return deletePending();
}

bool Outbox::deletePending() {
  std::vector<int64_t> counted;
  std::vector<int64_t> late;
  {
    std::lock_guard lock(mu_);
    counted.assign(delete_.begin(), delete_.end());
    late.assign(late_delete_.begin(), late_delete_.end());
  }
  if (counted.empty() && late.empty()) {
    return true;
  }
  int64_t rows = 0;
  int64_t bytes = 0;
  int64_t oldest = 0;
  try {
    Transaction tx(*db_, Durability::Power);
    Statement del = db_->prepare("DELETE FROM outbox WHERE seq=?1 RETURNING "
                                 "length(CAST(topic AS BLOB)) + length(CAST(payload AS BLOB))");
    for (int64_t seq : counted) {
      Statement::Scope scope(del);
      del.bind(1, seq);
      if (del.step()) {
        rows += 1;
        bytes += del.columnInt(0);
      }
    }
    Statement late_del = db_->prepare("DELETE FROM outbox WHERE seq=?1");
    for (int64_t seq : late) {
      late_del.bind(1, seq).run();
    }
    tx.commit();
    oldest = db_->scalarInt("SELECT created_ms FROM outbox ORDER BY seq LIMIT 1");
  } catch (const SqliteError& e) {
    // The rows stay and are not sent again (excluded from fetchAfter); tried again later. A
    // crash meanwhile sends them once more, with the same msg_id.
    write_log_.warn("outbox: deleting {} acknowledged messages failed: {}",
                    counted.size() + late.size(), e.what());
    return false;
  }
  std::lock_guard lock(mu_);
  for (int64_t seq : counted) {
    delete_.erase(seq);
  }
  for (int64_t seq : late) {
    late_delete_.erase(seq);
  }
  stats_.rows -= rows;
  stats_.bytes -= bytes;
  stats_.oldest_created_ms = oldest;
  publishLocked();
  return true;
}

std::vector<OutboxRow> Outbox::fetchAfter(int64_t after_seq, int limit, bool memory_only) {
  std::vector<OutboxRow> staged;
  std::set<int64_t> excluded;
  uint64_t this_fetch = 0;
  bool read_disk = true;
  {
    // The memory part first: a message committed after this looks is found on disk below
    // (the read starts later), one committed before is on disk already.
    std::lock_guard lock(mu_);
    fetches_started_ += 1;
    this_fetch = fetches_started_;
    for (auto it = staged_.upper_bound(after_seq);
         it != staged_.end() && static_cast<int>(staged.size()) < limit; ++it) {
      if (!it->second.acked) {
        staged.push_back(it->second.row);
      }
    }
    // Every row above disk_only_max_ is staged (a row leaves staged_ only after raising it, in
    // the same lock): the copies just taken are the whole answer.
    read_disk = after_seq < disk_only_max_;
    if (read_disk && memory_only) {
      return {};
    }
    if (read_disk) {
      excluded = delete_;
      excluded.insert(late_delete_.begin(), late_delete_.end());
      for (const auto& [seq, s] : staged_) {
        if (s.acked) {
          excluded.insert(seq);
        }
      }
    }
  }
  std::vector<OutboxRow> rows;
  bool full = false;
  if (read_disk) {
    std::lock_guard lock(read_mu_);
    try {
      Statement::Scope scope(fetch_);
      fetch_.bind(1, after_seq).bind(2, limit);
      int n = 0;
      while (fetch_.step()) {
        ++n;
        OutboxRow r;
        r.seq = fetch_.columnInt(0);
        if (excluded.count(r.seq) > 0) {
          continue;
        }
        r.msg_id = fetch_.columnText(1);
        r.kind = parseKind(fetch_.columnText(2)).value_or(Kind::Summary);
        r.topic = fetch_.columnText(3);
        r.payload = fetch_.columnText(4);
        r.created_ms = fetch_.columnInt(5);
        rows.push_back(std::move(r));
      }
      full = n >= limit;
    } catch (const SqliteError& e) {
      write_log_.warn("outbox: fetch failed: {}", e.what());
      return {};
    }
  }
  // A full page from disk ends where the disk's next page would begin: staged messages beyond
  // it wait for the next call, so nothing is skipped.
  const int64_t cut = full && !rows.empty() ? rows.back().seq : INT64_MAX;
  for (auto& s : staged) {
    if (s.seq <= cut) {
      rows.push_back(std::move(s));
    }
  }
  std::sort(rows.begin(), rows.end(),
            [](const OutboxRow& a, const OutboxRow& b) { return a.seq < b.seq; });
  rows.erase(std::unique(rows.begin(), rows.end(),
                         [](const OutboxRow& a, const OutboxRow& b) { return a.seq == b.seq; }),
             rows.end());
  if (static_cast<int>(rows.size()) > limit) {
    rows.resize(static_cast<size_t>(limit));
  }
  if (limits_.coalesce_summaries) {
    std::lock_guard lock(mu_);
    // Coalesced while this fetch was reading: not sent. From here on the rows returned count
    // as handed over, so they are never coalesced.
    if (!coalesced_.empty()) {
      rows.erase(std::remove_if(rows.begin(), rows.end(),
                                [&](const OutboxRow& r) { return coalesced_.count(r.seq) > 0; }),
                 rows.end());
      // Coalesced before this fetch began: excluded by delete_ (or gone from disk) for this
      // fetch and every later one.
      for (auto it = coalesced_.begin(); it != coalesced_.end();) {
        it = it->second < this_fetch ? coalesced_.erase(it) : std::next(it);
      }
    }
    if (!rows.empty()) {
      fetched_floor_ = std::max(fetched_floor_, rows.back().seq);
    }
  }
  return rows;
}

void Outbox::publishLocked() {
  depth_gauge_.set(static_cast<double>(stats_.rows));
  bytes_gauge_.set(static_cast<double>(stats_.bytes));
  OutboxStats copy = stats_;
  if (!staged_.empty()) {
    int64_t first = staged_.begin()->second.row.created_ms;
    if (copy.oldest_created_ms == 0 || first < copy.oldest_created_ms) {
      copy.oldest_created_ms = first;
    }
  }
  std::lock_guard lock(published_mu_);
  published_ = copy;
}

OutboxStats Outbox::stats() const {
  std::lock_guard lock(published_mu_);
  return published_;
}

} // namespace hgj::uplink
