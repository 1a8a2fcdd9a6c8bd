#pragma once

#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "core/metrics.h"
#include "gateway/api/http_config.h"
#include "gateway/pipeline/commands.h"
#include "gateway/pipeline/read_model.h"

namespace hgj::api {

/// The local HTTP API, the dashboard and the health and metrics endpoints (docs/api.md).
///
/// Threads: start() opens the socket and runs one accept thread plus a pool of
/// `config.threads` workers (cpp-httplib); each request and each server-sent-event stream runs on
/// one worker. Handlers only read: live state through `read_model.current()` (an immutable
/// snapshot) and `read_model.eventsAfter()`, alerts through the server's own read-only SQLite
/// connections to `db_path`. Acks and point writes are submitted to `commands` and awaited with
/// `config.command_timeout`; nothing here blocks the pipeline thread.
///
/// `read_model`, `commands` and `metrics` must outlive the server. `health` runs on a worker
/// thread for each /healthz request and must be thread-safe and quick. The server registers its
/// own metrics (hgj_http_*, hgj_alerts_by_state, process_resident_memory_bytes) in `metrics`;
/// their scrape callbacks hold only shared state, so the registry may outlive the server.
/// start() sets SIGPIPE to ignored if it was at its default (a client closing mid-response must
/// not kill the daemon).
class HttpServer {
public:
  HttpServer(const HttpConfig& config, const pipeline::ReadModel& read_model,
             pipeline::CommandSink& commands, core::MetricsRegistry& metrics,
             const std::string& db_path, std::function<nlohmann::json()> health);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  /// Binds and starts serving. Throws std::runtime_error ("http: cannot listen on ADDR:PORT: ...")
  /// when the address cannot be bound (port taken, address not on this host).
  void start();
  /// Stops accepting, ends event streams (within about half a second) and joins the threads.
  /// Idempotent; also done by the destructor.
  void stop();
  /// The bound port (the OS's choice when config.port is 0); 0 before start().
  int port() const;

private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

} // namespace hgj::api
