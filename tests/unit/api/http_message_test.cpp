#include <catch2/catch.hpp>

#include "gateway/api/http_message.h"
#include "gateway/api/request_reader.h"
#include "gateway/api/routes.h"

using namespace hgj::api;

TEST_CASE("api message: targets are split and decoded, dot segments refused", "[api][http]") {
  auto t = splitTarget("/api/v1/devices/S03%2FP07?level=B1&x=%41+b");
  REQUIRE(t);
  CHECK(t->path == "/api/v1/devices/S03/P07");
  CHECK(t->query == "level=B1&x=%41+b");
  CHECK(queryParam(t->query, "x") == std::optional<std::string>("A b"));
  CHECK(queryParam(t->query, "level") == std::optional<std::string>("B1"));
  CHECK_FALSE(queryParam(t->query, "zone"));
  CHECK(queryParam("a&a=2", "a") == std::optional<std::string>(""));
  CHECK_FALSE(queryParam("a=%zz", "a"));
  CHECK_FALSE(splitTarget("/a/../b"));
  CHECK_FALSE(splitTarget("/a/%2e%2e/b"));
  CHECK_FALSE(splitTarget("/./b"));
  CHECK_FALSE(splitTarget("/a%00"));
  CHECK_FALSE(splitTarget("/a%2"));
  CHECK_FALSE(splitTarget("http://host/a"));
  CHECK_FALSE(splitTarget("*"));
  CHECK(splitTarget("/")->path == "/");
}

TEST_CASE("api routes: each path and method reaches one handler, others 404 or 405",
          "[api][http]") {
  auto m = matchRoute("GET", "/api/v1/devices/S03/P07");
  REQUIRE(m.route);
  CHECK(m.route->handler == getDevice);
  CHECK(m.params == std::vector<std::string>{"S03/P07"});
  m = matchRoute("POST", "/api/v1/devices/S03/P07/points/relay");
  REQUIRE(m.route);
  CHECK(m.route->handler == postWrite);
  CHECK(m.params == std::vector<std::string>{"S03/P07", "relay"});
  m = matchRoute("POST", "/api/v1/alerts/12/ack");
  REQUIRE(m.route);
  CHECK(m.params == std::vector<std::string>{"12"});
  CHECK(matchRoute("POST", "/api/v1/alerts/1/2/ack").status == 404);
  CHECK(matchRoute("GET", "/healthz").route->run_on == RunOn::Inline);
  CHECK(matchRoute("HEAD", "/").route->run_on == RunOn::Inline);
  CHECK(matchRoute("GET", "/api/v1/events").route->run_on == RunOn::EventStream);
  CHECK(matchRoute("GET", "/api/v1/parking").route->run_on == RunOn::Worker);
  CHECK(matchRoute("GET", "/app.js").params == std::vector<std::string>{"app.js"});
  CHECK(matchRoute("GET", "/.js").status == 404);
  CHECK(matchRoute("GET", "/etc/passwd").status == 404);
  auto wrong = matchRoute("POST", "/api/v1/parking");
  CHECK(wrong.status == 405);
  CHECK(wrong.allow == "GET, HEAD");
  CHECK(matchRoute("GET", "/api/v1/alerts/1/ack").status == 405);
}

TEST_CASE("api reader: requests arrive in pieces, bodies are capped in every encoding",
          "[api][http]") {
  std::string req = "POST /api/v1/alerts/1/ack?x=1 HTTP/1.1\r\nHost: a\r\nX-Mixed-Case: V\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /next";
  RequestReader r(1024, 16);
  std::string pending;
  size_t used_total = 0;
  for (char c : req) {
    pending += c;
    auto p = r.feed(pending);
    REQUIRE(p.error_status == 0);
    pending.erase(0, p.consumed);
    used_total += p.consumed;
    if (r.done()) {
      break;
    }
  }
  REQUIRE(r.done());
  CHECK(r.keepAlive());
  std::string error;
  auto q = r.take(&error);
  REQUIRE(q);
  CHECK(q->method == "POST");
  CHECK(q->path == "/api/v1/alerts/1/ack");
  CHECK(q->query == "x=1");
  CHECK(q->header("x-mixed-case") == "V");
  CHECK(q->body == "abc");
  CHECK(req.substr(used_total) == "GET /next"); // the next request is left for its reader

  RequestReader big(1024, 16);
  CHECK(big.feed("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 17\r\n\r\n").error_status == 413);
  RequestReader chunked(1024, 16);
  auto p = chunked.feed("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "10\r\n0123456789abcdef\r\n1\r\nx\r\n");
  CHECK(p.error_status == 413);
  RequestReader head(64, 16);
  CHECK(head.feed("GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(100, 'a')).error_status ==
        431);
  RequestReader bad(1024, 16);
  CHECK(bad.feed("GET / HTTP/1.1\r\nHost a\r\n\r\n").error_status == 400);
  RequestReader target(1024, 16);
  target.feed("GET /a/../b HTTP/1.1\r\nHost: a\r\n\r\n");
  REQUIRE(target.done());
  CHECK_FALSE(target.take(&error));
  CHECK(error == "malformed request target");
}
