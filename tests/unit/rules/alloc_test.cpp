#include <catch2/catch.hpp>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <new>
#include <sstream>

#include "core/sanitizers.h"
#include "tests/unit/rules/rules_rig.h"

using namespace std::chrono_literals;
using hgj::model::Value;
using hgj::rules::test::Rig;

// Counts heap allocations made while `g_counting` is set, to show that the engine's hot path
// allocates nothing in the common case.
namespace {
std::atomic<bool> g_counting{false};
std::atomic<uint64_t> g_allocs{0};
} // namespace

// AddressSanitizer brings its own operator new; replacing it there mixes allocators.
#if HGJ_ASAN || HGJ_TSAN
#define HGJ_COUNT_ALLOCS 0
#else
#define HGJ_COUNT_ALLOCS 1
void* operator new(std::size_t n) {
  if (g_counting.load(std::memory_order_relaxed)) {
    g_allocs.fetch_add(1, std::memory_order_relaxed);
  }
  if (void* p = std::malloc(n == 0 ? 1 : n)) {
    return p;
  }
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return operator new(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
#endif

TEST_CASE("engine: readings that raise nothing allocate nothing", "[rules][engine]") {
  Rig rig([] {
    std::ifstream in(std::string(HGJ_SOURCE_DIR) + "/conf/rules.yaml");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }());
  auto feed = [&](const std::string& dev, const std::string& point, Value v) {
    hgj::model::Reading r;
    r.device = rig.dev(dev);
    r.point = rig.pt(point);
    r.value = std::move(v);
    r.source_ms = rig.clock.wallMs();
    r.ingest_ms = r.source_ms;
    auto applied = rig.state->apply(r, rig.clock.steadyNow());
    g_counting = true;
    rig.engine->onReading(r, applied, *rig.state, rig.sink);
    g_counting = false;
  };
  rig.tick();
  for (int round = 0; round < 50; ++round) {
    rig.advance(100ms);
    for (int n = 1; n <= 8; ++n) {
      feed("P-B1-000" + std::to_string(n), "occupied", Value(((round + n) % 3) == 0));
    }
    feed("S01/P02", "temp_c", Value(30.0 + round % 7));
    feed("S01/P02", "current_a", Value(1.5));
    feed("S01/P02", "power_w", Value(350.0));
    feed("S01", "temp_c", Value(25.0));
    feed("EV-01", "state", Value(std::string(round % 2 ? "Charging" : "Finishing")));
    rig.tick();
  }
  CHECK(rig.sink.raised.empty());
  CHECK(rig.engine->stats().visits > 100);
  if (HGJ_COUNT_ALLOCS) {
    CHECK(g_allocs.load() == 0);
  }
}
