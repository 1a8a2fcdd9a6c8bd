#pragma once

#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "gateway/storage/sqlite.h"

namespace hgj::storage {

/// One change that must survive a power cut (an alert and its upstream message, a notification's
/// delivery state, ...), written behind by whoever owns the writing connection. The component
/// that makes the change keeps its own state in memory and is the authority for it; the write
/// only records it.
struct DurableWrite {
  /// Runs inside the writer's transaction. It may run more than once: a transaction that failed
  /// (full disk, I/O error) was rolled back and is tried again later with the same writes, in
  /// the same order. Throws SqliteError.
  std::function<void(Database&)> apply;
  /// Runs once, on the writer's thread, after the transaction that holds the write is durable.
  /// Must only hand work over (no waiting).
  std::function<void()> committed;
  /// Approximate bytes held by the closures, for the writer's memory bound.
  size_t bytes = 64;
};

/// Where components submit their DurableWrites. Writes are committed in submission order (a
/// later write never becomes durable before an earlier one) with Durability::Power; one
/// submit() call's writes land in one transaction. A write that cannot be committed is kept
/// in memory and tried again (bounded: past the bound the oldest are dropped, counted and
/// logged), so a full disk delays the record of a change, never the change itself.
class DurableSink {
public:
  virtual ~DurableSink() = default;
  /// Thread-safe; never waits for the disk.
  virtual void submit(std::vector<DurableWrite> writes) = 0;
};

/// A DurableSink that writes at once on the calling thread, on a connection of its own: for
/// components used without the storage writer (unit tests, tools). Writes that fail stay
/// queued and are tried again by the next submit() or retry(). Thread-safe (one mutex).
class DirectSink : public DurableSink {
public:
  explicit DirectSink(const std::string& path);
  void submit(std::vector<DurableWrite> writes) override;
  /// Tries the queued writes again; true when none is left.
  bool retry();
  size_t queued() const;

private:
  bool flushLocked(std::deque<DurableWrite>& done);
  static void runCommitted(std::deque<DurableWrite>& done);

  mutable std::mutex mu_;
  std::unique_ptr<Database> db_;       // guarded by mu_
  std::deque<DurableWrite> queue_;     // guarded by mu_
};

} // namespace hgj::storage
