#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>
#include <vector>

namespace hgj::core {

/// A bounded multi-producer queue. Producers either block while it is full (backpressure: the
/// MQTT callback blocks so that the broker keeps the message until there is room) or give up
/// after a deadline. The consumer takes everything queued in one call, so the lock is taken once
/// per batch, not once per item.
template <typename T> class BoundedQueue {
public:
  explicit BoundedQueue(size_t capacity) : capacity_(capacity) {}

  /// Blocks while full. Returns false only when the queue was closed.
  bool push(T&& item) {
    std::unique_lock lock(mu_);
    if (!closed_ && items_.size() >= capacity_) {
      ++waiting_producers_;
      not_full_.wait(lock, [&] { return closed_ || items_.size() < capacity_; });
      --waiting_producers_;
    }
    if (closed_) {
      return false;
    }
    items_.push_back(std::move(item));
    wakeConsumer(lock);
    return true;
  }

  /// Waits at most `timeout` for room. Returns false when full or closed.
  bool pushFor(T&& item, std::chrono::milliseconds timeout) {
    return pushWithin(std::move(item), timeout, true);
  }

  /// Like pushFor, but a sleeping consumer is not woken: for items the consumer collects on its
  /// own tick anyway (readings waiting for the next commit), so that each hand-over does not
  /// cost a wake-up. A consumer already awake still sees the item in its next popAll.
  bool pushQuietFor(T&& item, std::chrono::milliseconds timeout) {
    return pushWithin(std::move(item), timeout, false);
  }

  /// Never blocks; false when full or closed.
  bool tryPush(T&& item) { return pushFor(std::move(item), std::chrono::milliseconds(0)); }

  /// Never blocks and ignores the capacity: for rare items whose number is bounded elsewhere
  /// (a write's outcome, one per pending write), which must not wait behind a full queue. They
  /// go to the front, so the consumer sees them before the backlog. False only when closed.
  bool pushUrgent(T&& item) {
    std::unique_lock lock(mu_);
    if (closed_) {
      return false;
    }
    items_.push_front(std::move(item));
    wakeConsumer(lock);
    return true;
  }

  /// Moves up to `max` items into `out` (appending). Waits at most `timeout` for the first one.
  /// Returns the number taken; 0 on timeout or when closed and drained.
  size_t popAll(std::vector<T>& out, size_t max, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    if (!closed_ && items_.empty()) {
      ++waiting_consumers_;
      not_empty_.wait_for(lock, timeout, [&] { return closed_ || !items_.empty(); });
      --waiting_consumers_;
    }
    if (items_.empty()) {
      return 0;
    }
    size_t n = 0;
    while (!items_.empty() && n < max) {
      out.push_back(std::move(items_.front()));
      items_.pop_front();
      ++n;
    }
    bool wake = waiting_producers_ > 0;
    lock.unlock();
    if (n > 0 && wake) {
      not_full_.notify_all();
    }
    return n;
  }

  /// Waits at most `timeout` until an item is queued (or the queue is closed), taking nothing:
  /// for a consumer that takes its items under a lock of its own. True when items are queued.
  bool waitForItems(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    if (!closed_ && items_.empty()) {
      ++waiting_consumers_;
      not_empty_.wait_for(lock, timeout, [&] { return closed_ || !items_.empty(); });
      --waiting_consumers_;
    }
    return !items_.empty();
  }

  std::optional<T> pop(std::chrono::milliseconds timeout) {
    std::vector<T> one;
    if (popAll(one, 1, timeout) == 0) {
      return std::nullopt;
    }
    return std::move(one.front());
  }

  /// Wakes every waiter; pushes fail from now on, pops drain what is left.
  void close() {
    {
      std::lock_guard lock(mu_);
      closed_ = true;
    }
    not_full_.notify_all();
    not_empty_.notify_all();
  }

  size_t size() const {
    std::lock_guard lock(mu_);
    return items_.size();
  }
  size_t capacity() const { return capacity_; }
  bool closed() const {
    std::lock_guard lock(mu_);
    return closed_;
  }

private:
  bool pushWithin(T&& item, std::chrono::milliseconds timeout, bool wake) {
    std::unique_lock lock(mu_);
    if (!closed_ && items_.size() >= capacity_) {
      ++waiting_producers_;
      not_full_.wait_for(lock, timeout, [&] { return closed_ || items_.size() < capacity_; });
      --waiting_producers_;
    }
    if (closed_ || items_.size() >= capacity_) {
      return false;
    }
    items_.push_back(std::move(item));
    if (wake) {
      wakeConsumer(lock);
    }
    return true;
  }

  // Only a sleeping consumer needs the (system-call) wake-up; while it is busy draining, producers
  // just append. This halves the cost of a hand-over under load.
  void wakeConsumer(std::unique_lock<std::mutex>& lock) {
    bool wake = waiting_consumers_ > 0;
    lock.unlock();
    if (wake) {
      not_empty_.notify_one();
    }
  }

  const size_t capacity_;
  mutable std::mutex mu_;
  std::condition_variable not_full_;
  std::condition_variable not_empty_;
  std::deque<T> items_;  // guarded by mu_
  bool closed_ = false;  // guarded by mu_
  int waiting_consumers_ = 0;  // guarded by mu_
  int waiting_producers_ = 0;  // guarded by mu_
};

} // namespace hgj::core
