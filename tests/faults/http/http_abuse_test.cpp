// Hostile HTTP clients against the daemon itself (docs/reliability.md rows 19 and 24): the real
// hgj-gateway on the example compound with a real mosquitto, attacked over loopback.

#include <catch2/catch.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <fstream>

#include "tests/integration/api/hostile_http.h"
#include "tests/support/test_support.h"

using namespace hgj::test;
using namespace hgj::test::hostile;

namespace {

const std::string kOperatorToken = "operator-token-faults-0123456789";
const std::string kViewerToken = "viewer-token-faults-0123456789";

struct Daemon {
  TempDir dir;
  Broker broker{true, {}, /*start=*/false};
  std::unique_ptr<GatewayProcess> gw;

  explicit Daemon(std::vector<std::string> sets = {}) {
    broker.start();
    gw = startGateway(broker.url(), dir.file("gw.db"), dir.file("gw.log"), std::move(sets));
  }
  int port() const { return gw->httpPort(); }
};

std::string post(const std::string& path, const std::string& body, const std::string& token) {
  return "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" +
         (token.empty() ? std::string() : "Authorization: Bearer " + token + "\r\n") +
         "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
}

} // namespace

TEST_CASE("faults http: bodies over the limit on any path get 413 or a close, memory stays flat",
          "[faults][http]") {
  Daemon d;
  pid_t pid = d.gw->pid();
  // Warm up the paths once, so that first-use allocations do not count as growth.
  bigBody(d.port(), "POST", "/anything", 1 << 20, true);
  bigBody(d.port(), "POST", "/anything", 1 << 20, false);
  size_t before = rssOf(pid);
  REQUIRE(before > 0);
  size_t peak = before;
  for (const char* path : {"/anything", "/api/v1/alerts/1/ack", "/api/v1/devices/S03/P07/points/relay"}) {
    for (bool chunked : {true, false}) {
      INFO(path << (chunked ? " chunked" : " with Content-Length"));
      // 256 MiB declared or streamed: the gateway must stop reading at the limit.
      auto r = bigBody(d.port(), "POST", path, 256u << 20, chunked);
      CHECK((r.status == 413 || r.closed));
      CHECK(r.sent_bytes < (64u << 20));
      peak = std::max(peak, rssOf(pid));
    }
  }
  size_t after = rssOf(pid);
  std::printf("gateway RSS around 6 bodies of 256 MiB: %.1f MiB before, %.1f after, %.1f peak\n",
              before / 1048576.0, after / 1048576.0, peak / 1048576.0);
  CHECK(peak - before < (2u << 20));
  CHECK(d.gw->get("/healthz").first == 200);
}

TEST_CASE("faults http: 1,000 idle connections and 50 slow-header clients, /healthz, the "
          "dashboard and events keep answering",
          "[faults][http]") {
  rlimit lim{};
  getrlimit(RLIMIT_NOFILE, &lim);
  lim.rlim_cur = std::min<rlim_t>(lim.rlim_max, 8192);
  setrlimit(RLIMIT_NOFILE, &lim);
  Daemon d;
  size_t before = rssOf(d.gw->pid());
  ConnectionFlood flood(d.port(), 1000, 50, std::chrono::milliseconds(1000));
  REQUIRE(flood.failed() == 0);
  int sse = connectTo(d.port());
  REQUIRE(sse >= 0);
  REQUIRE(sendAll(sse, getRequest("/api/v1/events")));
  CHECK(readAvailable(sse, std::chrono::seconds(2), 4096).find(": connected") !=
        std::string::npos);

  std::vector<double> ms;
  for (int i = 0; i < 100; ++i) {
    auto t = timedRequest(d.port(), getRequest("/healthz"), std::chrono::seconds(5));
    CHECK(t.status == 200);
    ms.push_back(static_cast<double>(t.elapsed.count()) / 1000.0);
    if (i % 20 == 0) {
      CHECK(timedRequest(d.port(), getRequest("/")).status == 200);
      CHECK(timedRequest(d.port(), getRequest("/app.js")).status == 200);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(30)); // spreads probes over ~3 s
  }
  // The event stream is not idle: the flood never pushed it out.
  CHECK_FALSE(peerClosed(sse, std::chrono::milliseconds(200)));
  ::close(sse);
  CHECK(flood.slowClosed() == 50);
  std::sort(ms.begin(), ms.end());
  size_t under = static_cast<size_t>(
      std::count_if(ms.begin(), ms.end(), [](double v) { return v < 100.0; }));
  std::printf("daemon /healthz under 1,000 idle + 50 slow-header connections: n=%zu p50=%.2f "
              "p90=%.2f p99=%.2f max=%.2f ms, %zu under 100 ms; RSS %.1f -> %.1f MiB\n",
              ms.size(), ms[ms.size() / 2], ms[ms.size() * 9 / 10], ms[ms.size() * 99 / 100],
              ms.back(), under, before / 1048576.0, rssOf(d.gw->pid()) / 1048576.0);
  // /healthz runs on the network thread, which never waits on a client; the bound is on the
  // 90th percentile because a loaded 2-core box may deschedule this test's own client.
  CHECK(ms[ms.size() / 2] < 100.0);
  CHECK(ms[ms.size() * 9 / 10] < 100.0);
}

TEST_CASE("faults http: no token on loopback: reads work, acks and writes are refused",
          "[faults][http]") {
  Daemon d;
  CHECK(d.gw->get("/api/v1/parking").first == 200);
  auto ack = timedRequest(d.port(), post("/api/v1/alerts/1/ack", R"({"by":"x"})", ""));
  CHECK(ack.status == 403);
  CHECK(ack.response.find("no http.operator_token is configured") != std::string::npos);
  auto write = timedRequest(d.port(), post("/api/v1/devices/S03/P07/points/relay",
                                           R"({"value":true,"override_safety":true})", ""));
  CHECK(write.status == 403);
}

TEST_CASE("faults http: with an operator token file, only the token acts, bad Host 400, "
          "cross-origin 403, slow client cut",
          "[faults][http]") {
  TempDir tokens;
  std::ofstream(tokens.file("op")) << kOperatorToken << "\n";
  Daemon d({"http.operator_token_file=" + tokens.file("op"), "http.header_timeout=500ms"});
  std::string write_body = R"({"value":false,"by":"faults"})";
  std::string path = "/api/v1/devices/S03/P07/points/relay";
  CHECK(timedRequest(d.port(), post(path, write_body, "")).status == 401);
  CHECK(timedRequest(d.port(), post(path, write_body, "wrong-token-000000000000")).status == 401);
  // Accepted by the API (the pipeline answers: the relay write is queued or refused by the
  // device's state, never 401/403).
  int accepted = timedRequest(d.port(), post(path, write_body, kOperatorToken)).status;
  CHECK(accepted != 401);
  CHECK(accepted != 403);
  CHECK(timedRequest(d.port(),
                     "GET /api/v1/parking HTTP/1.1\r\nHost: evil.example.com\r\n"
                     "Connection: close\r\n\r\n")
            .status == 400);
  std::string cross = "POST " + path +
                      " HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: https://evil.example.com\r\n"
                      "Authorization: Bearer " +
                      kOperatorToken +
                      "\r\nContent-Type: application/json\r\nConnection: close\r\n"
                      "Content-Length: " +
                      std::to_string(write_body.size()) + "\r\n\r\n" + write_body;
  CHECK(timedRequest(d.port(), cross).status == 403);
  int slow = connectTo(d.port());
  REQUIRE(sendAll(slow, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"));
  CHECK(peerClosed(slow, std::chrono::seconds(5)));
  ::close(slow);
  CHECK(d.gw->get("/healthz").first == 200);
}

TEST_CASE("faults http: a non-loopback bind without both tokens is a config error at http.bind",
          "[faults][http]") {
  TempDir dir;
  std::ofstream(dir.file("viewer")) << kViewerToken << "\n";
  Process check({binary("hgj-gateway"), "check", "-c", sourcePath("conf/gateway.yaml"), "--set",
                 "http.bind=0.0.0.0", "--set", "http.viewer_token_file=" + dir.file("viewer")},
                dir.file("check.log"));
  CHECK(check.wait() == 2);
  CHECK(check.output().find("http.bind: binding to 0.0.0.0 (not loopback) requires both "
                            "tokens (missing http.operator_token") != std::string::npos);
}
