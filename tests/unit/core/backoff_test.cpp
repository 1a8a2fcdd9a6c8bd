#include "core/backoff.h"

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
