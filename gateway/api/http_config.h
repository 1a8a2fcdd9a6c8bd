#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "core/config_node.h"

namespace hgj::api {

/// The `http:` section: where the local API and dashboard listen and who may use them.
/// Plain data, copied into the server at construction.
struct HttpConfig {
  /// Not an `http:` key: history.utc_offset, copied by the config loader (local days and weeks
  /// of the history API).
  int history_utc_offset_minutes = 480;
  std::string bind = "127.0.0.1";
  int port = 8080;
  /// Bearer token for reads. Empty: reads are open (allowed only on a loopback bind).
  std::string viewer_token;
  /// Bearer token for acks and point writes (also accepted for reads). Empty: nobody can act
  /// through the API (reads only). A non-loopback bind needs both tokens.
  std::string operator_token;
  /// Host header values accepted (port ignored). Empty: loopback names on a loopback bind, any
  /// host otherwise (the tokens protect). "*" accepts any.
  std::vector<std::string> allowed_hosts;
  /// Origins allowed to call the API cross-origin. Empty: CORS closed.
  std::vector<std::string> cors_origins;
  /// Largest request body, for every method, path and transfer encoding (chunked included);
  /// checked while the body arrives, before any route or token is looked at. Larger: 413.
  size_t max_body_bytes = 16 * 1024;
  /// Largest request head (request line plus headers). Larger: 431.
  size_t max_header_bytes = 8 * 1024;
  /// Open connections at most, overall and from one client address. A new connection beyond
  /// either limit takes the place of the longest-waiting idle one (no request in progress) or,
  /// when there is none, is closed at once.
  int max_connections = 256;
  int max_connections_per_client = 64;
  /// Worker threads for the API handlers that read snapshots or the database or wait for a
  /// command (the network loop itself is one more thread and never runs those).
  int threads = 4;
  /// Requests waiting for a worker at most; more get 503.
  int max_queued_requests = 64;
  /// Concurrent server-sent-event streams (they hold no thread).
  int sse_max_clients = 8;
  /// Serve the dashboard from this directory instead of the copy embedded in the binary.
  std::string static_dir;
  /// From the first byte of a request to the end of its head; also the longest a new
  /// connection may wait before its first byte.
  std::chrono::milliseconds header_timeout{5000};
  /// From the end of a request head to the end of its body.
  std::chrono::milliseconds read_timeout{5000};
  /// Writing one response (or one piece of an event stream) to the client.
  std::chrono::milliseconds write_timeout{5000};
  /// An idle connection between two requests is closed after this.
  std::chrono::milliseconds keep_alive_timeout{2000};
  /// How long an ack or write waits for the pipeline before answering 504.
  std::chrono::milliseconds command_timeout{5000};
  /// A comment line sent on idle event streams, so proxies and clients see the stream alive.
  std::chrono::milliseconds sse_heartbeat{10000};

  bool loopbackBind() const;
};

/// True for 127.0.0.0/8, ::1 and "localhost".
bool isLoopbackAddress(const std::string& address);

/// Parses the `http:` section (undefined node: all defaults). Problems go to
/// `http_section.diag()` as `FILE:LINE: http.key: message`; unknown keys are rejected. Token files
/// (`viewer_token_file`, `operator_token_file`) are read here. Single-threaded (config loading).
HttpConfig parseHttpConfig(const core::ConfigNode& http_section);

} // namespace hgj::api
