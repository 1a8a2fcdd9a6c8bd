#include "gateway/pipeline/read_model.h"

namespace hgj::pipeline {

std::shared_ptr<const Snapshot> ReadModel::current() const {
  std::lock_guard lock(mu_);
  return snapshot_;
}

void ReadModel::publish(std::shared_ptr<const Snapshot> snapshot) {
  std::lock_guard lock(mu_);
  snapshot_ = std::move(snapshot);
  pruneLocked();  // events age out while nothing new is pushed, too
}

void ReadModel::pushEvent(std::string type, std::string json) {
  {
    std::lock_guard lock(mu_);
    events_.push_back({++seq_, std::move(type), std::move(json), clock_.steadyNow()});
    pruneLocked();
  }
  cv_.notify_all();
}

void ReadModel::pruneLocked() {
  const core::SteadyTime oldest = clock_.steadyNow() - window_;
  while (!events_.empty() && (events_.size() > ring_capacity_ || events_.front().at < oldest)) {
    events_.pop_front();
  }
}

size_t ReadModel::eventsKept() const {
  std::lock_guard lock(mu_);
  return events_.size();
}

std::vector<LiveEvent> ReadModel::eventsAfter(uint64_t after, std::chrono::milliseconds timeout,
                                              bool* gap) const {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return closed_ || seq_ > after; });
  std::vector<LiveEvent> out;
  if (gap != nullptr) {
    // Missed: what came after `after` is no longer (all) kept.
    *gap = seq_ > after && (events_.empty() || events_.front().seq > after + 1);
  }
  for (const auto& e : events_) {
    if (e.seq > after) {
      out.push_back(e);
    }
  }
  return out;
}

uint64_t ReadModel::lastSeq() const {
  std::lock_guard lock(mu_);
  return seq_;
}

void ReadModel::close() {
  {
    std::lock_guard lock(mu_);
    closed_ = true;
  }
  cv_.notify_all();
}

} // namespace hgj::pipeline
