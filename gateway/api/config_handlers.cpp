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
  auto body = ctx.jsonBody(req, res, {"by"});
  if (!body) {
    return;
  }
  auto by = ApiContext::operatorName(*body, res);
  if (!by) {
    return;
  }
  // The audit records who was authenticated (the token's role); "by" is the operator's claim.
  auto [status, answer] = ctx.config_rollback(*by,
                                              std::string("api:") + roleName(req.role));
  if (status >= 400) {
    res.setError(status, answer.value("error", std::string("rollback refused")));
    return;
  }
  res.setJson(status, answer);
}

} // namespace hgj::api
