#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "core/bounded_queue.h"
#include "core/clock.h"
#include "core/config_node.h"
#include "core/enum_names.h"
#include "core/heartbeat.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/sanitizers.h"
#include "core/service_notify.h"
#include "core/time_format.h"
#include "tests/support/test_support.h"

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

TEST_CASE("config node: a secret comes inline or from a file next to the config, never both",
          "[core][config]") {
  hgj::test::TempDir tmp;
  const std::string dir = tmp.path();
  {
    std::ofstream f(dir + "/pw");
    f << "s3cret-value\n";
  }
  std::ofstream(dir + "/empty").close();
  std::string yaml = "a: {password: inline-pw}\n"
                     "b: {password_file: pw}\n"
                     "c: {password: x, password_file: pw}\n"
                     "d: {password_file: missing}\n"
                     "e: {password_file: empty}\n";
  {
    std::ofstream f(dir + "/gateway.yaml");
    f << yaml;
  }
  hgj::core::Diagnostics diag;
  auto root = hgj::core::loadYamlFile(dir + "/gateway.yaml", diag);
  REQUIRE(root);
  bool from_file = true;
  CHECK(root->child("a").secret("password", &from_file) == "inline-pw");
  CHECK_FALSE(from_file);
  CHECK(root->child("b").secret("password", &from_file) == "s3cret-value");
  CHECK(from_file);
  CHECK(diag.ok());
  root->child("c").secret("password");
  root->child("d").secret("password");
  root->child("e").secret("password");
  REQUIRE(diag.problems().size() == 3);
  std::string all = diag.format();
  CHECK(all.find("gateway.yaml:3: c.password_file: set either password or password_file") !=
        std::string::npos);
  CHECK(all.find("gateway.yaml:4: d.password_file: cannot read") != std::string::npos);
  CHECK(all.find("gateway.yaml:5: e.password_file:") != std::string::npos);
  CHECK(all.find("s3cret") == std::string::npos);
}

TEST_CASE("bounded queue: an urgent item passes a full queue without blocking", "[core]") {
  hgj::core::BoundedQueue<int> q(2);
  REQUIRE(q.tryPush(1));
  REQUIRE(q.tryPush(2));
  REQUIRE_FALSE(q.tryPush(3));
  REQUIRE(q.pushUrgent(9));
  std::vector<int> out;
  REQUIRE(q.popAll(out, 10, 0ms) == 3);
  CHECK(out == std::vector<int>{9, 1, 2});
  q.close();
  CHECK_FALSE(q.pushUrgent(10));
}

TEST_CASE("bounded queue: a quiet item is not lost: the consumer's next pop takes it", "[core]") {
  hgj::core::BoundedQueue<int> q(2);
  // Into a queue nobody waits on: the next pop finds it.
  REQUIRE(q.pushQuietFor(1, 0ms));
  std::vector<int> out;
  REQUIRE(q.popAll(out, 10, 0ms) == 1);
  CHECK(out == std::vector<int>{1});
  // Behind a sleeping consumer: it is taken when the consumer's wait ends (its tick), or
  // together with the next ordinary item, which does wake it.
  out.clear();
  std::thread consumer([&] {
    for (int i = 0; i < 200 && out.size() < 2; ++i) {  // at most 10 s
      q.popAll(out, 10, 50ms);
    }
  });
  REQUIRE(q.pushQuietFor(2, 0ms));
  REQUIRE(q.push(3));
  consumer.join();
  CHECK(out == std::vector<int>{2, 3});
  // Capacity and close apply as to any push.
  REQUIRE(q.tryPush(4));
  REQUIRE(q.tryPush(5));
  CHECK_FALSE(q.pushQuietFor(6, 0ms));
  q.close();
  CHECK_FALSE(q.pushQuietFor(7, 0ms));
}

TEST_CASE("log: device-chosen text cannot forge log lines or smuggle control bytes", "[core]") {
  using hgj::core::printable;
  CHECK(printable("compound/parking/P-B1-0001/state") == "compound/parking/P-B1-0001/state");
  CHECK(printable("a\nFAKE critical line\r") == "a\\nFAKE critical line\\r");
  CHECK(printable(std::string("x\0y\x1b[31m", 8)) == "x\\x00y\\x1b[31m");
  CHECK(printable("back\\slash") == "back\\\\slash");
  CHECK(printable("1号车棚 75°C") == "1号车棚 75°C");
  CHECK(printable("\xff\xfe") == "\\xff\\xfe");
  CHECK(printable("\xe4\xb8") == "\\xe4\\xb8");  // a cut UTF-8 sequence
  CHECK(printable(std::string(300, 'a'), 10) == "aaaaaaaaaa...");
}

TEST_CASE("liveness: a thread that stops beating is named, a retired one is not", "[core]") {
  hgj::core::Liveness live;
  auto& a = live.add("pipeline");
  auto& b = live.add("storage writer");
  a.beat();
  b.beat();
  CHECK_FALSE(live.stalled(10'000));
  CHECK(live.stalled(-1).has_value());
  live.retire(a);
  live.retire(b);
  CHECK_FALSE(live.stalled(-1));
}

TEST_CASE("liveness: a thread allowed a longer step is not stalled within it", "[core]") {
  hgj::core::Liveness live;
  live.add("storage writer", 3'600'000);
  // Every heartbeat is "silent" longer than -1 ms; the writer's own allowance is one hour.
  CHECK_FALSE(live.stalled(-1));
  live.add("pipeline");
  auto stalled = live.stalled(-1);
  REQUIRE(stalled.has_value());
  CHECK(stalled->rfind("pipeline", 0) == 0);
}

namespace {

/// A datagram socket standing in for systemd's notify socket; `name` starting with '@' is bound
/// in the abstract namespace.
struct NotifyReceiver {
  int fd = -1;
  explicit NotifyReceiver(const std::string& name) {
    fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, name.data(), name.size());
    if (name[0] == '@') {
      addr.sun_path[0] = '\0';
    }
    auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size() +
                                      (name[0] == '/' ? 1 : 0));
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) == 0);
  }
  ~NotifyReceiver() { ::close(fd); }
  std::string receive() {
    char buf[256];
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    return n < 0 ? std::string("<nothing>") : std::string(buf, static_cast<size_t>(n));
  }
};

} // namespace

TEST_CASE("service notify: datagrams reach a path or an abstract NOTIFY_SOCKET", "[core]") {
  using hgj::core::notifyServiceManager;
  ::unsetenv("NOTIFY_SOCKET");
  CHECK_FALSE(notifyServiceManager("READY=1"));  // not under a service manager: no error either
  hgj::test::TempDir dir;
  const std::string path = dir.file("notify.sock");
  {
    NotifyReceiver rx(path);
    ::setenv("NOTIFY_SOCKET", path.c_str(), 1);
    CHECK(notifyServiceManager("READY=1"));
    CHECK(rx.receive() == "READY=1");
    CHECK(notifyServiceManager("STOPPING=1"));
    CHECK(rx.receive() == "STOPPING=1");
  }
  const std::string abstract = "@hgj-notify-test-" + std::to_string(::getpid());
  {
    NotifyReceiver rx(abstract);
    ::setenv("NOTIFY_SOCKET", abstract.c_str(), 1);
    CHECK(notifyServiceManager("WATCHDOG=1"));
    CHECK(rx.receive() == "WATCHDOG=1");
  }
  ::setenv("NOTIFY_SOCKET", dir.file("nobody-listens.sock").c_str(), 1);
  CHECK_FALSE(notifyServiceManager("READY=1"));
  ::setenv("NOTIFY_SOCKET", "vsock:2:1234", 1);
  CHECK_FALSE(notifyServiceManager("READY=1"));
  ::unsetenv("NOTIFY_SOCKET");
}

TEST_CASE("service notify: the watchdog interval is read as sd_watchdog_enabled reads it", "[core]") {
  using hgj::core::serviceWatchdogInterval;
  ::unsetenv("WATCHDOG_PID");
  ::unsetenv("WATCHDOG_USEC");
  CHECK_FALSE(serviceWatchdogInterval());
  ::setenv("WATCHDOG_USEC", "20000000", 1);
  REQUIRE(serviceWatchdogInterval());
  CHECK(serviceWatchdogInterval()->count() == 20'000'000);
  ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
  CHECK(serviceWatchdogInterval());
  ::setenv("WATCHDOG_PID", std::to_string(::getpid() + 1).c_str(), 1);
  CHECK_FALSE(serviceWatchdogInterval());  // meant for another process
  ::unsetenv("WATCHDOG_PID");
  for (const char* bad : {"0", "", "12x", "-5"}) {
    ::setenv("WATCHDOG_USEC", bad, 1);
    CHECK_FALSE(serviceWatchdogInterval());
  }
  ::unsetenv("WATCHDOG_USEC");
}

#if HGJ_ASAN || HGJ_TSAN
#define HGJ_OWN_ALLOCATOR 1  // the sanitizers' allocators keep their own pages: nothing to trim
#endif

TEST_CASE("heap trimmer: pages freed after a burst go back to the kernel, a steady heap is left "
          "alone",
          "[core]") {
  hgj::core::HeapTrimmer trimmer(1024.0 * 1024, 1000);
  CHECK(trimmer.maybeTrim(0) == 0);  // the first call takes the baseline
  // A burst of 32 MiB in 1,000-byte blocks; every 16th stays, so the heap's top cannot shrink
  // and only a trim of the free runs between them gives pages back.
  std::vector<char*> blocks;
  for (int i = 0; i < 32 * 1024; ++i) {
    blocks.push_back(new char[1000]);
    std::memset(blocks.back(), 1, 1000);
  }
  std::vector<char*> kept;
  for (size_t i = 0; i < blocks.size(); ++i) {
    if (i % 16 == 0) {
      kept.push_back(blocks[i]);
    } else {
      delete[] blocks[i];
    }
  }
  const double before = hgj::core::processResidentBytes();
  CHECK(trimmer.maybeTrim(500) == 0);  // within the minimum interval
  CHECK(trimmer.trims() == 0);
  const double released = trimmer.maybeTrim(1000);
  CHECK(trimmer.trims() == 1);
#ifndef HGJ_OWN_ALLOCATOR
  CHECK(released > 8.0 * 1024 * 1024);
  CHECK(hgj::core::processResidentBytes() < before - 8.0 * 1024 * 1024);
#else
  (void)released;
  (void)before;
#endif
  // Nothing grew since: the next calls do not trim.
  CHECK(trimmer.maybeTrim(5000) == 0);
  CHECK(trimmer.maybeTrim(10000) == 0);
  CHECK(trimmer.trims() == 1);
  for (char* p : kept) {
    delete[] p;
  }
}

TEST_CASE("enum names: one table spells a value and parses it back, with a fallback outside it",
          "[core]") {
  enum class Colour { Red, Green, Blue };
  constexpr hgj::core::EnumNames<Colour, 2> kNames{{{Colour::Red, "red"}, {Colour::Green, "green"}}};
  static_assert(std::string_view(kNames.name(Colour::Green, "?")) == "green");
  CHECK(std::string(kNames.name(Colour::Red, "?")) == "red");
  CHECK(std::string(kNames.name(Colour::Blue, "?")) == "?");
  CHECK(kNames.parse("green") == Colour::Green);
  CHECK_FALSE(kNames.parse("Green").has_value());  // exact spelling only
  CHECK_FALSE(kNames.parse("").has_value());
}
