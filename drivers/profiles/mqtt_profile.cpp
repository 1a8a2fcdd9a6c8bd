#include "drivers/profiles/mqtt_profile.h"

namespace hgj::drivers::profiles {

std::vector<std::string> splitPath(std::string_view path) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= path.size()) {
    size_t dot = path.find('.', start);
    if (dot == std::string_view::npos) {
      dot = path.size();
    }
    out.emplace_back(path.substr(start, dot - start));
    start = dot + 1;
  }
  return out;
}

std::optional<TopicTemplate> TopicTemplate::parse(std::string_view text, std::string* error) {
  TopicTemplate t;
  t.text_ = std::string(text);
  if (text.empty()) {
    *error = "empty topic template";
    return std::nullopt;
  }
  size_t start = 0;
  while (start <= text.size()) {
    size_t slash = text.find('/', start);
    if (slash == std::string_view::npos) {
      slash = text.size();
    }
    std::string_view level = text.substr(start, slash - start);
    if (level.find_first_of("+#") != std::string_view::npos) {
      *error = "wildcards are not allowed in a topic template; use {name} variables (got \"" +
               std::string(text) + "\")";
      return std::nullopt;
    }
    Level l;
    if (level.size() >= 2 && level.front() == '{' && level.back() == '}') {
      l.is_var = true;
      l.literal = std::string(level.substr(1, level.size() - 2));
      if (l.literal.empty() || l.literal.find_first_of("{}") != std::string::npos) {
        *error = "bad variable \"" + std::string(level) + "\" in topic template";
        return std::nullopt;
      }
      for (const auto& n : t.var_names_) {
        if (n == l.literal) {
          *error = "variable {" + n + "} appears twice in topic template";
          return std::nullopt;
        }
      }
      t.var_names_.push_back(l.literal);
    } else {
      if (level.find_first_of("{}") != std::string_view::npos) {
        *error = "a variable must fill a whole topic level (got \"" + std::string(level) + "\")";
        return std::nullopt;
      }
      l.literal = std::string(level);
    }
    t.levels_.push_back(std::move(l));
    start = slash + 1;
  }
  return t;
}

bool TopicTemplate::match(std::string_view topic, std::vector<std::string_view>& values) const {
  values.clear();
  size_t start = 0;
  for (size_t i = 0; i < levels_.size(); ++i) {
    if (start > topic.size()) {
      return false;
    }
    size_t slash = topic.find('/', start);
    if (slash == std::string_view::npos) {
      slash = topic.size();
    }
    std::string_view level = topic.substr(start, slash - start);
    const Level& l = levels_[i];
    if (l.is_var) {
      if (level.empty()) {
        return false;
      }
      values.push_back(level);
    } else if (level != l.literal) {
      return false;
    }
    start = slash + 1;
  }
  return start == topic.size() + 1;
}

std::string TopicTemplate::filter() const {
  std::string out;
  for (size_t i = 0; i < levels_.size(); ++i) {
    if (i > 0) {
      out += '/';
    }
    out += levels_[i].is_var ? "+" : levels_[i].literal;
  }
  return out;
}

std::string TopicTemplate::expand(const std::vector<std::pair<std::string, std::string>>& vars) const {
  std::string out;
  for (size_t i = 0; i < levels_.size(); ++i) {
    if (i > 0) {
      out += '/';
    }
    if (!levels_[i].is_var) {
      out += levels_[i].literal;
      continue;
    }
    for (const auto& [k, v] : vars) {
      if (k == levels_[i].literal) {
        out += v;
        break;
      }
    }
  }
  return out;
}

int TopicTemplate::variable(std::string_view name) const {
  for (size_t i = 0; i < var_names_.size(); ++i) {
    if (var_names_[i] == name) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

namespace {

std::optional<DeviceIdTemplate> parseDeviceTemplate(const std::string& text,
                                                    const TopicTemplate& topic,
                                                    std::string* error) {
  DeviceIdTemplate t;
  size_t i = 0;
  while (i < text.size()) {
    size_t open = text.find('{', i);
    if (open == std::string::npos) {
      t.parts.emplace_back(false, text.substr(i));
      break;
    }
    if (open > i) {
      t.parts.emplace_back(false, text.substr(i, open - i));
    }
    size_t close = text.find('}', open);
    if (close == std::string::npos) {
      *error = "unclosed { in device template \"" + text + "\"";
      return std::nullopt;
    }
    std::string name = text.substr(open + 1, close - open - 1);
    int pos = topic.variable(name);
    if (pos < 0) {
      *error = "device template uses {" + name + "}, which the topic \"" + topic.text() +
               "\" does not have";
      return std::nullopt;
    }
    t.parts.emplace_back(true, name);
    t.var_positions.push_back(pos);
    i = close + 1;
  }
  if (t.var_positions.empty()) {
    *error = "device template \"" + text + "\" has no topic variable";
    return std::nullopt;
  }
  return t;
}

} // namespace

bool parseMqttSpec(const core::ConfigNode& section, model::Compound& compound,
                   model::Profile& profile) {
  if (!section.allowKeys({"topics", "command", "refresh"})) {
    return false;
  }
  auto spec = std::make_shared<MqttSpec>();
  bool ok = true;
  core::ConfigNode topics = section.child("topics");
  if (!topics.defined()) {
    section.errorAt("topics", "required (expected a list of topic mappings, got nothing)");
    return false;
  }
  if (!topics.requireSeq()) {
    return false;
  }
  for (const auto& t : topics.items()) {
    if (!t.allowKeys({"topic", "device", "device_field", "points", "timestamp",
                      "timestamp_format"})) {
      ok = false;
      continue;
    }
    TopicSpec ts;
    std::string err;
    std::string topic_text = t.requiredStr("topic");
    auto tt = TopicTemplate::parse(topic_text, &err);
    if (!tt) {
      t.errorAt("topic", err);
      ok = false;
      continue;
    }
    ts.topic = *tt;
    ts.device_field = t.str("device_field", "");
    if (!ts.device_field.empty()) {
      ts.device_field_parts = splitPath(ts.device_field);
    } else {
      std::string dev = t.str("device", "{device}");
      auto dt = parseDeviceTemplate(dev, ts.topic, &err);
      if (!dt) {
        t.errorAt("device", err);
        ok = false;
        continue;
      }
      ts.device = *dt;
    }
    core::ConfigNode points = t.child("points");
    if (!points.defined() || !points.requireMap()) {
      if (!points.defined()) {
        t.errorAt("points", "required (expected a mapping of point: json.path, got nothing)");
      }
      ok = false;
      continue;
    }
    for (const auto& [name, path_node] : points.entries()) {
      const model::PointDef* pd = profile.point(name);
      if (pd == nullptr) {
        std::vector<std::string> names;
        for (const auto& p : profile.points) {
          names.push_back(p.name);
        }
        std::string msg = "point \"" + name + "\" is not defined in the profile's points";
        if (auto m = core::closestMatch(name, names)) {
          msg += " (did you mean \"" + *m + "\"?)";
        }
        path_node.error(msg);
        ok = false;
        continue;
      }
      std::optional<std::string> path;
      FieldMapping fm;
      if (path_node.isMap()) {
        if (!path_node.allowKeys({"path", "map"})) {
          ok = false;
          continue;
        }
        path = path_node.requiredStr("path");
        core::ConfigNode map = path_node.child("map");
        if (map.defined() && map.requireMap()) {
          for (const auto& [from, to] : map.entries()) {
            auto t = to.asStr();
            if (!t) {
              to.error("expected a text value");
              continue;
            }
            fm.value_map.emplace_back(from, *t);
          }
        }
      } else {
        path = path_node.asStr();
      }
      if (!path || path->empty()) {
        path_node.error("expected a JSON path such as \"temp_c\" or \"object.occupied\"");
        ok = false;
        continue;
      }
      fm.path = *path;
      fm.path_parts = splitPath(*path);
      fm.point = pd->id;
      fm.type = pd->type;
      ts.fields.push_back(std::move(fm));
    }
    ts.timestamp_path = t.str("timestamp", "");
    if (!ts.timestamp_path.empty()) {
      ts.timestamp_parts = splitPath(ts.timestamp_path);
    }
    std::string fmt = t.choice("timestamp_format", "unix_ms", {"unix_ms", "unix_s", "rfc3339"});
    ts.timestamp_format = fmt == "unix_s"    ? TimestampFormat::UnixS
                          : fmt == "rfc3339" ? TimestampFormat::Rfc3339
                                             : TimestampFormat::UnixMs;
    spec->topics.push_back(std::move(ts));
  }
  core::ConfigNode cmd = section.child("command");
  if (cmd.defined() && cmd.allowKeys({"topic", "id_field", "confirm_timeout"})) {
    std::string err;
    auto tt = TopicTemplate::parse(cmd.requiredStr("topic"), &err);
    if (!tt) {
      cmd.errorAt("topic", err);
      ok = false;
    } else {
      for (const auto& v : tt->variables()) {
        if (v != "device" && v != "parent" && v != "child") {
          cmd.errorAt("topic", "command topics may use {device}, {parent} and {child}, got {" +
                                   v + "}");
          ok = false;
        }
      }
      CommandSpec cs;
      cs.topic = *tt;
      cs.id_field = cmd.str("id_field", "id");
      cs.confirm_timeout_ms =
          cmd.duration("confirm_timeout", std::chrono::seconds(10), std::chrono::milliseconds(100),
                       std::chrono::minutes(10))
              .count();
      spec->command = std::move(cs);
    }
  }
  core::ConfigNode refresh = section.child("refresh");
  if (refresh.defined() && refresh.allowKeys({"topic", "payload"})) {
    std::string err;
    auto tt = TopicTemplate::parse(refresh.requiredStr("topic"), &err);
    if (!tt) {
      refresh.errorAt("topic", err);
      ok = false;
    } else {
      bool vars_ok = true;
      for (const auto& v : tt->variables()) {
        if (v != "device" && v != "parent" && v != "child") {
          refresh.errorAt("topic", "refresh topics may use {device}, {parent} and {child}, got {" +
                                       v + "}");
          vars_ok = false;
        }
      }
      ok = ok && vars_ok;
      RefreshSpec rs;
      rs.topic = *tt;
      rs.payload = refresh.str("payload", "{}");
      spec->refresh = std::move(rs);
    }
  }
  (void)compound;
  profile.mqtt = spec;
  return ok;
}

} // namespace hgj::drivers::profiles
