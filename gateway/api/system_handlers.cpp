#include "gateway/api/handlers.h"

#include <fstream>
#include <sstream>

#include "gateway/api/static_assets.h"
#include "gateway/api/views.h"

namespace hgj::api {

namespace {

std::string statusText(const Json& health) {
  if (health.is_object() && health.contains("status") && health["status"].is_string()) {
    return health["status"].get<std::string>();
  }
  return "ok";
}

} // namespace

void getHealth(ApiContext& ctx, const Request&, Response& res) {
  Json j = Json::object();
  std::string status = "ok";
  if (ctx.health) {
    try {
      nlohmann::json h = ctx.health();
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
  auto s = ctx.read_model.current();
  j["status"] = status;
  j["api"] = Json{{"status", "ok"}, {"sse_clients", ctx.sse_clients()}};
  j["state"] =
      Json{{"version", s ? s->version : 0}, {"updated_at", timeOrNull(s ? s->updated_ms : 0)}};
  bool down = status == "down" || status == "error" || status == "failed";
  res.setJson(down ? 503 : 200, j);
}

void getMetrics(ApiContext& ctx, const Request&, Response& res) {
  res.status = 200;
  res.content_type = "text/plain; version=0.0.4; charset=utf-8";
  res.body = ctx.metrics.render();
}

void getStatic(ApiContext& ctx, const Request& req, Response& res) {
  std::string name = req.params.empty() ? "index.html" : req.params[0];
  if (!safeAssetName(name)) {
    res.setError(404, "not found");
    return;
  }
  if (!ctx.config.static_dir.empty()) {
    std::ifstream in(ctx.config.static_dir + "/" + name, std::ios::binary);
    if (!in) {
      res.setError(404, "not found");
      return;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    res.body = ss.str();
    res.content_type = contentTypeFor(name);
  } else {
    const StaticAsset* a = embeddedAsset(name);
    if (a == nullptr) {
      res.setError(404, "not found");
      return;
    }
    res.body = a->body;
    res.content_type = a->content_type;
  }
  res.status = 200;
  res.setHeader("Cache-Control", "no-cache");
  if (name.size() > 5 && name.substr(name.size() - 5) == ".html") {
    res.setHeader("Content-Security-Policy",
                  "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                  "script-src 'self'; connect-src 'self'; frame-ancestors 'none'");
  }
}

} // namespace hgj::api
