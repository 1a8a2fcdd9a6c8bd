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
  std::string bind = "127.0.0.1";
  int port = 8080;
  /// Bearer token for reads. Empty: reads are open (allowed only on a loopback bind).
  std::string viewer_token;
  /// Bearer token for ack and point writes (also accepted for reads). Empty on a loopback bind
  /// with no viewer token: operator actions are open to local clients; otherwise refused.
  std::string operator_token;
  /// Host header values accepted (port ignored). Empty: loopback names on a loopback bind, any
  /// host otherwise (the tokens protect). "*" accepts any.
  std::vector<std::string> allowed_hosts;
  /// Origins allowed to call the API cross-origin. Empty: CORS closed.
  std::vector<std::string> cors_origins;
  size_t max_body_bytes = 16 * 1024;
  int threads = 12;
  /// Concurrent server-sent-event streams; each holds one server thread.
  int sse_max_clients = 8;
  /// Serve the dashboard from this directory instead of the copy embedded in the binary.
  std::string static_dir;
  std::chrono::milliseconds read_timeout{5000};
  std::chrono::milliseconds write_timeout{5000};
  std::chrono::milliseconds keep_alive_timeout{2000};
  /// How long an ack or write waits for the pipeline before answering 504.
  std::chrono::milliseconds command_timeout{5000};
  /// A comment line sent on idle event streams; also how a vanished client is noticed (the
  /// second write after it left fails), so it bounds how long it holds a thread.
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
