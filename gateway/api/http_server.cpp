#include "gateway/api/http_server.h"

#include <signal.h>

#include <chrono>
#include <map>

#include "core/log.h"
#include "gateway/api/alert_store.h"
#include "gateway/api/api_context.h"
#include "gateway/api/auth.h"
#include "gateway/api/event_feed.h"
#include "gateway/api/http_listener.h"
#include "gateway/api/routes.h"
#include "gateway/api/worker_pool.h"

namespace hgj::api {

namespace {

using Clock = std::chrono::steady_clock;

} // namespace

struct HttpServer::Impl {
  Impl(const HttpConfig& c, const pipeline::ReadModel& rm, pipeline::CommandSink& cs,
       core::MetricsRegistry& m, const std::string& db_path, std::function<nlohmann::json()> h)
      : config(c), metrics(m), policy(c),
        ctx(c, rm, cs, m, std::make_shared<AlertStore>(db_path), std::move(h)),
        listener(std::make_shared<HttpListener>(
            c, m, [this](Request req, Responder respond) { dispatch(std::move(req), respond); },
            [this](int status) { countStatus(status); })),
        feed(rm, *listener, c.sse_heartbeat) {
    ctx.history = std::make_shared<HistoryStore>(db_path, c.history_utc_offset_minutes);
    std::weak_ptr<HttpListener> weak = listener;
    ctx.sse_clients = [weak] {
      auto l = weak.lock();
      return l ? l->streams() : 0;
    };
  }

  const HttpConfig config;
  core::MetricsRegistry& metrics;
  AccessPolicy policy;
  ApiContext ctx;
  std::shared_ptr<HttpListener> listener;
  EventFeed feed;
  std::unique_ptr<WorkerPool> workers;
  bool running = false;
  core::RateLimitedLog reject_log;
  core::Histogram* latency = nullptr;
  core::Counter* busy = nullptr;
  /// Request counters of the usual status codes, looked up once (the registry takes a lock).
  std::map<int, core::Counter*> by_status;

  void registerMetrics();
  void dispatch(Request req, const Responder& respond);
  void reject(const Request& req, Response& res, const Admission& a);
  void finish(const Request& req, Response& res, Clock::time_point start) const;
  void countStatus(int status);
  static void runHandler(ApiContext& ctx, HandlerFn fn, const Request& req, Response& res);
};

void HttpServer::Impl::registerMetrics() {
  metrics.gaugeFn("process_resident_memory_bytes", "Resident memory size in bytes.",
                  [] { return core::processResidentBytes(); });
  // The callbacks keep what they read alive: the registry may outlive this server.
  std::shared_ptr<AlertStore> store = ctx.alerts;
  for (const char* state : {"active", "acked", "cleared"}) {
    metrics.gaugeFn("hgj_alerts_by_state", "Alerts in the database by lifecycle state.",
                    [store, s = std::string(state)] {
                      auto counts = store->countByState();
                      auto it = counts.find(s);
                      return it == counts.end() ? 0.0 : static_cast<double>(it->second);
                    },
                    {{"state", state}});
  }
  std::weak_ptr<HttpListener> weak = listener;
  metrics.gaugeFn("hgj_http_sse_clients", "Open server-sent event streams.", [weak] {
    auto l = weak.lock();
    return l ? static_cast<double>(l->streams()) : 0.0;
  });
  for (int code : {200, 204, 304, 400, 401, 403, 404, 405, 409, 413, 415, 431, 500, 503, 504}) {
    by_status[code] = &metrics.counter("hgj_http_requests_total",
                                       "HTTP requests answered, by status code.",
                                       {{"code", std::to_string(code)}});
  }
  latency = &metrics.histogram("hgj_http_request_duration_seconds",
                               "Time to handle an HTTP request (event streams excluded).",
                               {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5});
  busy = &metrics.counter("hgj_http_busy_total",
                          "Requests answered 503 because every worker was busy and the queue full.");
}

void HttpServer::Impl::countStatus(int status) {
  auto it = by_status.find(status);
  if (it != by_status.end()) {
    it->second->inc();
    return;
  }
  metrics
      .counter("hgj_http_requests_total", "HTTP requests answered, by status code.",
               {{"code", std::to_string(status)}})
      .inc();
}

void HttpServer::Impl::reject(const Request& req, Response& res, const Admission& a) {
  metrics
      .counter("hgj_http_rejected_total", "HTTP requests refused by the access rules.",
               {{"reason", a.reason}})
      .inc();
  // Security-relevant, so logged; only method, path and peer (never headers, query or body,
  // which may hold a token), escaped and rate-limited: all of it is the client's choice.
  reject_log.warn("http: refused {} {} from {}: {}", core::printable(req.method, 16),
                  core::printable(req.path), req.peer, a.message);
  if (a.status == 401) {
    res.setHeader("WWW-Authenticate", "Bearer realm=\"hgj-gateway\"");
  }
  res.setError(a.status, a.message);
}

void HttpServer::Impl::finish(const Request& req, Response& res, Clock::time_point start) const {
  res.setHeader("X-Content-Type-Options", "nosniff");
  res.setHeader("Referrer-Policy", "no-referrer");
  res.setHeader("X-Frame-Options", "DENY");
  bool api = isApiPath(req.path);
  if (api && !res.hasHeader("Cache-Control")) {
    res.setHeader("Cache-Control", "no-store");
  }
  const std::string& origin = req.header("origin");
  if (!origin.empty() && api && policy.corsListed(origin)) {
    res.setHeader("Access-Control-Allow-Origin", origin);
    res.setHeader("Vary", "Origin");
  }
  // Answers are counted, not logged one by one: every line of the log that holds a client's
  // words goes through a rate limit (reject_log, error_log, the listener's log).
  if (!res.stream) {
    latency->observe(std::chrono::duration<double>(Clock::now() - start).count());
  }
}

void HttpServer::Impl::runHandler(ApiContext& ctx, HandlerFn fn, const Request& req,
                                  Response& res) {
  try {
    fn(ctx, req, res);
  } catch (const std::exception& e) {
    ctx.error_log.warn("http: {} {} failed: {}", core::printable(req.method, 16),
                       core::printable(req.path), core::printable(e.what()));
    res = Response{};
    res.setError(500, "internal error");
  }
}

void HttpServer::Impl::dispatch(Request req, const Responder& respond) {
  auto start = Clock::now();
  Response res;
  Admission a = policy.admit(req);
  req.role = a.role;
  if (!a.admitted()) {
    reject(req, res, a);
  } else if (req.method == "OPTIONS") {
    res.status = 204;
    const std::string& origin = req.header("origin");
    res.setHeader("Access-Control-Allow-Origin", origin);
    res.setHeader("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    res.setHeader("Access-Control-Allow-Headers", "Authorization, Content-Type, Last-Event-ID");
    res.setHeader("Access-Control-Max-Age", "600");
    res.setHeader("Vary", "Origin");
  } else {
    RouteMatch m = matchRoute(req.method, req.path);
    req.params = std::move(m.params);
    if (m.route == nullptr) {
      if (m.status == 405) {
        res.setHeader("Allow", m.allow);
      }
      res.setError(m.status, errorText(m.status));
    } else if (m.route->run_on == RunOn::EventStream) {
      res = feed.open(req);
    } else if (m.route->run_on == RunOn::Inline) {
      runHandler(ctx, m.route->handler, req, res);
    } else {
      HandlerFn fn = m.route->handler;
      auto shared = std::make_shared<Request>(std::move(req));
      bool queued = workers->submit([this, fn, shared, respond, start] {
        Response r;
        runHandler(ctx, fn, *shared, r);
        finish(*shared, r, start);
        respond(std::move(r));
      });
      if (queued) {
        return;
      }
      busy->inc();
      req = std::move(*shared);
      res.setHeader("Retry-After", "1");
      res.setError(503, "the server is busy");
    }
  }
  finish(req, res, start);
  respond(std::move(res));
}

HttpServer::HttpServer(const HttpConfig& config, const pipeline::ReadModel& read_model,
                       pipeline::CommandSink& commands, core::MetricsRegistry& metrics,
                       const std::string& db_path, std::function<nlohmann::json()> health)
    : impl_(std::make_unique<Impl>(config, read_model, commands, metrics, db_path,
                                   std::move(health))) {
  impl_->registerMetrics();
}

HttpServer::~HttpServer() {
  stop();
}

void HttpServer::setConfigControl(
    std::function<nlohmann::json()> versions,
    std::function<std::pair<int, nlohmann::json>(const std::string&, const std::string&)>
        rollback) {
  impl_->ctx.config_versions = std::move(versions);
  impl_->ctx.config_rollback = std::move(rollback);
}

void HttpServer::start() {
  Impl& m = *impl_;
  if (m.running) {
    return;
  }
  struct sigaction old {};
  if (sigaction(SIGPIPE, nullptr, &old) == 0 && old.sa_handler == SIG_DFL) {
    signal(SIGPIPE, SIG_IGN);
  }
  m.workers = std::make_unique<WorkerPool>(m.config.threads, m.config.max_queued_requests);
  // The feed first: it starts from the read model as it is now, so a stream (which can open as
  // soon as the listener runs) misses nothing pushed between its opening and the feed's start.
  m.feed.start();
  try {
    m.listener->start();
  } catch (...) {
    m.feed.stop();
    m.workers->stop();
    throw;
  }
  m.running = true;
  spdlog::info("http: listening on {}:{} (tokens: {})", m.config.bind, m.listener->port(),
               !m.policy.tokensConfigured() ? "none, read-only to local clients"
               : !m.policy.operatorConfigured() ? "viewer only, no operator actions"
                                                : "viewer and operator");
}

void HttpServer::stop() {
  Impl& m = *impl_;
  if (!m.running) {
    return;
  }
  m.running = false;
  m.feed.stop();
  // Workers first: what they answer after the listener stopped would go nowhere anyway, and
  // they must not outlive what they use.
  m.listener->stop();
  m.workers->stop();
}

int HttpServer::port() const {
  return impl_->listener->port();
}

} // namespace hgj::api
