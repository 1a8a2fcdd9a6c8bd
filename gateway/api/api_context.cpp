#include "gateway/api/api_context.h"

#include <algorithm>
#include <future>

namespace hgj::api {

std::shared_ptr<const pipeline::Snapshot> ApiContext::snapshot(Response& res) const {
  auto s = read_model.current();
  if (!s || !s->compound) {
    res.setHeader("Retry-After", "1");
    res.setError(503, "no live state yet (the pipeline has not published a snapshot)");
    return nullptr;
  }
  return s;
}

std::optional<Json> ApiContext::jsonBody(const Request& req, Response& res,
                                         std::initializer_list<std::string_view> fields) const {
  if (req.header("content-type").rfind("application/json", 0) != 0) {
    res.setError(415, "expected Content-Type: application/json");
    return std::nullopt;
  }
  Json body = Json::parse(req.body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) {
    res.setError(400, "body must be a JSON object");
    return std::nullopt;
  }
  for (const auto& [key, v] : body.items()) {
    if (std::find(fields.begin(), fields.end(), key) == fields.end()) {
      std::string expected;
      for (std::string_view f : fields) {
        expected += (expected.empty() ? "" : ", ") + std::string(f);
      }
      res.setError(400, "unknown field \"" + key + "\" (expected " + expected + ")");
      return std::nullopt;
    }
  }
  return body;
}

std::optional<std::string> ApiContext::operatorName(const Json& body, Response& res,
                                                    const char* fallback) {
  auto by = body.find("by");
  if (by == body.end() && fallback != nullptr) {
    return std::string(fallback);
  }
  if (by == body.end() || !by->is_string() ||
      !validName(by->get<std::string>(), kMaxNameLength)) {
    res.setError(400, "\"by\" must be the operator's name (1..64 characters)");
    return std::nullopt;
  }
  return by->get<std::string>();
}

pipeline::Command ApiContext::command(pipeline::Command::Kind kind, const Request& req,
                                     std::string by) {
  pipeline::Command cmd;
  cmd.kind = kind;
  cmd.id = commandId();
  cmd.origin = "api";
  cmd.by = std::move(by);
  cmd.identity = std::string("api:") + roleName(req.role);
  return cmd;
}

void ApiContext::runCommand(pipeline::Command cmd, Response& res, const Json& extra) {
  std::future<pipeline::CommandResult> fut;
  try {
    fut = commands.submit(std::move(cmd));
  } catch (const std::exception& e) {
    error_log.warn("http: command submission failed: {}", core::printable(e.what()));
    res.setError(503, "the pipeline is not accepting commands");
    return;
  }
  if (fut.wait_for(config.command_timeout) != std::future_status::ready) {
    res.setError(504, "the pipeline did not answer in time");
    return;
  }
  pipeline::CommandResult r;
  try {
    r = fut.get();
  } catch (const std::exception& e) {
    error_log.warn("http: command failed: {}", core::printable(e.what()));
    res.setError(503, "the pipeline dropped the command");
    return;
  }
  if (!r.ok) {
    int status = r.http_status >= 400 && r.http_status <= 599 ? r.http_status : 409;
    res.setError(status, r.message.empty() ? errorText(status) : r.message);
    return;
  }
  Json out{{"ok", true}, {"message", r.message}};
  out.update(extra);
  res.setJson(r.http_status >= 200 && r.http_status < 300 ? r.http_status : 200, out);
}

} // namespace hgj::api
