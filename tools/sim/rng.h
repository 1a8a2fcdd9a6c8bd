#pragma once

#include <cmath>
#include <cstdint>

namespace hgj::sim {

/// A small deterministic generator (splitmix64): the same seed gives the same run on every
/// platform and standard library, which std:: distributions do not promise. Not thread-safe.
class Rng {
public:
  explicit Rng(uint64_t seed) : state_(seed ^ 0x9e3779b97f4a7c15ULL) {}

  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  /// Uniform in [0, 1).
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  /// True with probability p.
  bool chance(double p) { return uniform() < p; }
  /// Exponentially distributed with the given mean.
  double exponential(double mean) { return -mean * std::log(1.0 - uniform()); }
  /// Roughly normal (sum of uniforms), cheap and bounded to mean +- 3 sd.
  double normal(double mean, double sd) {
    double s = 0;
    for (int i = 0; i < 6; ++i) {
      s += uniform();
    }
    return mean + sd * (s - 3.0) * std::sqrt(2.0);
  }

private:
  uint64_t state_;
};

/// Probability that an event with `per_ms` rate happens within `dt_ms`.
inline double probabilityWithin(double per_ms, double dt_ms) {
  return 1.0 - std::exp(-per_ms * dt_ms);
}

} // namespace hgj::sim
