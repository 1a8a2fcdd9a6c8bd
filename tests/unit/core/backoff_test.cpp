#include "core/backoff.h"

#include <algorithm>
#include <array>

#include <catch2/catch.hpp>

using hgj::core::Backoff;
using std::chrono::milliseconds;

TEST_CASE("backoff: the ceiling doubles from min to max and a success starts over", "[core]") {
  Backoff b(milliseconds(500), milliseconds(30'000), 42);
  REQUIRE(b.ceilingMs() == 500);
  int64_t expected[] = {500, 1000, 2000, 4000, 8000, 16000, 30000, 30000};
  for (int64_t ceiling : expected) {
    REQUIRE(b.ceilingMs() == ceiling);
    auto d = b.next();
    REQUIRE(d.count() <= ceiling);
    REQUIRE(d.count() >= 125);  // the floor: min / 4
  }
  b.reset();
  REQUIRE(b.ceilingMs() == 500);
}

TEST_CASE("backoff: full jitter spreads the delays over the whole range", "[core]") {
  // Equal jitter would never draw below half the ceiling; full jitter must, often.
  Backoff b(milliseconds(1000), milliseconds(1000), 7);
  int low = 0;
  int high = 0;
  for (int i = 0; i < 1000; ++i) {
    auto d = b.next().count();
    REQUIRE(d >= 250);
    REQUIRE(d <= 1000);
    low += d < 500 ? 1 : 0;
    high += d >= 500 ? 1 : 0;
  }
  REQUIRE(low > 200);
  REQUIRE(high > 500);
}

TEST_CASE("backoff: many failures never overflow the ceiling", "[core]") {
  Backoff b(milliseconds(1), milliseconds(60'000), 1);
  for (int i = 0; i < 200; ++i) {
    REQUIRE(b.next().count() <= 60'000);
  }
  REQUIRE(b.ceilingMs() == 60'000);
}

TEST_CASE("backoff: with a seed, the delays are uniform over [floor, ceiling] and replayable",
          "[core]") {
  // A fixed ceiling of 1000 ms (floor 250 ms): 10,000 draws in ten equal bins. Uniform means
  // about 1,000 a bin; equal jitter would leave the bins below 500 ms empty.
  Backoff b(milliseconds(1000), milliseconds(1000), 20261206);
  constexpr int kDraws = 10'000;
  std::array<int, 10> bins{};
  double sum = 0;
  int64_t lo = 1'000'000;
  int64_t hi = 0;
  for (int i = 0; i < kDraws; ++i) {
    const int64_t d = b.next().count();
    REQUIRE(d >= 250);
    REQUIRE(d <= 1000);
    bins[static_cast<size_t>(std::min<int64_t>(9, (d - 250) * 10 / 751))]++;
    sum += static_cast<double>(d);
    lo = std::min(lo, d);
    hi = std::max(hi, d);
  }
  for (int count : bins) {
    CHECK(count > 850);
    CHECK(count < 1150);
  }
  CHECK(sum / kDraws == Approx(625.0).margin(10.0));
  CHECK(lo < 260);
  CHECK(hi > 990);

  // The same seed draws the same sequence (a test can pin a run); another seed does not.
  Backoff a1(milliseconds(100), milliseconds(10'000), 99);
  Backoff a2(milliseconds(100), milliseconds(10'000), 99);
  Backoff other(milliseconds(100), milliseconds(10'000), 100);
  bool differs = false;
  for (int i = 0; i < 20; ++i) {
    const auto d1 = a1.next();
    CHECK(d1 == a2.next());
    differs = differs || d1 != other.next();
  }
  CHECK(differs);
}

TEST_CASE("backoff: each attempt's delays fill its own range, up to the doubled ceiling",
          "[core]") {
  // Attempt n draws from [min/4, min * 2^n]: over many runs the largest delay of attempt 3
  // comes near 8 x min and none exceeds it.
  int64_t largest = 0;
  for (uint64_t seed = 1; seed <= 2000; ++seed) {
    Backoff b(milliseconds(100), milliseconds(60'000), seed);
    for (int i = 0; i < 3; ++i) {
      b.next();
    }
    const int64_t d = b.next().count();
    REQUIRE(d >= 25);
    REQUIRE(d <= 800);
    largest = std::max(largest, d);
  }
  CHECK(largest > 780);
}
