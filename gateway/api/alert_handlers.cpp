#include "gateway/api/handlers.h"

namespace hgj::api {

namespace {

constexpr size_t kMaxNoteLength = 500;
constexpr int kMaxAlertLimit = 1000;

} // namespace

void getAlerts(ApiContext& ctx, const Request& req, Response& res) {
  AlertQuery q;
  auto state = req.param("state");
  if (state && *state != "active" && *state != "acked" && *state != "cleared") {
    res.setError(400, "state must be active, acked or cleared");
    return;
  }
  q.state = state.value_or("");
  if (auto limit = req.param("limit")) {
    auto l = parseUnsigned(*limit);
    if (!l || *l < 1 || *l > static_cast<uint64_t>(kMaxAlertLimit)) {
      res.setError(400, "limit must be 1.." + std::to_string(kMaxAlertLimit));
      return;
    }
    q.limit = static_cast<int>(*l);
  }
  q.device = req.paramOr("device");
  q.grid = req.paramOr("grid");
  if (q.device.size() > kMaxIdLength || q.grid.size() > kMaxNameLength) {
    res.setError(400, "filter too long");
    return;
  }
  std::string error;
  auto list = ctx.alerts->list(q, &error);
  if (!list) {
    ctx.error_log.warn("http: alerts unavailable: {}", core::printable(error));
    res.setHeader("Retry-After", "5");
    res.setError(503, "alerts unavailable: " + error);
    return;
  }
  // Where the device is, for the dashboard and for people reading the JSON.
  auto s = ctx.read_model.current();
  for (auto& a : *list) {
    const model::Device* d =
        (s && s->compound) ? s->compound->device(a["device"].get<std::string>()) : nullptr;
    a["location"] = d != nullptr ? d->location.text() : std::string();
  }
  res.setJson(200, *list);
}

void postAck(ApiContext& ctx, const Request& req, Response& res) {
  auto id = parseUnsigned(req.params.at(0));
  if (!id || *id == 0) {
    res.setError(400, "alert id must be a positive integer");
    return;
  }
  auto body = ctx.jsonBody(req, res, {"by", "note"});
  if (!body) {
    return;
  }
  auto by = ApiContext::operatorName(*body, res);
  if (!by) {
    return;
  }
  std::string note;
  if (body->contains("note") && !(*body)["note"].is_null()) {
    if (!(*body)["note"].is_string() ||
        (*body)["note"].get<std::string>().size() > kMaxNoteLength) {
      res.setError(400, "\"note\" must be a text of at most 500 bytes");
      return;
    }
    note = (*body)["note"].get<std::string>();
  }
  pipeline::Command cmd = ctx.command(pipeline::Command::Kind::AckAlert, req, *by);
  cmd.alert_id = static_cast<int64_t>(*id);
  cmd.note = note;
  ctx.runCommand(std::move(cmd), res, Json{{"id", *id}});
  if (res.status == 200) {
    // Answer with the alert as stored after the ack, when the store already shows it.
    auto row = ctx.alerts->get(static_cast<int64_t>(*id), nullptr);
    if (row && !row->is_null()) {
      Json out = Json::parse(res.body, nullptr, false);
      if (out.is_object()) {
        out["alert"] = *row;
        res.setJson(200, out);
      }
    }
  }
}

} // namespace hgj::api
