#include "gateway/uplink/replay_pacer.h"

#include <algorithm>
#include <cmath>

namespace hgj::uplink {

namespace {

using std::chrono::milliseconds;

// TCP's smoothing gain for the round trip (RFC 6298): one slow ack does not halve the rate.
constexpr double kRttGain = 0.125;
// Acks further apart than this (an idle link) do not count as a second of fast acking.
constexpr double kMaxIncreaseStepS = 1.0;
// The rate is cut at most once per smoothed round trip, and at most once per this.
constexpr milliseconds kMinCutInterval(1000);

} // namespace

ReplayPacer::ReplayPacer(const ReplaySettings& settings) : s_(settings) {
  reset(core::SteadyTime{});
}

double ReplayPacer::burst() const {
  // A tenth of a second's worth: live alerts go out at once, a replay is smooth.
  return std::max(1.0, rate_ / 10.0);
}

void ReplayPacer::reset(core::SteadyTime now) {
  if (s_.adaptive && s_.max_rate > 0) {
    rate_ = std::clamp(s_.start_rate, std::min(s_.min_rate, s_.max_rate), s_.max_rate);
  } else {
    rate_ = s_.max_rate;
  }
  tokens_ = burst();
  tokens_at_ = now;
  srtt_ms_ = 0;
  last_cut_ = now;
  last_ack_ = now;
}

void ReplayPacer::refill(core::SteadyTime now) {
  if (now <= tokens_at_) {
    return;
  }
  const double dt = std::chrono::duration<double>(now - tokens_at_).count();
  tokens_ = std::min(burst(), tokens_ + dt * rate_);
  tokens_at_ = now;
}

bool ReplayPacer::tryTake(core::SteadyTime now) {
  if (unlimited()) {
    return true;
  }
  refill(now);
  if (tokens_ < 1) {
    return false;
  }
  tokens_ -= 1;
  return true;
}

milliseconds ReplayPacer::untilNext(core::SteadyTime now) const {
  if (unlimited() || rate_ <= 0) {
    return milliseconds(0);
  }
  double tokens = tokens_;
  if (now > tokens_at_) {
    tokens = std::min(burst(), tokens + std::chrono::duration<double>(now - tokens_at_).count() *
                                            rate_);
  }
  if (tokens >= 1) {
    return milliseconds(0);
  }
  return milliseconds(static_cast<int64_t>(std::ceil((1 - tokens) * 1000.0 / rate_)));
}

void ReplayPacer::onAck(milliseconds rtt, core::SteadyTime now) {
  const double sample = static_cast<double>(std::max<int64_t>(0, rtt.count()));
  srtt_ms_ = srtt_ms_ <= 0 ? sample : (1 - kRttGain) * srtt_ms_ + kRttGain * sample;
  const double since_ack = std::chrono::duration<double>(now - last_ack_).count();
  last_ack_ = now;
  if (!s_.adaptive || unlimited()) {
    return;
  }
  refill(now);  // tokens earned at the old rate stay earned
  if (srtt_ms_ > static_cast<double>(s_.slow_ack.count())) {
    const auto interval = std::max(kMinCutInterval, milliseconds(static_cast<int64_t>(srtt_ms_)));
    if (now - last_cut_ >= interval) {
      rate_ = std::max(std::min(s_.min_rate, s_.max_rate), rate_ / 2);
      tokens_ = std::min(tokens_, burst());
      last_cut_ = now;
      backoffs_ += 1;
    }
    return;
  }
  rate_ = std::min(s_.max_rate, rate_ + s_.increase * std::clamp(since_ack, 0.0,
                                                                   kMaxIncreaseStepS));
}

} // namespace hgj::uplink
