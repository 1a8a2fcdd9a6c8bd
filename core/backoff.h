#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>

namespace hgj::core {

/// Reconnect and retry delays: exponential growth from `min` to `max`, with **full jitter**
/// (each delay is drawn uniformly from [0, ceiling]; AWS Architecture Blog, "Exponential Backoff
/// and Jitter"), so that many clients that lost the same server do not come back in step. The
/// delay of attempt n has the ceiling min(max, min * 2^n); `floor` (default min / 4, never 0 for
/// a non-zero min) keeps a reconnect loop from spinning when the draw is near zero.
/// Not thread-safe: one Backoff per loop.
class Backoff {
public:
  Backoff(std::chrono::milliseconds min, std::chrono::milliseconds max, uint64_t seed = 0)
      : min_(std::max<int64_t>(0, min.count())), max_(std::max<int64_t>(min_, max.count())),
        floor_(min_ > 0 ? std::max<int64_t>(1, min_ / 4) : 0),
        rng_(seed != 0 ? seed : std::random_device{}()) {}

  /// The delay before the next attempt; each call counts one more failure.
  std::chrono::milliseconds next() {
    int64_t ceiling = ceilingMs();
    if (attempt_ < 62) {
      ++attempt_;
    }
    std::uniform_int_distribution<int64_t> draw(floor_, std::max(floor_, ceiling));
    return std::chrono::milliseconds(draw(rng_));
  }
  /// After a success: the next failure starts from `min` again.
  void reset() { attempt_ = 0; }
  /// The upper bound of the next delay (for logs and health: "retrying within 8 s").
  int64_t ceilingMs() const {
    int64_t c = min_;
    for (int i = 0; i < attempt_ && c < max_; ++i) {
      c = c > max_ / 2 ? max_ : c * 2;
    }
    return std::min(std::max<int64_t>(c, min_), max_);
  }
  int attempts() const { return attempt_; }

private:
  int64_t min_;
  int64_t max_;
  int64_t floor_;
  int attempt_ = 0;
  std::mt19937_64 rng_;
};

} // namespace hgj::core
