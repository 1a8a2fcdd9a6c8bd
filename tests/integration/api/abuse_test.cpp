// The API server under hostile clients (docs/reliability.md rows 19 and 24), in process: tokens
// on loopback, bodies over the limit on any path, floods of idle and slow connections, deadlines
// of every phase, connection and queue limits, malformed requests. The same attacks against the
// daemon itself are in tests/faults/http.

#include <catch2/catch.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <numeric>

#include "tests/integration/api/harness.h"
#include "tests/integration/api/hostile_http.h"

using namespace hgj;
using namespace hgj::test::hostile;
using api::testing::Harness;
using api::testing::kOperator;
using api::testing::kViewer;
using api::testing::tokenConfig;
using hgj::test::waitFor;
using nlohmann::json;

namespace {

std::string postRequest(const std::string& path, const std::string& body,
                        const std::string& token = {}) {
  return "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" +
         (token.empty() ? std::string() : "Authorization: Bearer " + token + "\r\n") +
         "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
}

std::string bodyOf(const std::string& response) {
  size_t end = response.find("\r\n\r\n");
  return end == std::string::npos ? std::string() : response.substr(end + 4);
}

// Each test here opens up to two thousand descriptors (both ends of every connection).
void raiseFileLimit() {
  rlimit lim{};
  REQUIRE(getrlimit(RLIMIT_NOFILE, &lim) == 0);
  lim.rlim_cur = std::min<rlim_t>(lim.rlim_max, 8192);
  setrlimit(RLIMIT_NOFILE, &lim);
  REQUIRE(lim.rlim_cur >= 4096);
}

struct Distribution {
  double p50 = 0, p90 = 0, max = 0;
  size_t under_100ms = 0, count = 0;
};

Distribution distribution(std::vector<double> ms) {
  Distribution d;
  std::sort(ms.begin(), ms.end());
  d.count = ms.size();
  if (ms.empty()) {
    return d;
  }
  d.p50 = ms[ms.size() / 2];
  d.p90 = ms[ms.size() * 9 / 10];
  d.max = ms.back();
  d.under_100ms = static_cast<size_t>(std::count_if(ms.begin(), ms.end(), [](double v) {
    return v < 100.0;
  }));
  return d;
}

} // namespace

TEST_CASE("api abuse: without tokens on loopback, local clients read but cannot act",
          "[api][security]") {
  Harness h{api::HttpConfig{}};
  int port = h.server->port();
  CHECK(timedRequest(port, getRequest("/api/v1/parking")).status == 200);
  CHECK(timedRequest(port, getRequest("/api/v1/alerts")).status == 200);
  auto ack = timedRequest(port, postRequest("/api/v1/alerts/1/ack", R"({"by":"x"})"));
  CHECK(ack.status == 403);
  CHECK(bodyOf(ack.response).find("no http.operator_token is configured") != std::string::npos);
  auto write = timedRequest(port, postRequest("/api/v1/devices/S01/P02/points/relay",
                                              R"({"value":true,"override_safety":true})"));
  CHECK(write.status == 403);
  // A token the server does not know changes nothing.
  CHECK(timedRequest(port, postRequest("/api/v1/alerts/1/ack", R"({"by":"x"})", kOperator))
            .status == 403);
  CHECK(h.sink.received().empty());
  CHECK(h.metrics.value("hgj_http_rejected_total", {{"reason", "forbidden"}}) == 3);
}

TEST_CASE("api abuse: with an operator token on loopback, acting needs it", "[api][security]") {
  Harness h; // loopback, operator token only: reads open
  int port = h.server->port();
  CHECK(timedRequest(port, getRequest("/api/v1/devices")).status == 200);
  auto anon = timedRequest(port, postRequest("/api/v1/alerts/1/ack", R"({"by":"x"})"));
  CHECK(anon.status == 401);
  CHECK(anon.response.find("WWW-Authenticate: Bearer") != std::string::npos);
  CHECK(timedRequest(port, postRequest("/api/v1/devices/S01/P02/points/relay",
                                       R"({"value":false})", "wrong-token-0123456789"))
            .status == 401);
  CHECK(timedRequest(port, postRequest("/api/v1/devices/S01/P02/points/relay",
                                       R"({"value":false})", kOperator))
            .status == 200);
  REQUIRE(h.sink.received().size() == 1);
}

TEST_CASE("api abuse: bodies over the limit get 413 on any path and method, before the access "
          "rules, chunked or not",
          "[api][security]") {
  Harness h(tokenConfig()); // no token is sent: the size limit comes first
  int port = h.server->port();
  const size_t total = 64u << 20;
  for (const char* path : {"/anything", "/api/v1/alerts/1/ack", "/", "/healthz", "/x/../y"}) {
    for (const char* method : {"POST", "PUT", "GET"}) {
      for (bool chunked : {true, false}) {
        INFO(method << " " << path << (chunked ? " chunked" : " with Content-Length"));
        auto r = bigBody(port, method, path, total, chunked);
        CHECK((r.status == 413 || r.closed));
        if (r.status != 0) {
          CHECK(r.status == 413);
        }
        // The server stopped reading long before the end (socket buffers hold a few MiB).
        CHECK(r.sent_bytes < total / 4);
      }
    }
  }
  CHECK(h.metrics.value("hgj_http_bad_requests_total", {{"reason", "413"}}) >= 20);
  CHECK(h.metrics.value("hgj_http_rejected_total", {{"reason", "unauthorized"}}) == 0);
  CHECK(h.sink.received().empty());
  // A body at the limit is read and routed as usual.
  auto ok = timedRequest(port, postRequest("/api/v1/alerts/1/ack",
                                           R"({"by":")" + std::string(16000, 'x') + R"("})",
                                           kOperator));
  CHECK(ok.status == 400); // read in full; "by" is too long
}

TEST_CASE("api abuse: 1,000 idle connections and 50 slow-header clients do not delay /healthz",
          "[api][security][flood]") {
  raiseFileLimit();
  Harness h;
  int port = h.server->port();
  ConnectionFlood flood(port, 1000, 50, std::chrono::milliseconds(1000));
  REQUIRE(flood.failed() == 0);

  // An event stream opened during the flood, and the dashboard, keep working.
  int sse = connectTo(port);
  REQUIRE(sse >= 0);
  REQUIRE(sendAll(sse, getRequest("/api/v1/events")));
  std::string stream = readAvailable(sse, std::chrono::milliseconds(2000), 4096);
  CHECK(stream.find(": connected") != std::string::npos);

  std::vector<double> latencies;
  for (int i = 0; i < 60; ++i) {
    auto t = timedRequest(port, getRequest("/healthz"), std::chrono::seconds(5));
    CHECK(t.status == 200);
    latencies.push_back(static_cast<double>(t.elapsed.count()) / 1000.0);
    if (i % 10 == 0) {
      CHECK(timedRequest(port, getRequest("/")).status == 200);
      CHECK(timedRequest(port, getRequest("/api/v1/parking")).status == 200);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20)); // spreads the probes over ~2 s
  }
  h.live.setSpace("P-B1-0003", true);
  h.live.publish(h.read_model);
  std::string more = readAvailable(sse, std::chrono::milliseconds(3000), 1 << 16);
  CHECK(more.find("event: space") != std::string::npos);
  ::close(sse);

  Distribution d = distribution(latencies);
  std::printf("healthz under a flood of 1,000 idle + 50 slow-header connections: n=%zu p50=%.2f "
              "p90=%.2f max=%.2f ms, %zu under 100 ms\n",
              d.count, d.p50, d.p90, d.max, d.under_100ms);
  // The network thread never waits on a client and /healthz runs on it, so every probe is
  // answered at once; a loaded 2-core box may still deschedule this test's client now and then,
  // hence the bound on the 90th percentile, with every probe answered within the 5 s wait.
  CHECK(d.p50 < 100.0);
  CHECK(d.p90 < 100.0);
  CHECK(h.metrics.value("hgj_http_connections_evicted_total") > 0);
  CHECK(h.metrics.value("hgj_http_connections") <= 256);
}

TEST_CASE("api abuse: every phase has its deadline: idle, slow head, slow body, slow reader",
          "[api][security]") {
  api::HttpConfig cfg = api::testing::withOperator({});
  cfg.keep_alive_timeout = std::chrono::milliseconds(300);
  cfg.header_timeout = std::chrono::milliseconds(300);
  cfg.read_timeout = std::chrono::milliseconds(300);
  Harness h(cfg);
  int port = h.server->port();

  int idle = connectTo(port);
  int slow_head = connectTo(port);
  int slow_body = connectTo(port);
  REQUIRE(sendAll(slow_body, "POST /api/v1/alerts/1/ack HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                             "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"));
  // One header byte every 100 ms: each read is in time, the head as a whole is not.
  std::string head = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa";
  bool slow_head_closed = false;
  auto start = Clock::now();
  for (char c : head) {
    if (::send(slow_head, &c, 1, MSG_NOSIGNAL) != 1) {
      slow_head_closed = true;
      break;
    }
    if (peerClosed(slow_head, std::chrono::milliseconds(100))) {
      slow_head_closed = true;
      break;
    }
  }
  CHECK(slow_head_closed);
  CHECK(Clock::now() - start < std::chrono::seconds(3));
  CHECK(peerClosed(idle, std::chrono::seconds(3)));
  CHECK(peerClosed(slow_body, std::chrono::seconds(3)));
  ::close(idle);
  ::close(slow_head);
  ::close(slow_body);
  CHECK(h.metrics.value("hgj_http_timeouts_total", {{"phase", "idle"}}) >= 1);
  CHECK(h.metrics.value("hgj_http_timeouts_total", {{"phase", "header"}}) >= 1);
  CHECK(h.metrics.value("hgj_http_timeouts_total", {{"phase", "body"}}) >= 1);
  CHECK(h.sink.received().empty());

  // A keep-alive connection is served again, then closed once idle.
  int keep = connectTo(port);
  std::string req = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  REQUIRE(sendAll(keep, req + req)); // pipelined
  std::string both = readAvailable(keep, std::chrono::milliseconds(1000));
  size_t first = both.find("HTTP/1.1 200");
  REQUIRE(first != std::string::npos);
  CHECK(both.find("HTTP/1.1 200", first + 1) != std::string::npos);
  CHECK(peerClosed(keep, std::chrono::seconds(3)));
  ::close(keep);
}

TEST_CASE("api abuse: connection limits make room by closing idle connections, never busy ones",
          "[api][security]") {
  api::HttpConfig cfg = api::testing::withOperator({});
  cfg.max_connections = 8;
  cfg.max_connections_per_client = 4;
  cfg.command_timeout = std::chrono::seconds(3);
  Harness h(cfg);
  int port = h.server->port();

  // Four idle connections from one client; a fifth request from it closes the oldest.
  std::vector<int> idle;
  for (int i = 0; i < 4; ++i) {
    idle.push_back(connectTo(port));
  }
  REQUIRE(waitFor([&] { return h.metrics.value("hgj_http_connections") == 4; }));
  CHECK(timedRequest(port, getRequest("/healthz")).status == 200);
  CHECK(peerClosed(idle[0], std::chrono::seconds(2)));
  CHECK(h.metrics.value("hgj_http_connections_evicted_total") >= 1);
  // Another client address has its own allowance.
  CHECK(timedRequest(port, getRequest("/healthz"), std::chrono::seconds(5), "127.0.0.2").status ==
        200);
  for (int fd : idle) {
    ::close(fd);
  }
  REQUIRE(waitFor([&] { return h.metrics.value("hgj_http_connections") == 0; }));

  // Four requests waiting for the pipeline are not idle: a fifth connection from the same client
  // finds no room and is closed at once.
  h.sink.setHang(true);
  std::vector<int> busy;
  for (int i = 0; i < 4; ++i) {
    int fd = connectTo(port);
    REQUIRE(sendAll(fd, postRequest("/api/v1/devices/S01/P02/points/relay", R"({"value":false})",
                                    kOperator)));
    busy.push_back(fd);
  }
  REQUIRE(waitFor([&] { return h.sink.received().size() == 4; }));
  auto refused = timedRequest(port, getRequest("/healthz"), std::chrono::seconds(2));
  CHECK(refused.status == 0);
  CHECK(h.metrics.value("hgj_http_connections_refused_total") >= 1);
  for (int fd : busy) {
    CHECK(statusOf(readAvailable(fd, std::chrono::seconds(5))) == 504);
    ::close(fd);
  }
}

TEST_CASE("api abuse: the worker queue is bounded and /healthz does not wait for it",
          "[api][security]") {
  api::HttpConfig cfg = api::testing::withOperator({});
  cfg.threads = 1;
  cfg.max_queued_requests = 1;
  cfg.command_timeout = std::chrono::seconds(3);
  Harness h(cfg);
  int port = h.server->port();
  h.sink.setHang(true);
  std::string write =
      postRequest("/api/v1/devices/S01/P02/points/relay", R"({"value":false})", kOperator);
  int first = connectTo(port);
  REQUIRE(sendAll(first, write));
  REQUIRE(waitFor([&] { return h.sink.received().size() == 1; })); // the worker is held
  int second = connectTo(port);
  REQUIRE(sendAll(second, getRequest("/api/v1/parking"))); // queued
  REQUIRE(waitFor([&] {
    // Queued once the server has read it: nothing else is in flight.
    return h.metrics.value("hgj_http_requests_total", {{"code", "503"}}) == 0 &&
           timedRequest(port, getRequest("/healthz")).status == 200;
  }));
  auto third = timedRequest(port, getRequest("/api/v1/devices"));
  CHECK(third.status == 503);
  CHECK(h.metrics.value("hgj_http_busy_total") == 1);
  CHECK(statusOf(readAvailable(first, std::chrono::seconds(5))) == 504);
  CHECK(statusOf(readAvailable(second, std::chrono::seconds(5))) == 200);
  ::close(first);
  ::close(second);
}

TEST_CASE("api abuse: malformed requests are answered 400, 405 or 431 and the server goes on",
          "[api][security]") {
  Harness h;
  int port = h.server->port();
  CHECK(timedRequest(port, "GARBAGE\r\n\r\n").status == 400);
  CHECK(timedRequest(port, "GET /healthz HTTP/9.9\r\nHost: 127.0.0.1\r\n\r\n").status == 400);
  CHECK(timedRequest(port, "GET healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").status == 400);
  CHECK(timedRequest(port, getRequest("/api/v1/devices/%zz")).status == 400);
  CHECK(timedRequest(port, getRequest("/api/v1/devices/a%00b")).status == 400);
  CHECK(timedRequest(port, "POST /x HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
                           "\r\nzz\r\n")
            .status == 400);
  auto huge_head = timedRequest(port, getRequest("/healthz", "X-Big: " +
                                                                 std::string(20000, 'a') + "\r\n"));
  CHECK(huge_head.status == 431);
  // Any method but GET and HEAD is an operator action: the token is checked first.
  CHECK(timedRequest(port, "DELETE /api/v1/parking HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").status ==
        401);
  auto del = timedRequest(port, "DELETE /api/v1/parking HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                "Authorization: Bearer " + kOperator + "\r\n\r\n");
  CHECK(del.status == 405);
  CHECK(del.response.find("Allow: GET, HEAD") != std::string::npos);
  auto head = timedRequest(port, "HEAD /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                 "Connection: close\r\n\r\n");
  CHECK(head.status == 200);
  CHECK(bodyOf(head.response).empty());
  CHECK(json::parse(bodyOf(timedRequest(port, getRequest("/nope")).response))["status"] == 404);
  CHECK(timedRequest(port, getRequest("/healthz")).status == 200);
}
