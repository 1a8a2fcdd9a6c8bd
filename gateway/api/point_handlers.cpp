#include "gateway/api/handlers.h"

namespace hgj::api {

void postWrite(ApiContext& ctx, const Request& req, Response& res) {
  const std::string& device_id = req.params.at(0);
  const std::string& point_name = req.params.at(1);
  if (!validName(device_id, kMaxIdLength) || !validName(point_name, kMaxNameLength)) {
    res.setError(400, "bad device or point name");
    return;
  }
  auto body = ctx.jsonBody(req, res, {"value", "by", "override_safety"});
  if (!body) {
    return;
  }
  auto s = ctx.snapshot(res);
  if (!s) {
    return;
  }
  const model::Device* d = s->compound->device(device_id);
  if (d == nullptr) {
    res.setError(404, "unknown device \"" + device_id + "\"");
    return;
  }
  const model::PointDef* def = d->profile->point(point_name);
  if (def == nullptr) {
    res.setError(404, "device " + device_id + " has no point \"" + point_name + "\"");
    return;
  }
  if (!def->writable) {
    res.setError(403, "point " + device_id + "." + point_name + " is not writable");
    return;
  }
  if (!body->contains("value")) {
    res.setError(400, "\"value\" is required");
    return;
  }
  auto raw = model::fromJson(nlohmann::json::parse((*body)["value"].dump()));
  std::optional<model::Value> value;
  if (raw) {
    value = model::coerce(*raw, def->type);
  }
  if (!value) {
    res.setError(400, std::string("\"value\" must be a ") + model::pointTypeName(def->type));
    return;
  }
  if (auto n = model::asNumber(*value); n && def->type == model::PointType::Number) {
    if ((def->min && *n < *def->min) || (def->max && *n > *def->max)) {
      res.setError(400, "\"value\" out of range for " + device_id + "." + point_name);
      return;
    }
  }
  const auto by = ApiContext::operatorName(*body, res, "api");
  if (!by) {
    return;
  }
  bool override_safety = false;
  if (body->contains("override_safety")) {
    if (!(*body)["override_safety"].is_boolean()) {
      res.setError(400, "\"override_safety\" must be true or false");
      return;
    }
    override_safety = (*body)["override_safety"].get<bool>();
  }
  // The audit trail records who was authenticated (the token's role), not the free-text "by".
  pipeline::Command cmd = ctx.command(pipeline::Command::Kind::WritePoint, req, *by);
  cmd.device = device_id;
  cmd.point = point_name;
  cmd.value = *value;
  cmd.override_safety = override_safety;
  ctx.runCommand(std::move(cmd), res,
                 Json{{"device", device_id}, {"point", point_name}, {"value", model::toJson(*value)}});
}

} // namespace hgj::api
