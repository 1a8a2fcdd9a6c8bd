#include "gateway/uplink/wire_format.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <variant>

#include "model/value.h"

namespace hgj::uplink {

namespace {

using nlohmann::json;

// Every payload sent upstream: strings that are not UTF-8 (a hostile command's id or bundle file
// name echoed in a refusal, a device's text value) come out with U+FFFD, never as an exception
// on the uplink thread (found by fuzz_uplink_command).
std::string dumpText(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

constexpr std::string_view kTbGatewayRpc = "v1/gateway/rpc";
constexpr std::string_view kTbDeviceRpcPrefix = "v1/devices/me/rpc/request/";
constexpr size_t kMaxIdChars = 128;
constexpr size_t kMaxNameChars = 256;

std::string sanitizeKey(std::string s) {
  for (char& c : s) {
    if (std::isalnum(static_cast<unsigned char>(c)) == 0 && c != '_' && c != '-') {
      c = '_';
    }
  }
  return s;
}

// Request ids may be numbers or strings; they are echoed in the answer.
std::optional<std::string> idText(const json& id) {
  if (id.is_string()) {
    std::string s = id.get<std::string>();
    if (s.empty() || s.size() > kMaxIdChars) {
      return std::nullopt;
    }
    return s;
  }
  if (id.is_number_integer()) {
    return std::to_string(id.get<int64_t>());
  }
  return std::nullopt;
}

json idJson(const std::string& id) {
  bool numeric = !id.empty() && id.size() < 18 &&
                 std::all_of(id.begin(), id.end(), [](unsigned char c) { return std::isdigit(c); });
  return numeric ? json(std::stoll(id)) : json(id);
}

ParsedCommand refuse(ParsedCommand p, int status, std::string reason) {
  p.ok = false;
  p.status = status;
  p.reason = std::move(reason);
  return p;
}

std::optional<std::string> shortString(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_string()) {
    return std::nullopt;
  }
  std::string s = it->get<std::string>();
  if (s.empty() || s.size() > kMaxNameChars) {
    return std::nullopt;
  }
  return s;
}

// Fills the command from method + arguments (the native message itself, or TB's params).
ParsedCommand buildCommand(ParsedCommand p, const json& args, const std::string& device_hint,
                           const std::vector<std::string>& allowed,
                           const config_push::BundleLimits* push_limits) {
  if (std::find(allowed.begin(), allowed.end(), p.method) == allowed.end() ||
      (p.method == "config_push" && push_limits == nullptr)) {
    if (p.method == "config_push") {
      return refuse(std::move(p), 403,
                    "unauthorized: config push is not enabled on this gateway "
                    "(uplink.config_push.enabled)");
    }
    if (p.method == "write" || p.method == "ack_alert" || p.method == "summary_now") {
      return refuse(std::move(p), 403,
                    "unauthorized: method \"" + p.method + "\" is not allowed on this gateway");
    }
    return refuse(std::move(p), 400, "unknown method \"" + p.method + "\"");
  }
  pipeline::Command& c = p.command;
  c.id = p.id;
  c.origin = "upstream";
  if (p.method == "write") {
    c.kind = pipeline::Command::Kind::WritePoint;
    auto device = device_hint.empty() ? shortString(args, "device") : device_hint;
    auto point = shortString(args, "point");
    if (!device) {
      return refuse(std::move(p), 400, "write needs a \"device\" string");
    }
    if (!point) {
      return refuse(std::move(p), 400, "write needs a \"point\" string");
    }
    auto v = args.find("value");
    if (v == args.end()) {
      return refuse(std::move(p), 400, "write needs a \"value\"");
    }
    auto value = model::fromJson(*v);
    if (!value || model::isEmpty(*value)) {
      return refuse(std::move(p), 400, "write \"value\" must be a boolean, number or string");
    }
    c.device = *device;
    c.point = *point;
    c.value = *value;
    auto ov = args.find("override");
    if (ov != args.end() && !ov->is_boolean()) {
      return refuse(std::move(p), 400, "\"override\" must be true or false");
    }
    c.override_safety = ov != args.end() && ov->get<bool>();
    c.by = shortString(args, "by").value_or("upstream");
  } else if (p.method == "ack_alert") {
    c.kind = pipeline::Command::Kind::AckAlert;
    auto a = args.find("alert_id");
    int64_t alert_id = 0;
    if (a != args.end() && a->is_number_integer()) {
      alert_id = a->get<int64_t>();
    } else if (a != args.end() && a->is_string()) {
      const std::string s = a->get<std::string>();
      if (!s.empty() && s.size() < 18 &&
          std::all_of(s.begin(), s.end(), [](unsigned char ch) { return std::isdigit(ch); })) {
        alert_id = std::stoll(s);
      }
    }
    if (alert_id <= 0) {
      return refuse(std::move(p), 400, "ack_alert needs a positive integer \"alert_id\"");
    }
    auto by = shortString(args, "by");
    if (!by) {
      return refuse(std::move(p), 400, "ack_alert needs \"by\" (who acknowledges)");
    }
    c.alert_id = alert_id;
    c.by = *by;
    c.note = shortString(args, "note").value_or("");
  } else if (p.method == "summary_now") {
    c.kind = pipeline::Command::Kind::SummaryNow;
    c.by = shortString(args, "by").value_or("upstream");
  } else if (p.method == "config_push") {
    auto parsed = config_push::parseBundle(args, *push_limits);
    if (auto* why = std::get_if<std::string>(&parsed)) {
      return refuse(std::move(p), 400, *why);
    }
    p.bundle = std::make_shared<config_push::ConfigBundle>(
        std::move(std::get<config_push::ConfigBundle>(parsed)));
    c.by = p.bundle->by;
  } else {
    return refuse(std::move(p), 400, "unknown method \"" + p.method + "\"");
  }
  p.ok = true;
  p.status = 200;
  return p;
}

} // namespace

WireFormat::WireFormat(Mode mode, std::string site_id) : mode_(mode), site_(std::move(site_id)) {}

std::string WireFormat::nativeTopic(std::string_view subtopic) const {
  std::string t = "hgj/";
  t += site_;
  t += '/';
  t += subtopic;
  return t;
}

std::vector<std::string> WireFormat::commandTopics() const {
  if (mode_ == Mode::ThingsBoard) {
    return {std::string(kTbGatewayRpc), std::string(kTbDeviceRpcPrefix) + "+"};
  }
  return {nativeTopic("cmd")};
}

void WireFormat::flatten(const std::string& prefix, const json& j, json& out) {
  auto join = [&](const std::string& key) { return prefix.empty() ? key : prefix + "_" + key; };
  if (j.is_object()) {
    for (const auto& [k, v] : j.items()) {
      flatten(join(sanitizeKey(k)), v, out);
    }
  } else if (j.is_array()) {
    for (size_t i = 0; i < j.size(); ++i) {
      const json& item = j[i];
      std::string key = std::to_string(i);
      json rest = item;
      if (item.is_object()) {
        for (const char* name : {"level", "zone", "category", "shed", "id", "space"}) {
          auto it = item.find(name);
          if (it != item.end() && it->is_string()) {
            key = it->get<std::string>();
            rest.erase(name);
            break;
          }
        }
      }
      flatten(join(sanitizeKey(key)), rest, out);
    }
  } else if (!prefix.empty()) {
    out[prefix] = j;
  }
}

void WireFormat::render(Kind kind, const std::string& subtopic, json body,
                        const std::string& msg_id, int64_t ts_ms, std::string& topic,
                        std::string& payload) const {
  if (!body.is_object()) {
    body = json{{"value", std::move(body)}};
  }
  if (mode_ == Mode::Native) {
    topic = nativeTopic(subtopic);
    body["msg_id"] = msg_id;
    body["ts"] = ts_ms;
    payload = dumpText(body);
    return;
  }
  switch (kind) {
  case Kind::Alert: {
    const auto dev = body.find("device");
    json values = json::object();
    for (const auto& [k, v] : body.items()) {
      if (k == "device") {
        continue;
      }
      if (v.is_primitive()) {
        values["alert_" + sanitizeKey(k)] = v;
      } else {
        values["alert_" + sanitizeKey(k)] = dumpText(v);
      }
    }
    json entry = {{"ts", ts_ms}, {"values", std::move(values)}};
    if (dev != body.end() && dev->is_string() && !dev->get<std::string>().empty()) {
      topic = "v1/gateway/telemetry";
      payload = dumpText(json{{dev->get<std::string>(), json::array({std::move(entry)})}});
    } else {
      topic = "v1/devices/me/telemetry";
      payload = dumpText(entry);
    }
    return;
  }
  case Kind::Telemetry: {
    // {"readings":[{"device","point","value","ts"}]} -> {"dev":[{"ts":..,"values":{..}}]}
    std::map<std::string, std::map<int64_t, json>> grouped;
    if (auto r = body.find("readings"); r != body.end() && r->is_array()) {
      for (const auto& reading : *r) {
        if (!reading.is_object() || !reading.contains("device") || !reading.contains("point")) {
          continue;
        }
        int64_t ts = reading.value("ts", ts_ms);
        json& values = grouped[reading["device"].get<std::string>()][ts];
        if (values.is_null()) {
          values = json::object();
        }
        values[reading["point"].get<std::string>()] = reading.value("value", json());
      }
    }
    json out = json::object();
    for (auto& [dev, by_ts] : grouped) {
      json arr = json::array();
      for (auto& [ts, values] : by_ts) {
        arr.push_back({{"ts", ts}, {"values", std::move(values)}});
      }
      out[dev] = std::move(arr);
    }
    topic = "v1/gateway/telemetry";
    payload = dumpText(out);
    return;
  }
  case Kind::Summary:
  case Kind::Status:
  case Kind::CmdResult: {
    // "summary/parking" -> parking_*; the gateway device stands for the compound.
    std::string prefix = subtopic;
    if (prefix.rfind("summary/", 0) == 0) {
      prefix = prefix.substr(8);
    }
    json values = json::object();
    flatten(sanitizeKey(prefix), body, values);
    topic = "v1/devices/me/telemetry";
    payload = dumpText(json{{"ts", ts_ms}, {"values", std::move(values)}});
    return;
  }
  }
}

size_t commandByteLimit(const config_push::BundleLimits* limits) {
  return limits == nullptr ? kMaxCommandBytes : kMaxCommandBytes + 2 * limits->max_bytes;
}

ParsedCommand parseCommand(const WireFormat& format, const std::string& topic,
                           std::string_view payload, const std::vector<std::string>& allowed,
                           const config_push::BundleLimits* push_limits) {
  ParsedCommand p;
  if (format.mode() == Mode::ThingsBoard) {
    p.route = topic == kTbGatewayRpc ? ParsedCommand::Route::TbGatewayRpc
                                     : ParsedCommand::Route::TbDeviceRpc;
    if (p.route == ParsedCommand::Route::TbDeviceRpc) {
      if (topic.rfind(kTbDeviceRpcPrefix, 0) != 0) {
        return refuse(std::move(p), 400, "unexpected topic " + topic.substr(0, 200));
      }
      p.tb_request_id = topic.substr(kTbDeviceRpcPrefix.size());
      if (p.tb_request_id.empty() || p.tb_request_id.size() > kMaxIdChars ||
          p.tb_request_id.find('/') != std::string::npos) {
        p.tb_request_id.clear();
        return refuse(std::move(p), 400, "bad rpc request id in topic");
      }
      p.id = p.tb_request_id;
    }
  }
  const size_t max_bytes = commandByteLimit(push_limits);
  if (payload.size() > max_bytes) {
    return refuse(std::move(p), 413, "command too large (" + std::to_string(payload.size()) +
                                         " bytes, at most " + std::to_string(max_bytes) + ")");
  }
  json j = json::parse(payload, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return refuse(std::move(p), 400, "malformed command: expected a JSON object");
  }
  const json* args = &j;
  std::string device_hint;
  if (p.route == ParsedCommand::Route::TbGatewayRpc) {
    auto dev = shortString(j, "device");
    auto data = j.find("data");
    if (dev) {
      p.tb_device = *dev;
    }
    if (data == j.end() || !data->is_object()) {
      return refuse(std::move(p), 400, "gateway rpc needs a \"data\" object");
    }
    if (!data->contains("method") && data->contains("success")) {
      p.is_response = true;
      return refuse(std::move(p), 400, "an rpc response, not a request");
    }
    if (auto id = data->find("id"); id != data->end()) {
      p.id = idText(*id).value_or("");
    }
    if (!dev) {
      return refuse(std::move(p), 400, "gateway rpc needs a \"device\" string");
    }
    device_hint = *dev;
    auto method = shortString(*data, "method");
    if (!method) {
      return refuse(std::move(p), 400, "rpc needs a \"method\" string");
    }
    p.method = *method;
    static const json kEmpty = json::object();
    auto params = data->find("params");
    args = params != data->end() && params->is_object() ? &*params : &kEmpty;
  } else if (p.route == ParsedCommand::Route::TbDeviceRpc) {
    auto method = shortString(j, "method");
    if (!method) {
      return refuse(std::move(p), 400, "rpc needs a \"method\" string");
    }
    p.method = *method;
    static const json kEmpty = json::object();
    auto params = j.find("params");
    args = params != j.end() && params->is_object() ? &*params : &kEmpty;
  } else {
    auto id = j.find("id");
    if (id == j.end() || !idText(*id)) {
      return refuse(std::move(p), 400,
                    "command needs an \"id\" (string or integer, at most 128 characters)");
    }
    p.id = *idText(*id);
    auto method = shortString(j, "method");
    if (!method) {
      return refuse(std::move(p), 400, "command needs a \"method\" string");
    }
    p.method = *method;
  }
  if (p.id.empty()) {
    return refuse(std::move(p), 400, "command needs an \"id\"");
  }
  return buildCommand(std::move(p), *args, device_hint, allowed, push_limits);
}

void renderCommandResult(const WireFormat& format, const ParsedCommand& cmd, bool ok, int status,
                         const std::string& message, const std::string& msg_id, int64_t ts_ms,
                         std::string& topic, std::string& payload) {
  json result = {{"ok", ok}, {"status", status}};
  result[ok ? "message" : "reason"] = message;
  switch (cmd.route) {
  case ParsedCommand::Route::Native:
    result["id"] = cmd.id.empty() ? json(nullptr) : idJson(cmd.id);
    result["method"] = cmd.method;
    result["msg_id"] = msg_id;
    result["ts"] = ts_ms;
    topic = format.nativeTopic("cmd/result");
    payload = dumpText(result);
    return;
  case ParsedCommand::Route::TbGatewayRpc: {
    json data = {{"success", ok}, {"status", status}};
    data[ok ? "message" : "reason"] = message;
    topic = std::string(kTbGatewayRpc);
    payload = dumpText(
        json{{"device", cmd.tb_device}, {"id", idJson(cmd.id)}, {"data", std::move(data)}});
    return;
  }
  case ParsedCommand::Route::TbDeviceRpc: {
    json data = {{"success", ok}, {"status", status}};
    data[ok ? "message" : "reason"] = message;
    topic = "v1/devices/me/rpc/response/" + cmd.tb_request_id;
    payload = dumpText(data);
    return;
  }
  }
}

} // namespace hgj::uplink
