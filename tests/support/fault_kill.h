#pragma once

#include <chrono>
#include <cstdint>
#include <random>

#include "tests/support/test_support.h"

namespace hgj::test {

/// Random moments for `kill -9`: delays drawn uniformly from [min, max] by a seeded generator.
/// The seed is the test's to print (INFO), so that a failing sequence of kills can be replayed.
class KillScheduler {
public:
  KillScheduler(uint64_t seed, std::chrono::milliseconds min, std::chrono::milliseconds max)
      : rng_(seed), dist_(min.count(), max.count()) {}
  /// How long to let the process run before the next kill.
  std::chrono::milliseconds next() { return std::chrono::milliseconds(dist_(rng_)); }
  /// A seed from the clock, for tests that want different moments on every run.
  static uint64_t freshSeed();
  /// SIGKILL, then reaps the process; returns the moment of the kill.
  static std::chrono::steady_clock::time_point kill(Process& p);

private:
  std::mt19937_64 rng_;
  std::uniform_int_distribution<int64_t> dist_;
};

} // namespace hgj::test
