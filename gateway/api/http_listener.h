#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/metrics.h"
#include "gateway/api/http_config.h"
#include "gateway/api/http_message.h"

namespace hgj::api {

/// Hands a request's answer back to the network thread. Call it exactly once, from any thread;
/// after the listener stopped it does nothing.
using Responder = std::function<void(Response)>;

/// Called on the network thread for every complete request (head and body received within the
/// limits). It must not block: answer at once through `respond`, or hand the request to another
/// thread that calls `respond` later.
using RequestHandler = std::function<void(Request request, Responder respond)>;

/// The connection layer of the HTTP server: one event-driven network thread (Boost.Asio, with
/// Boost.Beast's HTTP/1.1 parser) that accepts, reads, times out and writes every connection,
/// and enforces every limit of HttpConfig before a request reaches the handler:
/// - body size for every method, path and transfer encoding (413 and close), head size (431);
/// - connections overall and per client address: a connection beyond a limit replaces the
///   longest-waiting connection that has no request in progress (idle, or a head not yet
///   complete); when there is none it is closed at once. So floods of idle or slow connections
///   cannot keep a new client (a health probe) out;
/// - a deadline for each phase: the first byte of a request (keep_alive_timeout), the rest of the
///   head (header_timeout), the body (read_timeout), each write (write_timeout).
/// Event streams (Response::stream) stay open after their head; broadcast() feeds them.
///
/// Metrics: hgj_http_connections (gauge), hgj_http_connections_evicted_total,
/// hgj_http_connections_refused_total, hgj_http_timeouts_total{phase},
/// hgj_http_bad_requests_total{reason}. `status_seen` is called on the network thread for every
/// response written (its status code).
class HttpListener {
public:
  HttpListener(const HttpConfig& config, core::MetricsRegistry& metrics, RequestHandler handler,
               std::function<void(int status)> status_seen);
  ~HttpListener();
  HttpListener(const HttpListener&) = delete;
  HttpListener& operator=(const HttpListener&) = delete;

  /// Binds and starts the network thread. Throws std::runtime_error when it cannot bind.
  void start();
  /// Closes every connection and joins the network thread; responders called later do nothing.
  /// Idempotent.
  void stop();
  int port() const;

  /// Appends `data` to the open event streams (as one chunk), skipping streams that already
  /// have events up to `seq` (seq 0: every stream). A stream whose client has more than
  /// kMaxStreamBacklog bytes unread is closed (the client reconnects with Last-Event-ID).
  /// Any thread.
  void broadcast(uint64_t seq, std::string data);
  /// Open event streams (any thread).
  int streams() const;
  /// Open connections (any thread).
  int connections() const;

  static constexpr size_t kMaxStreamBacklog = 256 * 1024;

private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

} // namespace hgj::api
