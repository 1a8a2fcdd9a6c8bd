#include "gateway/storage/durable.h"

#include <spdlog/spdlog.h>

namespace hgj::storage {

DirectSink::DirectSink(const std::string& path) : db_(std::make_unique<Database>(path)) {}

void DirectSink::submit(std::vector<DurableWrite> writes) {
  std::deque<DurableWrite> done;
  {
    std::lock_guard lock(mu_);
    for (auto& w : writes) {
      queue_.push_back(std::move(w));
    }
    flushLocked(done);
  }
  runCommitted(done);
}

bool DirectSink::retry() {
  std::deque<DurableWrite> done;
  bool empty;
  {
    std::lock_guard lock(mu_);
    empty = flushLocked(done);
  }
  runCommitted(done);
  return empty;
}

void DirectSink::runCommitted(std::deque<DurableWrite>& done) {
  // Outside the lock: a callback may submit again.
  for (auto& w : done) {
    if (w.committed) {
      w.committed();
    }
  }
}

size_t DirectSink::queued() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

bool DirectSink::flushLocked(std::deque<DurableWrite>& done) {
  if (queue_.empty()) {
    return true;
  }
  try {
    Transaction tx(*db_, Durability::Power);
    for (auto& w : queue_) {
      if (w.apply) {
        w.apply(*db_);
      }
    }
    tx.commit();
  } catch (const SqliteError& e) {
    spdlog::warn("storage: {} writes not committed yet: {}", queue_.size(), e.what());
    return false;
  }
  done.swap(queue_);
  return true;
}

} // namespace hgj::storage
