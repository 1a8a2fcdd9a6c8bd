#include <thread>

#include <catch2/catch.hpp>

#include "core/bounded_queue.h"
#include "core/clock.h"
#include "core/config_node.h"
#include "core/metrics.h"
#include "core/time_format.h"

using namespace std::chrono_literals;

TEST_CASE("bounded queue: a full queue refuses without blocking and pops in order", "[core]") {
  hgj::core::BoundedQueue<int> q(2);
  CHECK(q.tryPush(1));
  CHECK(q.tryPush(2));
  CHECK_FALSE(q.tryPush(3));
  std::vector<int> out;
  CHECK(q.popAll(out, 10, 0ms) == 2);
  CHECK(out == std::vector<int>{1, 2});
}

TEST_CASE("bounded queue: a blocked producer resumes when the consumer makes room", "[core]") {
  hgj::core::BoundedQueue<int> q(1);
  REQUIRE(q.tryPush(1));
  std::atomic<bool> pushed{false};
  std::thread producer([&] {
    q.push(2);
    pushed = true;
  });
  std::vector<int> out;
  REQUIRE(q.popAll(out, 1, 1s) == 1);
  producer.join();
  CHECK(pushed);
  CHECK(q.size() == 1);
}

TEST_CASE("bounded queue: close wakes a blocked producer and fails it", "[core]") {
  hgj::core::BoundedQueue<int> q(1);
  REQUIRE(q.tryPush(1));
  std::atomic<int> result{-1};
  std::thread producer([&] { result = q.push(2) ? 1 : 0; });
  q.close();
  producer.join();
  CHECK(result == 0);
}

TEST_CASE("durations: units and plain seconds", "[core]") {
  using hgj::core::parseDuration;
  CHECK(parseDuration("200ms")->count() == 200);
  CHECK(parseDuration("10s")->count() == 10'000);
  CHECK(parseDuration("15m")->count() == 900'000);
  CHECK(parseDuration("8h")->count() == 28'800'000);
  CHECK(parseDuration("7d")->count() == 604'800'000);
  CHECK(parseDuration("30")->count() == 30'000);
  CHECK_FALSE(parseDuration("soon"));
  CHECK_FALSE(parseDuration("10 s"));
  CHECK_FALSE(parseDuration(""));
}

TEST_CASE("rfc3339: formats and parses UTC and offsets", "[core]") {
  CHECK(hgj::core::rfc3339(1658136855775) == "2022-07-18T09:34:15.775Z");
  CHECK(*hgj::core::parseRfc3339("2022-07-18T09:34:15.775Z") == 1658136855775);
  CHECK(*hgj::core::parseRfc3339("2022-07-18T17:34:15.775123+08:00") == 1658136855775);
  CHECK_FALSE(hgj::core::parseRfc3339("2022-07-18 nope"));
  CHECK_FALSE(hgj::core::parseRfc3339("2022-13-18T09:34:15Z"));
}

TEST_CASE("metrics: counters with labels render in Prometheus text format", "[core]") {
  hgj::core::MetricsRegistry m;
  m.counter("hgj_x_total", "things", {{"reason", "a\"b"}}).inc(3);
  m.gauge("hgj_g", "a gauge").set(1.5);
  m.histogram("hgj_h_seconds", "latency", {0.1, 1}).observe(0.5);
  std::string text = m.render();
  CHECK(text.find("# TYPE hgj_x_total counter\nhgj_x_total{reason=\"a\\\"b\"} 3\n") !=
        std::string::npos);
  CHECK(text.find("hgj_g 1.5\n") != std::string::npos);
  CHECK(text.find("hgj_h_seconds_bucket{le=\"0.1\"} 0\n") != std::string::npos);
  CHECK(text.find("hgj_h_seconds_bucket{le=\"1\"} 1\n") != std::string::npos);
  CHECK(text.find("hgj_h_seconds_count 1\n") != std::string::npos);
  CHECK(m.value("hgj_x_total", {{"reason", "a\"b"}}) == 3);
}

TEST_CASE("manual clock: steady and wall time move together unless the wall clock jumps",
          "[core]") {
  hgj::core::ManualClock c(1000);
  auto s0 = c.steadyNow();
  c.advance(5s);
  CHECK(c.wallMs() == 6000);
  CHECK(c.steadyNow() - s0 == 5s);
  c.setWallMs(0);
  CHECK(c.steadyNow() - s0 == 5s);
}

TEST_CASE("config nodes: unknown keys get a did-you-mean", "[core]") {
  hgj::core::Diagnostics diag;
  auto n = hgj::core::loadYamlText("mqtt:\n  urll: x\n", "t.yaml", diag);
  REQUIRE(n);
  n->child("mqtt").allowKeys({"url", "client_id"});
  REQUIRE(diag.problems().size() == 1);
  CHECK(diag.format() == "t.yaml:2: mqtt.urll: unknown key (did you mean \"url\"?)\n");
}
