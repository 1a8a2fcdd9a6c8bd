#pragma once

#include <chrono>

#include "core/clock.h"

namespace hgj::uplink {

/// `uplink.replay`: how fast one gateway may send upstream, and how it backs off when the
/// platform's broker is slow. A district replays 143 outboxes into one broker after an outage:
/// each gateway's share is bounded by `max_rate`, and shrinks when PUBACKs come back slowly.
struct ReplaySettings {
  double max_rate = 100;     ///< messages/s at most (0 = unlimited: no pacing at all)
  double min_rate = 5;       ///< the rate never backs off below this
  double start_rate = 20;    ///< the rate right after a (re)connect, before any PUBACK was seen
  double increase = 20;      ///< messages/s added per second while PUBACKs are fast
  std::chrono::milliseconds slow_ack{500};  ///< a smoothed PUBACK round trip above this is slow
  bool adaptive = true;      ///< false: a fixed rate of max_rate
};

/// A token bucket whose rate follows AIMD on the PUBACK round trip (additive increase while
/// acks are fast, halving at most once per round trip while they are slow), like TCP's
/// congestion control but on the application's acknowledgements. Pure: every call takes the
/// time, so it is tested with a ManualClock's times. Uplink thread only; not thread-safe.
class ReplayPacer {
public:
  explicit ReplayPacer(const ReplaySettings& settings);

  /// A new connection: start again at start_rate (adaptive) or max_rate, with a burst's worth
  /// of tokens, and forget the round trips of the old one.
  void reset(core::SteadyTime now);
  /// Takes one token (one publish) if there is one.
  bool tryTake(core::SteadyTime now);
  /// How long until the next token (0 when one is there, or when unlimited).
  std::chrono::milliseconds untilNext(core::SteadyTime now) const;
  /// One PUBACK arrived `rtt` after its publish.
  void onAck(std::chrono::milliseconds rtt, core::SteadyTime now);

  bool unlimited() const { return s_.max_rate <= 0; }
  double rate() const { return rate_; }
  /// Smoothed round trip (ms), 0 before the first ack of this connection.
  double smoothedRttMs() const { return srtt_ms_; }
  /// Times the rate was cut since construction.
  uint64_t backoffs() const { return backoffs_; }

private:
  double burst() const;
  void refill(core::SteadyTime now);

  const ReplaySettings s_;
  double rate_ = 0;
  double tokens_ = 0;
  core::SteadyTime tokens_at_{};
  double srtt_ms_ = 0;
  core::SteadyTime last_cut_{};
  core::SteadyTime last_ack_{};
  uint64_t backoffs_ = 0;
};

} // namespace hgj::uplink
