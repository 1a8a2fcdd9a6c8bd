#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>

namespace hgj::core {

/// A critical thread's sign of life, read by the systemd watchdog feed in main: the thread
/// calls beat() every time round its loop, including after every bounded wait (a pop with a
/// timeout, a poll, a timed push while the queue is full), so a thread that is busy, idle or held
/// back by backpressure keeps beating and only a thread stuck for good (a deadlock, an endless
/// loop, a call that never returns) stops. Loops therefore never wait longer than a fraction of
/// the watchdog interval (WatchdogSec=) in one call. beat() is one relaxed store: cheap on the
/// hot path.
class Heartbeat {
public:
  explicit Heartbeat(std::string name) : name_(std::move(name)) { beat(); }
  void beat() { last_ms_.store(nowMs(), std::memory_order_relaxed); }
  /// Milliseconds since the last beat.
  int64_t silentMs() const { return nowMs() - last_ms_.load(std::memory_order_relaxed); }
  const std::string& name() const { return name_; }

  static int64_t nowMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }

private:
  std::string name_;
  std::atomic<int64_t> last_ms_{0};
};

/// The heartbeats of a process's critical threads. Components add theirs when they start
/// their thread and keep the reference (the registry owns them and never removes one, so the
/// reference stays valid); retire() marks a thread that ended on purpose (stop()) so it is no
/// longer expected to beat. Thread-safe.
class Liveness {
public:
  /// `at_least_ms`: this thread counts as stalled only after at least that long, whatever the
  /// caller of stalled() allows (a thread whose one step may rightly take longer than the
  /// watchdog interval, such as a commit behind a slow disk).
  Heartbeat& add(std::string name, int64_t at_least_ms = 0) {
    std::lock_guard lock(mu_);
    beats_.emplace_back(std::move(name), at_least_ms);
    return beats_.back().beat;
  }
  void retire(const Heartbeat& hb) {
    std::lock_guard lock(mu_);
    for (auto& e : beats_) {
      if (&e.beat == &hb) {
        e.retired = true;
      }
    }
  }
  /// The first live heartbeat silent for longer than `max_silence_ms`, if any.
  std::optional<std::string> stalled(int64_t max_silence_ms) const {
    std::lock_guard lock(mu_);
    for (const auto& e : beats_) {
      const int64_t limit =
          e.at_least_ms > 0 ? std::max(max_silence_ms, e.at_least_ms) : max_silence_ms;
      if (!e.retired && e.beat.silentMs() > limit) {
        return e.beat.name() + " silent for " + std::to_string(e.beat.silentMs()) + " ms";
      }
    }
    return std::nullopt;
  }

private:
  struct Entry {
    Entry(std::string name, int64_t at_least) : beat(std::move(name)), at_least_ms(at_least) {}
    Heartbeat beat;
    int64_t at_least_ms;
    bool retired = false;
  };
  mutable std::mutex mu_;
  std::deque<Entry> beats_;  // guarded by mu_; a deque keeps references stable
};

} // namespace hgj::core
