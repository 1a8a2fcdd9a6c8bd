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
/// The pieces: HttpListener (the network thread, every connection limit and timeout), AccessPolicy
/// (Host, Origin, tokens and roles), routes.cpp (which handler, on which thread), the handlers
/// by resource (*_handlers.cpp), EventFeed (server-sent events) and a WorkerPool.
///
/// Threads: one network thread does all socket work and runs the quick handlers (/healthz, the
/// dashboard files, opening event streams); `config.threads` workers run the handlers that read
/// snapshots or the database or wait for a command; one thread feeds the event streams. Handlers
/// only read: live state through `read_model.current()` (an immutable snapshot) and
/// `read_model.eventsAfter()`, alerts through the server's own read-only SQLite connections to
/// `db_path`. Acks and point writes are submitted to `commands` and awaited with
/// `config.command_timeout` on a worker; nothing here blocks the pipeline thread.
///
/// `read_model`, `commands` and `metrics` must outlive the server. `health` runs on the network
/// thread for each /healthz request and must be thread-safe and quick (it never waits on I/O). The server registers its
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

  /// The remote-configuration endpoints (`GET /api/v1/config/versions`, `POST
  /// /api/v1/config/rollback`); both run on a worker and must be thread-safe. Before start().
  void setConfigControl(
      std::function<nlohmann::json()> versions,
      std::function<std::pair<int, nlohmann::json>(const std::string&, const std::string&)>
          rollback);

  /// Binds and starts serving. Throws std::runtime_error ("http: cannot listen on ADDR:PORT: ...")
  /// when the address cannot be bound (port taken, address not on this host).
  void start();
  /// Stops accepting, ends event streams (within about half a second) and joins the threads.
  /// Commands still waiting for the pipeline are waited for (at most config.command_timeout).
  /// Idempotent; also done by the destructor.
  void stop();
  /// The bound port (the OS's choice when config.port is 0); 0 before start().
  int port() const;

private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

} // namespace hgj::api
