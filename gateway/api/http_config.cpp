#include "gateway/api/http_config.h"

#include <arpa/inet.h>


namespace hgj::api {

namespace {

constexpr size_t kMinTokenLength = 16;

// Tokens come inline or from a `*_file` (ConfigNode::secret); here only their shape is checked.
std::string readToken(const core::ConfigNode& http, const std::string& key) {
  bool from_file = false;
  std::string token = http.secret(key, &from_file);
  std::string where = from_file ? key + "_file" : key;
  if (!token.empty() && token.size() < kMinTokenLength) {
    // The message never includes the token itself.
    http.errorAt(where, "token too short (expected at least " + std::to_string(kMinTokenLength) +
                            " characters, got " + std::to_string(token.size()) + ")");
  }
  for (char c : token) {
    if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
      http.errorAt(where, "token must be printable ASCII without spaces");
      break;
    }
  }
  return token;
}

bool validBindAddress(const std::string& a) {
  if (a == "localhost") {
    return true;
  }
  in_addr v4{};
  in6_addr v6{};
  return inet_pton(AF_INET, a.c_str(), &v4) == 1 || inet_pton(AF_INET6, a.c_str(), &v6) == 1;
}

} // namespace

bool isLoopbackAddress(const std::string& address) {
  if (address == "localhost" || address == "::1" || address == "::ffff:127.0.0.1") {
    return true;
  }
  in_addr v4{};
  if (inet_pton(AF_INET, address.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  return false;
}

bool HttpConfig::loopbackBind() const {
  return isLoopbackAddress(bind);
}

HttpConfig parseHttpConfig(const core::ConfigNode& http) {
  HttpConfig c;
  if (!http.defined()) {
    return c;
  }
  http.allowKeys({"bind", "port", "viewer_token", "viewer_token_file", "operator_token",
                  "operator_token_file", "allowed_hosts", "cors_origins", "max_body_bytes",
                  "max_header_bytes", "max_connections", "max_connections_per_client", "threads",
                  "max_queued_requests", "sse_max_clients", "static_dir", "header_timeout",
                  "read_timeout", "write_timeout", "keep_alive_timeout", "command_timeout",
                  "sse_heartbeat"});
  c.bind = http.str("bind", c.bind);
  if (!validBindAddress(c.bind)) {
    http.errorAt("bind", "expected an IPv4 or IPv6 address such as 127.0.0.1 or 0.0.0.0, got \"" +
                             c.bind + "\"");
  }
  // 0 lets the OS pick a free port (tests); the bound port is reported by HttpServer::port().
  c.port = static_cast<int>(http.integer("port", c.port, 0, 65535));
  c.viewer_token = readToken(http, "viewer_token");
  c.operator_token = readToken(http, "operator_token");
  if (!c.viewer_token.empty() && c.viewer_token == c.operator_token) {
    http.errorAt("operator_token", "the operator token must differ from the viewer token");
  }
  if (!c.loopbackBind() && (c.viewer_token.empty() || c.operator_token.empty())) {
    std::string missing = c.viewer_token.empty() && c.operator_token.empty()
                              ? "http.viewer_token and http.operator_token"
                          : c.viewer_token.empty() ? "http.viewer_token"
                                                   : "http.operator_token";
    http.errorAt("bind", "binding to " + c.bind + " (not loopback) requires both tokens (missing " +
                             missing + ", or their _file forms)");
  }
  c.allowed_hosts = http.strList("allowed_hosts");
  c.cors_origins = http.strList("cors_origins");
  for (const auto& o : c.cors_origins) {
    if (o != "*" && o.rfind("http://", 0) != 0 && o.rfind("https://", 0) != 0) {
      http.errorAt("cors_origins",
                   "expected origins such as https://pm.example.com, got \"" + o + "\"");
    }
    if (o == "*") {
      http.errorAt("cors_origins", "\"*\" is not allowed: list the origins explicitly");
    }
  }
  c.max_body_bytes = static_cast<size_t>(http.integer(
      "max_body_bytes", static_cast<int64_t>(c.max_body_bytes), 256, 16 * 1024 * 1024));
  c.max_header_bytes = static_cast<size_t>(http.integer(
      "max_header_bytes", static_cast<int64_t>(c.max_header_bytes), 1024, 64 * 1024));
  c.max_connections =
      static_cast<int>(http.integer("max_connections", c.max_connections, 8, 16384));
  c.max_connections_per_client =
      static_cast<int>(http.integer("max_connections_per_client", c.max_connections_per_client,
                                    1, c.max_connections));
  c.threads = static_cast<int>(http.integer("threads", c.threads, 1, 64));
  c.max_queued_requests =
      static_cast<int>(http.integer("max_queued_requests", c.max_queued_requests, 1, 4096));
  c.sse_max_clients = static_cast<int>(http.integer("sse_max_clients", c.sse_max_clients, 0, 256));
  if (c.sse_max_clients >= c.max_connections) {
    http.errorAt("sse_max_clients", "must be below http.max_connections (expected at most " +
                                        std::to_string(c.max_connections - 1) + ", got " +
                                        std::to_string(c.sse_max_clients) + ")");
  }
  c.static_dir = http.str("static_dir", "");
  using std::chrono::milliseconds;
  c.header_timeout =
      http.duration("header_timeout", c.header_timeout, milliseconds(100), milliseconds(300'000));
  c.read_timeout =
      http.duration("read_timeout", c.read_timeout, milliseconds(100), milliseconds(300'000));
  c.write_timeout =
      http.duration("write_timeout", c.write_timeout, milliseconds(100), milliseconds(300'000));
  c.keep_alive_timeout = http.duration("keep_alive_timeout", c.keep_alive_timeout,
                                       milliseconds(100), milliseconds(300'000));
  c.command_timeout =
      http.duration("command_timeout", c.command_timeout, milliseconds(100), milliseconds(120'000));
  c.sse_heartbeat =
      http.duration("sse_heartbeat", c.sse_heartbeat, milliseconds(1000), milliseconds(300'000));
  return c;
}

} // namespace hgj::api
