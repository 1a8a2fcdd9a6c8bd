#include "gateway/api/handlers.h"

namespace hgj::api {

void getConfigVersions(ApiContext& ctx, const Request& /*req*/, Response& res) {
  if (!ctx.config_versions) {
    // A server without remote configuration (the API fixture): nothing pushed, nothing active.
    res.setJson(200, nlohmann::json{{"active", 0},
                                    {"enabled", false},
                                    {"trial", nullptr},
                                    {"versions", nlohmann::json::array()},
                                    {"events", nlohmann::json::array()}});
    return;
  }
  res.setJson(200, ctx.config_versions());
}

void postConfigRollback(ApiContext& ctx, const Request& req, Response& res) {
  if (!ctx.config_rollback) {
    res.setError(404, "remote configuration is not available");
    return;
  }
  auto body = ctx.jsonBody(req, res);
  if (!body) {
    return;
  }
  for (const auto& [key, v] : body->items()) {
    if (key != "by") {
      res.setError(400, "unknown field \"" + key + "\" (expected by)");
      return;
    }
  }
  auto by = body->find("by");
  if (by == body->end() || !by->is_string() ||
      !validName(by->get<std::string>(), kMaxNameLength)) {
    res.setError(400, "\"by\" must be the operator's name (1..64 characters)");
    return;
  }
  // The audit records who was authenticated (the token's role); "by" is the operator's claim.
  auto [status, answer] = ctx.config_rollback(by->get<std::string>(),
                                              std::string("api:") + roleName(req.role));
  if (status >= 400) {
    res.setError(status, answer.value("error", std::string("rollback refused")));
    return;
  }
  res.setJson(status, answer);
}

} // namespace hgj::api
