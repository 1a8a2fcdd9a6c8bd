#include "gateway/api/http_server.h"

#include <httplib.h>
#include <signal.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <future>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "core/log.h"
#include "core/time_format.h"
#include "gateway/api/alert_store.h"
#include "gateway/api/auth.h"
#include "gateway/api/static_assets.h"
#include "gateway/api/views.h"

namespace hgj::api {

namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kMaxIdLength = 128;
constexpr size_t kMaxByLength = 64;
constexpr size_t kMaxNoteLength = 500;
constexpr int kMaxAlertLimit = 1000;
// How long one event-stream step waits for new events before checking for shutdown, snapshot
// changes and the heartbeat.
constexpr auto kSseStep = std::chrono::milliseconds(400);
// Snapshot-changed events are sent at most this often per stream.
constexpr auto kSseSnapshotEvery = std::chrono::milliseconds(1000);

thread_local Clock::time_point t_request_start{};

const char* reasonFor(int status) {
  switch (status) {
  case 400:
    return "bad request";
  case 401:
    return "unauthorized";
  case 403:
    return "forbidden";
  case 404:
    return "not found";
  case 405:
    return "method not allowed";
  case 408:
    return "request timeout";
  case 413:
    return "request body too large";
  case 414:
    return "request uri too long";
  case 415:
    return "unsupported media type";
  case 503:
    return "service unavailable";
  case 504:
    return "timed out";
  default:
    return status >= 500 ? "internal error" : "error";
  }
}

void setJson(httplib::Response& res, int status, const Json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                  "application/json; charset=utf-8");
}

void setError(httplib::Response& res, int status, const std::string& message) {
  setJson(res, status, Json{{"error", message}, {"status", status}});
}

bool validName(const std::string& s, size_t max_len) {
  if (s.empty() || s.size() > max_len) {
    return false;
  }
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) {
      return false;
    }
  }
  return true;
}

std::optional<uint64_t> parseUnsigned(const std::string& s) {
  if (s.empty() || s.size() > 18) {
    return std::nullopt;
  }
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  return v;
}

bool isApiPath(const std::string& path) {
  return path.rfind("/api/", 0) == 0 || path == "/healthz" || path == "/metrics";
}

// A request path as it may appear in the log: decoded paths can hold control characters that
// would forge log lines, and their length is the client's choice.
std::string printable(const std::string& s) {
  std::string out;
  for (unsigned char c : s.substr(0, 200)) {
    out += (c < 0x20 || c == 0x7f) ? '?' : static_cast<char>(c);
  }
  return out;
}

std::string singleLine(std::string data) {
  for (char& c : data) {
    if (c == '\n' || c == '\r') {
      c = ' ';
    }
  }
  return data;
}

// One "space" event per id of a "spaces" event (a JSON array of device ids).
std::string spaceEvents(const std::shared_ptr<const pipeline::Snapshot>& snap, uint64_t seq,
                        const std::string& ids_json) {
  auto ids = nlohmann::json::parse(ids_json, nullptr, false);
  if (!snap || !snap->compound || !ids.is_array()) {
    return "id: " + std::to_string(seq) + "\nevent: spaces\ndata: " + singleLine(ids_json) + "\n\n";
  }
  std::string out;
  for (const auto& id : ids) {
    if (!id.is_string()) {
      continue;
    }
    const model::Device* d = snap->compound->device(id.get<std::string>());
    if (d == nullptr) {
      continue;
    }
    const pipeline::PointView* p = pointOf(*snap, *d, "occupied");
    Json j{{"id", d->id},
           {"level", d->location.level},
           {"zone", d->location.zone},
           {"state", spaceState(*snap, *d)},
           {"since", timeOrNull(p != nullptr ? p->since_ms : 0)}};
    out += "id: " + std::to_string(seq) + "\nevent: space\ndata: " + j.dump() + "\n\n";
  }
  return out;
}

std::string statusText(const Json& health) {
  if (health.is_object() && health.contains("status") && health["status"].is_string()) {
    return health["status"].get<std::string>();
  }
  return "ok";
}

} // namespace

struct HttpServer::Impl {
  Impl(const HttpConfig& c, const pipeline::ReadModel& rm, pipeline::CommandSink& cs,
       core::MetricsRegistry& m, const std::string& db_path, std::function<nlohmann::json()> h)
      : config(c), read_model(rm), commands(cs), metrics(m),
        alerts(std::make_shared<AlertStore>(db_path)), health(std::move(h)), policy(c),
        sse_clients(std::make_shared<std::atomic<int>>(0)) {}

  HttpConfig config;
  const pipeline::ReadModel& read_model;
  pipeline::CommandSink& commands;
  core::MetricsRegistry& metrics;
  std::shared_ptr<AlertStore> alerts;
  std::function<nlohmann::json()> health;
  AccessPolicy policy;
  httplib::Server server;
  std::thread listener;
  std::atomic<bool> running{false};
  std::atomic<bool> stopping{false};
  std::shared_ptr<std::atomic<int>> sse_clients;
  std::atomic<uint64_t> next_command{0};
  int bound_port = 0;
  core::RateLimitedLog reject_log;
  mutable core::RateLimitedLog error_log;
  core::Histogram* latency = nullptr;
  /// Request counters of the usual status codes, looked up once (the registry takes a lock).
  std::map<int, core::Counter*> by_status;

  void registerMetrics();
  void routes();
  httplib::Server::HandlerResponse guard(const httplib::Request& req, httplib::Response& res);
  void reject(httplib::Response& res, int status, const std::string& reason,
              const std::string& message, const httplib::Request& req);
  std::shared_ptr<const pipeline::Snapshot> snapshot(httplib::Response& res) const;

  void serveStatic(const std::string& name, httplib::Response& res) const;
  void getParking(httplib::Response& res) const;
  void getSpaces(const httplib::Request& req, httplib::Response& res) const;
  void getDevices(const httplib::Request& req, httplib::Response& res) const;
  void getDevice(const std::string& id, httplib::Response& res) const;
  void getAlerts(const httplib::Request& req, httplib::Response& res) const;
  void postAck(const httplib::Request& req, httplib::Response& res);
  void postWrite(const httplib::Request& req, httplib::Response& res);
  void getEvents(const httplib::Request& req, httplib::Response& res);
  void getHealth(httplib::Response& res) const;
  void runCommand(pipeline::Command cmd, httplib::Response& res, const Json& extra);
  std::optional<Json> jsonBody(const httplib::Request& req, httplib::Response& res);
};

void HttpServer::Impl::registerMetrics() {
  metrics.gaugeFn("process_resident_memory_bytes", "Resident memory size in bytes.",
                  [] { return core::processResidentBytes(); });
  // The callbacks keep what they read alive: the registry may outlive this server.
  std::shared_ptr<AlertStore> store = alerts;
  for (const char* state : {"active", "acked", "cleared"}) {
    metrics.gaugeFn("hgj_alerts_by_state", "Alerts in the database by lifecycle state.",
                    [store, s = std::string(state)] {
                      auto counts = store->countByState();
                      auto it = counts.find(s);
                      return it == counts.end() ? 0.0 : static_cast<double>(it->second);
                    },
                    {{"state", state}});
  }
  auto clients = sse_clients;
  metrics.gaugeFn("hgj_http_sse_clients", "Open server-sent event streams.",
                  [clients] { return static_cast<double>(clients->load()); });
  for (int code : {200, 204, 304, 400, 401, 403, 404, 405, 409, 413, 415, 500, 503, 504}) {
    by_status[code] = &metrics.counter("hgj_http_requests_total",
                                       "HTTP requests answered, by status code.",
                                       {{"code", std::to_string(code)}});
  }
  latency = &metrics.histogram("hgj_http_request_duration_seconds",
                               "Time to handle an HTTP request (event streams excluded).",
                               {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5});
}

void HttpServer::Impl::reject(httplib::Response& res, int status, const std::string& reason,
                              const std::string& message, const httplib::Request& req) {
  metrics
      .counter("hgj_http_rejected_total", "HTTP requests refused by the access rules.",
               {{"reason", reason}})
      .inc();
  // Security-relevant, so logged; only method, path and peer (never headers, query or body,
  // which may hold a token).
  reject_log.warn("http: refused {} {} from {}: {}", req.method, printable(req.path),
                  req.remote_addr, message);
  setError(res, status, message);
}

httplib::Server::HandlerResponse HttpServer::Impl::guard(const httplib::Request& req,
                                                         httplib::Response& res) {
  using HR = httplib::Server::HandlerResponse;
  t_request_start = Clock::now();
  std::string host = req.get_header_value("Host");
  if (!policy.hostAllowed(host)) {
    reject(res, 400, "bad_host", "host not allowed", req);
    return HR::Handled;
  }
  std::string origin = req.get_header_value("Origin");
  if (req.method == "OPTIONS") {
    if (!origin.empty() && policy.corsListed(origin) && isApiPath(req.path)) {
      res.status = 204;
      res.set_header("Access-Control-Allow-Origin", origin);
      res.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
      res.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type, Last-Event-ID");
      res.set_header("Access-Control-Max-Age", "600");
      res.set_header("Vary", "Origin");
      return HR::Handled;
    }
    reject(res, 403, "cross_origin", "cross-origin request not allowed", req);
    return HR::Handled;
  }
  bool is_read = req.method == "GET" || req.method == "HEAD";
  // A browser sends Origin with every cross-site POST; a page elsewhere must not act with the
  // operator's session, even on an open loopback server.
  if (!is_read && !origin.empty() && !policy.originAllowed(origin, host)) {
    reject(res, 403, "cross_origin", "cross-origin request not allowed", req);
    return HR::Handled;
  }
  if (!is_read && req.get_header_value("Sec-Fetch-Site") == "cross-site" &&
      !policy.corsListed(origin)) {
    reject(res, 403, "cross_origin", "cross-origin request not allowed", req);
    return HR::Handled;
  }
  if (!isApiPath(req.path)) {
    return HR::Unhandled; // dashboard files carry no data
  }
  std::string token = bearerToken(req.get_header_value("Authorization"));
  if (token.empty() && req.path == "/api/v1/events") {
    // EventSource cannot set headers; the dashboard passes the token in the query instead.
    token = req.get_param_value("access_token");
  }
  switch (policy.check(token, !is_read)) {
  case Access::Allow:
    return HR::Unhandled;
  case Access::Unauthorized:
    res.set_header("WWW-Authenticate", "Bearer realm=\"hgj-gateway\"");
    reject(res, 401, "unauthorized",
           token.empty() ? "missing bearer token" : "invalid bearer token", req);
    return HR::Handled;
  case Access::Forbidden:
    reject(res, 403, "forbidden", "operator token required", req);
    return HR::Handled;
  }
  return HR::Unhandled;
}

std::shared_ptr<const pipeline::Snapshot> HttpServer::Impl::snapshot(httplib::Response& res) const {
  auto s = read_model.current();
  if (!s || !s->compound) {
    res.set_header("Retry-After", "1");
    setError(res, 503, "no live state yet (the pipeline has not published a snapshot)");
    return nullptr;
  }
  return s;
}

void HttpServer::Impl::serveStatic(const std::string& name, httplib::Response& res) const {
  if (!safeAssetName(name)) {
    setError(res, 404, "not found");
    return;
  }
  if (!config.static_dir.empty()) {
    std::ifstream in(config.static_dir + "/" + name, std::ios::binary);
    if (!in) {
      setError(res, 404, "not found");
      return;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    res.set_content(ss.str(), contentTypeFor(name));
  } else {
    const StaticAsset* a = embeddedAsset(name);
    if (a == nullptr) {
      setError(res, 404, "not found");
      return;
    }
    res.set_content(a->body, a->content_type);
  }
  res.set_header("Cache-Control", "no-cache");
  if (name.size() > 5 && name.substr(name.size() - 5) == ".html") {
    res.set_header("Content-Security-Policy",
                   "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                   "script-src 'self'; connect-src 'self'; frame-ancestors 'none'");
  }
}

void HttpServer::Impl::getParking(httplib::Response& res) const {
  if (auto s = snapshot(res)) {
    setJson(res, 200, parkingView(*s));
  }
}

void HttpServer::Impl::getSpaces(const httplib::Request& req, httplib::Response& res) const {
  std::string level = req.get_param_value("level");
  std::string zone = req.get_param_value("zone");
  if ((req.has_param("level") && !validName(level, 32)) ||
      (req.has_param("zone") && !validName(zone, 32))) {
    setError(res, 400, "level and zone must be short names such as B1 and A");
    return;
  }
  auto s = snapshot(res);
  if (!s) {
    return;
  }
  if (!level.empty()) {
    bool known = false;
    for (const auto& l : s->levels) {
      if (l.level == level) {
        known = true;
        for (const auto& z : l.zones) {
          known = zone.empty() || z.zone == zone;
          if (known) {
            break;
          }
        }
      }
    }
    if (!known) {
      setError(res, 404, "unknown level or zone");
      return;
    }
  }
  setJson(res, 200, spacesView(*s, level, zone));
}

void HttpServer::Impl::getDevices(const httplib::Request& req, httplib::Response& res) const {
  DeviceFilter f;
  f.type = req.get_param_value("type");
  f.grid = req.get_param_value("grid");
  if (req.has_param("online")) {
    std::string o = req.get_param_value("online");
    if (o == "true" || o == "1") {
      f.online = true;
    } else if (o == "false" || o == "0") {
      f.online = false;
    } else {
      setError(res, 400, "online must be true or false");
      return;
    }
  }
  if (f.type.size() > 64 || f.grid.size() > 64) {
    setError(res, 400, "filter too long");
    return;
  }
  if (auto s = snapshot(res)) {
    setJson(res, 200, devicesView(*s, f));
  }
}

void HttpServer::Impl::getDevice(const std::string& id, httplib::Response& res) const {
  if (!validName(id, kMaxIdLength)) {
    setError(res, 400, "bad device id");
    return;
  }
  auto s = snapshot(res);
  if (!s) {
    return;
  }
  auto j = deviceView(*s, id);
  if (!j) {
    setError(res, 404, "unknown device \"" + id + "\"");
    return;
  }
  setJson(res, 200, *j);
}

void HttpServer::Impl::getAlerts(const httplib::Request& req, httplib::Response& res) const {
  AlertQuery q;
  q.state = req.get_param_value("state");
  if (!q.state.empty() && q.state != "active" && q.state != "acked" && q.state != "cleared") {
    setError(res, 400, "state must be active, acked or cleared");
    return;
  }
  if (req.has_param("state") && q.state.empty()) {
    setError(res, 400, "state must be active, acked or cleared");
    return;
  }
  if (req.has_param("limit")) {
    auto l = parseUnsigned(req.get_param_value("limit"));
    if (!l || *l < 1 || *l > static_cast<uint64_t>(kMaxAlertLimit)) {
      setError(res, 400, "limit must be 1.." + std::to_string(kMaxAlertLimit));
      return;
    }
    q.limit = static_cast<int>(*l);
  }
  q.device = req.get_param_value("device");
  q.grid = req.get_param_value("grid");
  if (q.device.size() > kMaxIdLength || q.grid.size() > 64) {
    setError(res, 400, "filter too long");
    return;
  }
  std::string error;
  auto list = alerts->list(q, &error);
  if (!list) {
    error_log.warn("http: alerts unavailable: {}", error);
    res.set_header("Retry-After", "5");
    setError(res, 503, "alerts unavailable: " + error);
    return;
  }
  // Where the device is, for the dashboard and for people reading the JSON.
  auto s = read_model.current();
  for (auto& a : *list) {
    const model::Device* d =
        (s && s->compound) ? s->compound->device(a["device"].get<std::string>()) : nullptr;
    a["location"] = d != nullptr ? d->location.text() : std::string();
  }
  setJson(res, 200, *list);
}

std::optional<Json> HttpServer::Impl::jsonBody(const httplib::Request& req,
                                               httplib::Response& res) {
  std::string ct = req.get_header_value("Content-Type");
  if (ct.rfind("application/json", 0) != 0) {
    setError(res, 415, "expected Content-Type: application/json");
    return std::nullopt;
  }
  Json body = Json::parse(req.body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) {
    setError(res, 400, "body must be a JSON object");
    return std::nullopt;
  }
  return body;
}

void HttpServer::Impl::runCommand(pipeline::Command cmd, httplib::Response& res,
                                  const Json& extra) {
  std::future<pipeline::CommandResult> fut;
  try {
    fut = commands.submit(std::move(cmd));
  } catch (const std::exception& e) {
    error_log.warn("http: command submission failed: {}", e.what());
    setError(res, 503, "the pipeline is not accepting commands");
    return;
  }
  if (fut.wait_for(config.command_timeout) != std::future_status::ready) {
    setError(res, 504, "the pipeline did not answer in time");
    return;
  }
  pipeline::CommandResult r;
  try {
    r = fut.get();
  } catch (const std::exception& e) {
    error_log.warn("http: command failed: {}", e.what());
    setError(res, 503, "the pipeline dropped the command");
    return;
  }
  if (!r.ok) {
    int status = r.http_status >= 400 && r.http_status <= 599 ? r.http_status : 409;
    setError(res, status, r.message.empty() ? reasonFor(status) : r.message);
    return;
  }
  Json out{{"ok", true}, {"message", r.message}};
  out.update(extra);
  setJson(res, r.http_status >= 200 && r.http_status < 300 ? r.http_status : 200, out);
}

void HttpServer::Impl::postAck(const httplib::Request& req, httplib::Response& res) {
  auto id = parseUnsigned(req.matches[1]);
  if (!id || *id == 0) {
    setError(res, 400, "alert id must be a positive integer");
    return;
  }
  auto body = jsonBody(req, res);
  if (!body) {
    return;
  }
  for (const auto& [key, v] : body->items()) {
    if (key != "by" && key != "note") {
      setError(res, 400, "unknown field \"" + key + "\" (expected by, note)");
      return;
    }
  }
  if (!body->contains("by") || !(*body)["by"].is_string() ||
      !validName((*body)["by"].get<std::string>(), kMaxByLength)) {
    setError(res, 400, "\"by\" must be the operator's name (1..64 characters)");
    return;
  }
  std::string note;
  if (body->contains("note") && !(*body)["note"].is_null()) {
    if (!(*body)["note"].is_string() ||
        (*body)["note"].get<std::string>().size() > kMaxNoteLength) {
      setError(res, 400, "\"note\" must be a text of at most 500 bytes");
      return;
    }
    note = (*body)["note"].get<std::string>();
  }
  pipeline::Command cmd;
  cmd.kind = pipeline::Command::Kind::AckAlert;
  cmd.id = "api-" + std::to_string(++next_command);
  cmd.origin = "api";
  cmd.by = (*body)["by"].get<std::string>();
  cmd.alert_id = static_cast<int64_t>(*id);
  cmd.note = note;
  runCommand(std::move(cmd), res, Json{{"id", *id}});
  if (res.status == 200) {
    // Answer with the alert as stored after the ack, when the store already shows it.
    auto row = alerts->get(static_cast<int64_t>(*id), nullptr);
    if (row && !row->is_null()) {
      Json out = Json::parse(res.body);
      out["alert"] = *row;
      setJson(res, 200, out);
    }
  }
}

void HttpServer::Impl::postWrite(const httplib::Request& req, httplib::Response& res) {
  std::string device_id = req.matches[1];
  std::string point_name = req.matches[2];
  if (!validName(device_id, kMaxIdLength) || !validName(point_name, 64)) {
    setError(res, 400, "bad device or point name");
    return;
  }
  auto body = jsonBody(req, res);
  if (!body) {
    return;
  }
  for (const auto& [key, v] : body->items()) {
    if (key != "value" && key != "by" && key != "override_safety") {
      setError(res, 400, "unknown field \"" + key + "\" (expected value, by, override_safety)");
      return;
    }
  }
  auto s = snapshot(res);
  if (!s) {
    return;
  }
  const model::Device* d = s->compound->device(device_id);
  if (d == nullptr) {
    setError(res, 404, "unknown device \"" + device_id + "\"");
    return;
  }
  const model::PointDef* def = d->profile->point(point_name);
  if (def == nullptr) {
    setError(res, 404, "device " + device_id + " has no point \"" + point_name + "\"");
    return;
  }
  if (!def->writable) {
    setError(res, 403, "point " + device_id + "." + point_name + " is not writable");
    return;
  }
  if (!body->contains("value")) {
    setError(res, 400, "\"value\" is required");
    return;
  }
  auto raw = model::fromJson(nlohmann::json::parse((*body)["value"].dump()));
  std::optional<model::Value> value;
  if (raw) {
    value = model::coerce(*raw, def->type);
  }
  if (!value) {
    setError(res, 400, std::string("\"value\" must be a ") + model::pointTypeName(def->type));
    return;
  }
  if (auto n = model::asNumber(*value); n && def->type == model::PointType::Number) {
    if ((def->min && *n < *def->min) || (def->max && *n > *def->max)) {
      setError(res, 400, "\"value\" out of range for " + device_id + "." + point_name);
      return;
    }
  }
  std::string by = "api";
  if (body->contains("by")) {
    if (!(*body)["by"].is_string() || !validName((*body)["by"].get<std::string>(), kMaxByLength)) {
      setError(res, 400, "\"by\" must be the operator's name (1..64 characters)");
      return;
    }
    by = (*body)["by"].get<std::string>();
  }
  bool override_safety = false;
  if (body->contains("override_safety")) {
    if (!(*body)["override_safety"].is_boolean()) {
      setError(res, 400, "\"override_safety\" must be true or false");
      return;
    }
    override_safety = (*body)["override_safety"].get<bool>();
  }
  pipeline::Command cmd;
  cmd.kind = pipeline::Command::Kind::WritePoint;
  cmd.id = "api-" + std::to_string(++next_command);
  cmd.origin = "api";
  // Writes pass the operator check: the identity is the role of the token used.
  cmd.identity = policy.tokensConfigured() ? "api:operator" : "api:loopback-open";
  cmd.by = by;
  cmd.device = device_id;
  cmd.point = point_name;
  cmd.value = *value;
  cmd.override_safety = override_safety;
  runCommand(std::move(cmd), res,
             Json{{"device", device_id}, {"point", point_name}, {"value", model::toJson(*value)}});
}

void HttpServer::Impl::getEvents(const httplib::Request& req, httplib::Response& res) {
  if (sse_clients->fetch_add(1) >= config.sse_max_clients) {
    sse_clients->fetch_sub(1);
    res.set_header("Retry-After", "5");
    setError(res, 503, "too many event streams open");
    return;
  }
  struct Stream {
    uint64_t after = 0;
    bool resync = false;
    uint64_t version = 0;
    Clock::time_point last_write{};
    Clock::time_point last_snapshot_event{};
    bool started = false;
  };
  auto st = std::make_shared<Stream>();
  std::string last = req.get_header_value("Last-Event-ID");
  if (last.empty()) {
    last = req.get_param_value("after");
  }
  uint64_t head = read_model.lastSeq();
  if (auto n = parseUnsigned(last)) {
    st->after = *n;
    if (*n > head) {
      // From an earlier run of the daemon (sequence restarted): the client must refetch.
      st->after = head;
      st->resync = true;
    }
  } else {
    st->after = head;
  }
  if (auto s = read_model.current()) {
    st->version = s->version;
  }
  res.set_header("Cache-Control", "no-store");
  res.set_header("X-Accel-Buffering", "no");
  auto clients = sse_clients;
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, st](size_t, httplib::DataSink& sink) {
        if (stopping) {
          sink.done();
          return true;
        }
        std::string out;
        if (!st->started) {
          st->started = true;
          out += "retry: 2000\n: connected\n\n";
          if (st->resync) {
            out += "event: resync\ndata: {}\n\n";
          }
        } else {
          bool gap = false;
          auto asked = Clock::now();
          auto events = read_model.eventsAfter(st->after, kSseStep, &gap);
          if (events.empty() && Clock::now() - asked < kSseStep / 2) {
            // Nothing new yet an early return: the read model was closed (daemon shutting
            // down). End the stream instead of spinning.
            sink.done();
            return true;
          }
          if (gap) {
            out += "event: resync\ndata: {}\n\n";
          }
          std::shared_ptr<const pipeline::Snapshot> snap;
          for (const auto& e : events) {
            st->after = e.seq;
            if (e.type == "snapshot") {
              continue; // replaced by this stream's own, throttled snapshot events below
            }
            if (e.type == "spaces") {
              // The pipeline names the spaces that changed; clients get each one's new state
              // from the snapshot published with the event.
              if (!snap) {
                snap = read_model.current();
              }
              out += spaceEvents(snap, e.seq, e.json);
              continue;
            }
            out += "id: " + std::to_string(e.seq) + "\nevent: " + e.type +
                   "\ndata: " + singleLine(e.json) + "\n\n";
          }
        }
        auto now = Clock::now();
        if (now - st->last_snapshot_event >= kSseSnapshotEvery) {
          if (auto s = read_model.current(); s && s->version != st->version) {
            st->version = s->version;
            st->last_snapshot_event = now;
            out += "event: snapshot\ndata: " +
                   Json{{"version", s->version}, {"updated_at", timeOrNull(s->updated_ms)}}.dump() +
                   "\n\n";
          }
        }
        if (out.empty() && now - st->last_write >= config.sse_heartbeat) {
          out = ": ping\n\n";
        }
        if (!out.empty()) {
          st->last_write = now;
          return sink.write(out.data(), out.size());
        }
        return true;
      },
      [clients](bool) { clients->fetch_sub(1); });
}

void HttpServer::Impl::getHealth(httplib::Response& res) const {
  Json j = Json::object();
  std::string status = "ok";
  if (health) {
    try {
      nlohmann::json h = health();
      j = Json::parse(h.dump());
      status = statusText(j);
    } catch (const std::exception& e) {
      status = "down";
      j["error"] = std::string("health check failed: ") + e.what();
    }
  }
  if (!j.is_object()) {
    j = Json{{"value", j}};
  }
  auto s = read_model.current();
  j["status"] = status;
  j["api"] = Json{{"status", "ok"}, {"sse_clients", sse_clients->load()}};
  j["state"] =
      Json{{"version", s ? s->version : 0}, {"updated_at", timeOrNull(s ? s->updated_ms : 0)}};
  bool down = status == "down" || status == "error" || status == "failed";
  setJson(res, down ? 503 : 200, j);
}

void HttpServer::Impl::routes() {
  auto& s = server;
  s.Get("/", [this](const httplib::Request&, httplib::Response& res) {
    serveStatic("index.html", res);
  });
  s.Get(R"(/([A-Za-z0-9_.-]+\.(?:html|js|css|svg|png|ico|json|webmanifest)))",
        [this](const httplib::Request& req, httplib::Response& res) {
          serveStatic(req.matches[1], res);
        });
  s.Get("/api/v1/parking",
        [this](const httplib::Request&, httplib::Response& res) { getParking(res); });
  s.Get("/api/v1/parking/spaces",
        [this](const httplib::Request& req, httplib::Response& res) { getSpaces(req, res); });
  s.Get("/api/v1/devices",
        [this](const httplib::Request& req, httplib::Response& res) { getDevices(req, res); });
  // Child ids contain a slash (S03/P07): taken literally or as S03%2FP07.
  s.Get(R"(/api/v1/devices/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
    getDevice(req.matches[1], res);
  });
  s.Get("/api/v1/ev", [this](const httplib::Request&, httplib::Response& res) {
    if (auto snap = snapshot(res)) {
      setJson(res, 200, evView(*snap));
    }
  });
  s.Get("/api/v1/ebike", [this](const httplib::Request&, httplib::Response& res) {
    if (auto snap = snapshot(res)) {
      setJson(res, 200, ebikeView(*snap));
    }
  });
  s.Get("/api/v1/alerts",
        [this](const httplib::Request& req, httplib::Response& res) { getAlerts(req, res); });
  s.Post(R"(/api/v1/alerts/([^/]+)/ack)",
         [this](const httplib::Request& req, httplib::Response& res) { postAck(req, res); });
  s.Post(R"(/api/v1/devices/(.+)/points/([^/]+))",
         [this](const httplib::Request& req, httplib::Response& res) { postWrite(req, res); });
  s.Get("/api/v1/events",
        [this](const httplib::Request& req, httplib::Response& res) { getEvents(req, res); });
  s.Get("/healthz", [this](const httplib::Request&, httplib::Response& res) { getHealth(res); });
  s.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics.render(), "text/plain; version=0.0.4; charset=utf-8");
  });

  s.set_pre_routing_handler(
      [this](const httplib::Request& req, httplib::Response& res) { return guard(req, res); });
  s.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    // Every error is JSON; handlers that set their own body keep it.
    if (res.body.empty() && !res.is_chunked_content_provider_) {
      setError(res, res.status, reasonFor(res.status));
    }
  });
  s.set_exception_handler(
      [this](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown";
        try {
          if (ep) {
            std::rethrow_exception(ep);
          }
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        error_log.warn("http: {} {} failed: {}", req.method, printable(req.path), what);
        setError(res, 500, "internal error");
      });
  s.set_post_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    res.set_header("X-Content-Type-Options", "nosniff");
    res.set_header("Referrer-Policy", "no-referrer");
    res.set_header("X-Frame-Options", "DENY");
    if (isApiPath(req.path) && !res.has_header("Cache-Control")) {
      res.set_header("Cache-Control", "no-store");
    }
    std::string origin = req.get_header_value("Origin");
    if (!origin.empty() && policy.corsListed(origin) && isApiPath(req.path)) {
      res.set_header("Access-Control-Allow-Origin", origin);
      res.set_header("Vary", "Origin");
    }
  });
  s.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    auto it = by_status.find(res.status);
    if (it != by_status.end()) {
      it->second->inc();
    } else {
      metrics
          .counter("hgj_http_requests_total", "HTTP requests answered, by status code.",
                   {{"code", std::to_string(res.status)}})
          .inc();
    }
    if (req.path != "/api/v1/events" && t_request_start != Clock::time_point{}) {
      latency->observe(std::chrono::duration<double>(Clock::now() - t_request_start).count());
    }
    t_request_start = {};
    // Path only: the query may carry an access token.
    spdlog::debug("http: {} {} -> {}", req.method, printable(req.path), res.status);
  });
}

HttpServer::HttpServer(const HttpConfig& config, const pipeline::ReadModel& read_model,
                       pipeline::CommandSink& commands, core::MetricsRegistry& metrics,
                       const std::string& db_path, std::function<nlohmann::json()> health)
    : impl_(std::make_unique<Impl>(config, read_model, commands, metrics, db_path,
                                   std::move(health))) {
  impl_->registerMetrics();
  impl_->routes();
}

HttpServer::~HttpServer() {
  stop();
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
  auto seconds = [](std::chrono::milliseconds d) {
    return std::make_pair(static_cast<time_t>(d.count() / 1000),
                          static_cast<time_t>((d.count() % 1000) * 1000));
  };
  int threads = m.config.threads;
  m.server.new_task_queue = [threads] {
    return new httplib::ThreadPool(static_cast<size_t>(threads));
  };
  auto [rs, ru] = seconds(m.config.read_timeout);
  m.server.set_read_timeout(rs, ru);
  auto [ws, wu] = seconds(m.config.write_timeout);
  m.server.set_write_timeout(ws, wu);
  m.server.set_keep_alive_timeout(
      static_cast<time_t>(std::max<int64_t>(1, m.config.keep_alive_timeout.count() / 1000)));
  m.server.set_payload_max_length(m.config.max_body_bytes);
  // cpp-httplib's default sets SO_REUSEPORT, which lets a second daemon bind the same port and
  // silently share its traffic; SO_REUSEADDR alone still allows a quick restart.
  m.server.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  errno = 0;
  int port = 0;
  if (m.config.port == 0) {
    port = m.server.bind_to_any_port(m.config.bind);
  } else if (m.server.bind_to_port(m.config.bind, m.config.port)) {
    port = m.config.port;
  } else {
    port = -1;
  }
  if (port <= 0) {
    int err = errno;
    throw std::runtime_error("http: cannot listen on " + m.config.bind + ":" +
                             std::to_string(m.config.port) + ": " +
                             (err != 0 ? std::strerror(err) : "bind failed") +
                             " (is another process using the port? see http.bind, http.port)");
  }
  m.bound_port = port;
  m.stopping = false;
  m.listener = std::thread([&m] {
    try {
      m.server.listen_after_bind();
    } catch (const std::exception& e) {
      spdlog::error("http: server stopped: {}", e.what());
    }
  });
  // stop() is a no-op until the accept loop runs, so wait for it (bounded).
  auto deadline = Clock::now() + std::chrono::seconds(5);
  while (!m.server.is_running() && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  m.running = true;
  spdlog::info("http: listening on {}:{} ({} threads, tokens {})", m.config.bind, port, threads,
               m.policy.tokensConfigured() ? "required" : "not configured, loopback only");
}

void HttpServer::stop() {
  Impl& m = *impl_;
  if (!m.running.exchange(false)) {
    return;
  }
  m.stopping = true;
  m.server.stop();
  if (m.listener.joinable()) {
    m.listener.join();
  }
}

int HttpServer::port() const {
  return impl_->bound_port;
}

} // namespace hgj::api
