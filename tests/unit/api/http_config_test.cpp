#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <string>

#include "gateway/api/http_config.h"

using hgj::api::HttpConfig;
using hgj::api::parseHttpConfig;

namespace {

struct Parsed {
  HttpConfig config;
  hgj::core::Diagnostics diag;
};

Parsed parse(const std::string& yaml) {
  Parsed p;
  auto root = hgj::core::loadYamlText(yaml, "gateway.yaml", p.diag);
  REQUIRE(root);
  p.config = parseHttpConfig(root->child("http"));
  return p;
}

} // namespace

TEST_CASE("api config: an absent http section gives loopback defaults", "[api][config]") {
  auto p = parse("site: {id: x}\n");
  CHECK(p.diag.ok());
  CHECK(p.config.bind == "127.0.0.1");
  CHECK(p.config.port == 8080);
  CHECK(p.config.viewer_token.empty());
  CHECK(p.config.cors_origins.empty());
  CHECK(p.config.max_body_bytes == 16 * 1024);
  CHECK(p.config.loopbackBind());
}

TEST_CASE("api config: every key is parsed", "[api][config]") {
  auto p = parse(R"(http:
  bind: 0.0.0.0
  port: 9090
  viewer_token: viewer-0123456789abcdef
  operator_token: operator-0123456789abcdef
  allowed_hosts: [gw.local, 192.168.1.10]
  cors_origins: [https://pm.example.com]
  max_body_bytes: 4096
  max_header_bytes: 4096
  max_connections: 100
  max_connections_per_client: 10
  threads: 6
  max_queued_requests: 20
  sse_max_clients: 3
  static_dir: /srv/dash
  header_timeout: 1s
  read_timeout: 2s
  write_timeout: 3s
  keep_alive_timeout: 4s
  command_timeout: 1500ms
  sse_heartbeat: 10s
)");
  INFO(p.diag.format());
  CHECK(p.diag.ok());
  CHECK(p.config.bind == "0.0.0.0");
  CHECK(p.config.port == 9090);
  CHECK(p.config.operator_token == "operator-0123456789abcdef");
  CHECK(p.config.allowed_hosts.size() == 2);
  CHECK(p.config.cors_origins == std::vector<std::string>{"https://pm.example.com"});
  CHECK(p.config.max_body_bytes == 4096);
  CHECK(p.config.max_header_bytes == 4096);
  CHECK(p.config.max_connections == 100);
  CHECK(p.config.max_connections_per_client == 10);
  CHECK(p.config.threads == 6);
  CHECK(p.config.max_queued_requests == 20);
  CHECK(p.config.sse_max_clients == 3);
  CHECK(p.config.header_timeout == std::chrono::seconds(1));
  CHECK(p.config.static_dir == "/srv/dash");
  CHECK(p.config.read_timeout == std::chrono::seconds(2));
  CHECK(p.config.command_timeout == std::chrono::milliseconds(1500));
  CHECK_FALSE(p.config.loopbackBind());
}

TEST_CASE("api config: a non-loopback bind needs both tokens", "[api][config]") {
  auto p = parse("http:\n  bind: 0.0.0.0\n");
  REQUIRE_FALSE(p.diag.ok());
  CHECK(p.diag.format().find("gateway.yaml:2: http.bind: binding to 0.0.0.0 (not loopback) "
                             "requires both tokens (missing http.viewer_token and "
                             "http.operator_token") != std::string::npos);
  auto viewer_only =
      parse("http:\n  bind: 0.0.0.0\n  viewer_token: viewer-0123456789abcdef\n");
  REQUIRE_FALSE(viewer_only.diag.ok());
  CHECK(viewer_only.diag.format().find("gateway.yaml:2: http.bind: binding to 0.0.0.0 (not "
                                       "loopback) requires both tokens (missing "
                                       "http.operator_token") != std::string::npos);
  auto operator_only =
      parse("http:\n  bind: 0.0.0.0\n  operator_token: operator-0123456789abcdef\n");
  CHECK(operator_only.diag.format().find("missing http.viewer_token,") != std::string::npos);
  auto both = parse("http:\n  bind: 0.0.0.0\n  viewer_token: viewer-0123456789abcdef\n"
                    "  operator_token: operator-0123456789abcdef\n");
  CHECK(both.diag.ok());
}

TEST_CASE("api config: unknown keys are rejected with a suggestion", "[api][config]") {
  auto p = parse("http:\n  prot: 8080\n");
  REQUIRE_FALSE(p.diag.ok());
  CHECK(p.diag.format().find("http.prot: unknown key (did you mean \"port\"?)") !=
        std::string::npos);
}

TEST_CASE("api config: bad values are reported without revealing tokens", "[api][config]") {
  auto p = parse(R"(http:
  bind: not-an-address
  port: 70000
  viewer_token: short
  operator_token: short
  cors_origins: ["*"]
  max_connections: 8
  sse_max_clients: 8
  read_timeout: soon
)");
  std::string out = p.diag.format();
  INFO(out);
  CHECK(out.find("http.bind: expected an IPv4 or IPv6 address") != std::string::npos);
  CHECK(out.find("http.port: out of range") != std::string::npos);
  CHECK(out.find("http.viewer_token: token too short") != std::string::npos);
  CHECK(out.find("http.operator_token: the operator token must differ") != std::string::npos);
  CHECK(out.find("http.cors_origins: \"*\" is not allowed") != std::string::npos);
  CHECK(out.find("http.sse_max_clients: must be below http.max_connections") !=
        std::string::npos);
  CHECK(out.find("http.read_timeout: expected a duration") != std::string::npos);
  CHECK(out.find(": short") == std::string::npos);
}

TEST_CASE("api config: tokens are read from files", "[api][config]") {
  char path[] = "/tmp/hgj_token_XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  {
    std::ofstream f(path);
    f << "  op-token-from-file-0123456789\n";
  }
  auto p = parse(std::string("http:\n  operator_token_file: ") + path + "\n");
  CHECK(p.diag.ok());
  CHECK(p.config.operator_token == "op-token-from-file-0123456789");

  auto both = parse(std::string("http:\n  operator_token: abcdefabcdefabcdef0\n"
                                "  operator_token_file: ") +
                    path + "\n");
  CHECK(both.diag.format().find("set either operator_token or operator_token_file") !=
        std::string::npos);
  auto missing = parse("http:\n  viewer_token_file: /nonexistent/token\n");
  CHECK(missing.diag.format().find("http.viewer_token_file: cannot read \"/nonexistent/token\"") !=
        std::string::npos);
  std::remove(path);
  close(fd);
}
