#include "gateway/config/config.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <set>

#include "drivers/profiles/profile_loader.h"
#include "gateway/config/devices.h"

namespace hgj::config {

namespace fs = std::filesystem;

std::optional<Override> parseOverride(const std::string& text) {
  size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0) {
    return std::nullopt;
  }
  return Override{text.substr(0, eq), text.substr(eq + 1)};
}

std::string expandTemplate(const std::string& text, int64_t n, const std::string& parent) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] != '{') {
      out += text[i++];
      continue;
    }
    size_t close = text.find('}', i);
    if (close == std::string::npos) {
      out += text.substr(i);
      break;
    }
    std::string inner = text.substr(i + 1, close - i - 1);
    i = close + 1;
    if (inner == "parent") {
      out += parent;
      continue;
    }
    if (inner.empty() || inner[0] != 'n') {
      out += "{" + inner + "}";
      continue;
    }
    int64_t v = n;
    int width = 0;
    size_t pos = 1;
    if (pos < inner.size() && (inner[pos] == '+' || inner[pos] == '-')) {
      bool neg = inner[pos] == '-';
      ++pos;
      int64_t k = 0;
      while (pos < inner.size() && std::isdigit(static_cast<unsigned char>(inner[pos]))) {
        k = k * 10 + (inner[pos++] - '0');
      }
      v = neg ? v - k : v + k;
    }
    if (pos < inner.size() && inner[pos] == ':') {
      ++pos;
      while (pos < inner.size() && std::isdigit(static_cast<unsigned char>(inner[pos]))) {
        width = width * 10 + (inner[pos++] - '0');
      }
    }
    std::string digits = std::to_string(v < 0 ? -v : v);
    if (static_cast<int>(digits.size()) < width) {
      digits.insert(0, static_cast<size_t>(width) - digits.size(), '0');
    }
    out += (v < 0 ? "-" : "") + digits;
  }
  return out;
}

namespace {

bool validSiteId(const std::string& id) {
  return !id.empty() && id.size() <= 64 && std::all_of(id.begin(), id.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '-' || c == '_';
  });
}

std::string resolve(const std::string& base_file, const std::string& rel) {
  fs::path p(rel);
  if (p.is_absolute()) {
    return rel;
  }
  return (fs::path(base_file).parent_path() / p).lexically_normal().string();
}

YAML::Node sequenceItem(const YAML::Node& seq, const std::string& key) {
  for (const auto& item : seq) {
    if (item.IsMap() && item["id"] && item["id"].IsScalar() && item["id"].Scalar() == key) {
      return item;
    }
  }
  if (!key.empty() && key.size() < 6 &&
      std::all_of(key.begin(), key.end(), [](unsigned char c) { return std::isdigit(c); })) {
    size_t index = std::stoul(key);
    if (index < seq.size()) {
      return seq[index];
    }
  }
  return YAML::Node(YAML::NodeType::Undefined);
}

void applyOverrides(YAML::Node root, const std::vector<Override>& overrides,
                    core::Diagnostics& diag) {
  for (size_t i = 0; i < overrides.size(); ++i) {
    const Override& o = overrides[i];
    std::vector<std::string> parts;
    size_t start = 0;
    while (true) {
      size_t dot = o.key.find('.', start);
      parts.push_back(o.key.substr(start, dot == std::string::npos ? std::string::npos
                                                                   : dot - start));
      if (dot == std::string::npos) {
        break;
      }
      start = dot + 1;
    }
    if (std::any_of(parts.begin(), parts.end(), [](const auto& p) { return p.empty(); })) {
      diag.error({"--set", static_cast<int>(i + 1)}, o.key, "bad key path");
      continue;
    }
    YAML::Node value;
    try {
      value = YAML::Load(o.value);
    } catch (const YAML::Exception&) {
      value = YAML::Node(o.value);
    }
    if (!value.IsScalar() && !value.IsNull()) {
      diag.error({"--set", static_cast<int>(i + 1)}, o.key,
                 "--set takes a scalar value (got a list or mapping)");
      continue;
    }
    if (value.IsNull()) {
      value = YAML::Node(o.value);
    }
    // yaml-cpp's operator[] on a non-const node creates missing maps; walk with fresh handles
    // so that assignment replaces the leaf instead of aliasing nodes.
    std::vector<YAML::Node> chain{root};
    bool ok = true;
    for (size_t k = 0; k + 1 < parts.size(); ++k) {
      if (chain.back().IsSequence()) {
        // A list item by its `id` (modbus.lines.shed-bus.port) or its index (x.0.y).
        YAML::Node item = sequenceItem(chain.back(), parts[k]);
        if (!item.IsDefined() || !item.IsMap()) {
          diag.error({"--set", static_cast<int>(i + 1)}, o.key,
                     "no list item with id or index \"" + parts[k] + "\"");
          ok = false;
          break;
        }
        chain.push_back(item);
        continue;
      }
      YAML::Node next = chain.back()[parts[k]];
      if (next.IsDefined() && !next.IsNull() && !next.IsMap() && !next.IsSequence()) {
        diag.error({"--set", static_cast<int>(i + 1)}, o.key,
                   "\"" + parts[k] + "\" is not a mapping in the config");
        ok = false;
        break;
      }
      if (!next.IsDefined() || next.IsNull()) {
        chain.back()[parts[k]] = YAML::Node(YAML::NodeType::Map);
        next = chain.back()[parts[k]];
      }
      chain.push_back(next);
    }
    if (ok) {
      chain.back()[parts.back()] = value.Scalar();
    }
  }
}

void parseStaffList(const core::ConfigNode& list, std::vector<model::Staff>& out) {
  if (!list.defined()) {
    return;
  }
  if (!list.requireSeq()) {
    return;
  }
  for (const auto& s : list.items()) {
    if (!s.allowKeys({"name", "phone", "wecom_user", "dingtalk_mobile"})) {
      continue;
    }
    model::Staff st;
    st.name = s.requiredStr("name");
    st.phone = s.str("phone", "");
    st.wecom_user = s.str("wecom_user", "");
    st.dingtalk_mobile = s.str("dingtalk_mobile", st.phone);
    if (!st.phone.empty() &&
        !std::all_of(st.phone.begin(), st.phone.end(), [](unsigned char c) {
          return std::isdigit(c) || c == '+' || c == '-';
        })) {
      s.errorAt("phone", "expected a phone number of digits, got \"" + st.phone + "\"");
    }
    out.push_back(std::move(st));
  }
}

void parseGrids(const core::ConfigNode& root, model::Compound& compound) {
  if (!root.allowKeys({"grids"})) {
    return;
  }
  core::ConfigNode grids = root.child("grids");
  if (!grids.defined()) {
    root.errorAt("grids", "required (expected a list of grids, got nothing)");
    return;
  }
  if (!grids.requireSeq()) {
    return;
  }
  std::set<std::string> seen;
  for (const auto& g : grids.items()) {
    if (!g.allowKeys({"id", "name", "staff", "escalation", "channels"})) {
      continue;
    }
    model::Grid grid;
    grid.id = g.requiredStr("id");
    grid.name = g.str("name", grid.id);
    if (!grid.id.empty() && !seen.insert(grid.id).second) {
      g.errorAt("id", "duplicate grid id \"" + grid.id + "\"");
      continue;
    }
    parseStaffList(g.child("staff"), grid.staff);
    parseStaffList(g.child("escalation"), grid.escalation);
    if (grid.staff.empty()) {
      g.errorAt("staff", "a grid needs at least one staff member to alert");
    }
    grid.channels = g.strList("channels");
    compound.grids.push_back(std::move(grid));
  }
}

struct DeviceEntry {
  model::Device device;
  int ports = 0;
  core::ConfigNode node;
};

// An id that can be part of a display point name (free_<category>) and of a URL.
bool validCategoryId(const std::string& id) {
  return !id.empty() && id.size() <= 32 &&
         std::all_of(id.begin(), id.end(), [](unsigned char c) {
           return std::islower(c) != 0 || std::isdigit(c) != 0 || c == '_';
         });
}

void parseParking(const core::ConfigNode& n, model::Compound& compound) {
  if (!n.defined()) {
    return;
  }
  n.allowKeys({"title", "levels", "categories", "default_category"});
  compound.parking_title = n.str("title", compound.parking_title);
  core::ConfigNode levels = n.child("levels");
  if (levels.defined() && levels.requireSeq()) {
    for (const auto& l : levels.items()) {
      if (!l.allowKeys({"id", "name"})) {
        continue;
      }
      model::LevelInfo li{l.requiredStr("id"), ""};
      li.name = l.str("name", li.id);
      for (const auto& other : compound.levels) {
        if (other.id == li.id) {
          l.errorAt("id", "level \"" + li.id + "\" is named twice");
        }
      }
      compound.levels.push_back(std::move(li));
    }
  }
  core::ConfigNode cats = n.child("categories");
  if (cats.defined() && cats.requireSeq()) {
    std::vector<std::string> seen;
    for (const auto& c : cats.items()) {
      if (!c.allowKeys({"id", "name"})) {
        continue;
      }
      std::string id = c.requiredStr("id");
      if (id.empty()) {
        continue;
      }
      if (!validCategoryId(id)) {
        c.errorAt("id", "expected lower-case letters, digits or '_' (at most 32), got \"" + id +
                            "\"");
        continue;
      }
      if (std::find(seen.begin(), seen.end(), id) != seen.end()) {
        c.errorAt("id", "category \"" + id + "\" is defined twice");
        continue;
      }
      seen.push_back(id);
      int at = compound.categoryIndex(id);
      std::string name = c.str("name", at >= 0 ? compound.space_categories[at].name : id);
      if (at >= 0) {
        compound.space_categories[static_cast<size_t>(at)].name = name;
      } else {
        compound.space_categories.push_back({id, name});
      }
    }
  }
  compound.default_category = n.str("default_category", compound.default_category);
  if (compound.categoryIndex(compound.default_category) < 0) {
    std::string msg = "unknown category \"" + compound.default_category + "\"";
    if (auto m = core::closestMatch(compound.default_category, categoryIds(compound))) {
      msg += " (did you mean \"" + *m + "\"?)";
    }
    n.errorAt("default_category", msg);
    compound.default_category = "leased";
  }
}

void parseLog(const core::ConfigNode& n, LogConfig& c) {
  n.allowKeys({"level", "file", "max_size_mb", "max_files"});
  c.level = n.choice("level", "info", {"trace", "debug", "info", "warn", "error", "critical",
                                       "off"});
  c.file = n.filePath("file", "");
  c.max_size_mb = n.integer("max_size_mb", 10, 1, 10'000);
  c.max_files = n.integer("max_files", 5, 1, 100);
}

std::optional<core::ConfigNode> loadInclude(const core::ConfigNode& include,
                                            std::string_view key, const std::string& def,
                                            const std::string& main_file, core::Diagnostics& diag,
                                            std::string* path_out = nullptr) {
  std::string rel = include.str(key, def);
  std::string path = resolve(main_file, rel);
  if (path_out != nullptr) {
    *path_out = path;
  }
  if (!fs::exists(path)) {
    include.errorAt(key, "file not found: " + path);
    return std::nullopt;
  }
  return core::loadYamlFile(path, diag);
}

} // namespace

GatewayConfig loadConfig(const std::string& path, const std::vector<Override>& overrides,
                         core::Diagnostics& diag) {
  GatewayConfig cfg;
  cfg.path = path;
  cfg.compound = std::make_shared<model::Compound>();
  size_t first_problem = diag.problems().size();
  auto root_opt = core::loadYamlFile(path, diag);
  if (!root_opt) {
    return cfg;
  }
  applyOverrides(root_opt->yaml(), overrides, diag);
  const core::ConfigNode& root = *root_opt;
  root.allowKeys({"site", "include", "mqtt", "modbus", "storage", "http", "uplink", "log",
                  "pipeline", "parking", "history"});

  core::ConfigNode site = root.child("site");
  if (!site.defined()) {
    root.errorAt("site", "required (expected {id, name}, got nothing)");
  }
  site.allowKeys({"id", "name"});
  cfg.compound->site_id = site.requiredStr("id");
  if (!cfg.compound->site_id.empty() && !validSiteId(cfg.compound->site_id)) {
    site.errorAt("id", "expected letters, digits, '-' or '_' (it is part of MQTT topics), got \"" +
                           cfg.compound->site_id + "\"");
  }
  cfg.compound->site_name = site.str("name", cfg.compound->site_id);
  // Before the devices: their `category:` keys are checked against these.
  parseParking(root.child("parking"), *cfg.compound);

  core::ConfigNode include = root.child("include");
  include.allowKeys({"grids", "devices", "rules", "alerts", "profiles"});
  std::string profiles_dir = resolve(path, include.str("profiles", "profiles"));
  drivers::profiles::loadProfileDir(profiles_dir, *cfg.compound, diag);
  // Child profiles must exist before devices expand their ports.
  for (const auto& p : cfg.compound->profiles) {
    if (!p->child_profile.empty() && cfg.compound->profile(p->child_profile) == nullptr) {
      diag.error({p->source, 0}, "children.profile",
                 "child profile \"" + p->child_profile + "\" is not defined");
    }
  }

  if (auto grids = loadInclude(include, "grids", "grids.yaml", path, diag)) {
    parseGrids(*grids, *cfg.compound);
  }
  // Without grids (a missing or broken grids file, already reported) every device would be
  // reported again as "unknown grid"; device checks below skip that one problem then.
  if (auto devices = loadInclude(include, "devices", "devices.yaml", path, diag)) {
    parseDevices(*devices, *cfg.compound);
  }
  if (auto rules = loadInclude(include, "rules", "rules.yaml", path, diag, &cfg.rules_path)) {
    cfg.rules = rules::parseRulesConfig(*rules, *cfg.compound);
  }
  if (auto alerts = loadInclude(include, "alerts", "alerts.yaml", path, diag)) {
    alerts->allowKeys({"alerts"});
    cfg.alerts = alerts::parseAlertsConfig(alerts->child("alerts"), *cfg.compound);
  }

  cfg.mqtt = drivers::mqtt::parseMqttConfig(root.child("mqtt"), cfg.compound->site_id);
  storage::parseStorageConfig(root.child("storage"), cfg.storage);
  parseLog(root.child("log"), cfg.log);
  pipeline::parsePipelineConfig(root.child("pipeline"), cfg.pipeline);
  cfg.modbus = drivers::modbus::parseModbusConfig(root.child("modbus"));
  // Every Modbus device must be on a configured line.
  {
    std::vector<std::string> line_ids;
    for (const auto& l : cfg.modbus.lines) {
      line_ids.push_back(l.id);
    }
    for (const auto& d : cfg.compound->devices) {
      if (d.modbus.line.empty() || d.parent != model::kNoDevice ||
          cfg.modbus.line(d.modbus.line) != nullptr) {
        continue;
      }
      std::string msg = "device " + d.id + " is on Modbus line \"" + d.modbus.line +
                        "\", which modbus.lines does not define";
      if (auto m = core::closestMatch(d.modbus.line, line_ids)) {
        msg += " (did you mean \"" + *m + "\"?)";
      }
      auto colon = d.source.rfind(':');
      diag.error({d.source.substr(0, colon), std::atoi(d.source.c_str() + colon + 1)},
                 "modbus.line", msg);
    }
  }
  cfg.uplink = uplink::parseUplinkConfig(root.child("uplink"));
  cfg.http = api::parseHttpConfig(root.child("http"));
  cfg.history = history::parseHistoryConfig(root.child("history"));
  cfg.history.debounce = cfg.rules.occupancy.debounce;
  cfg.http.history_utc_offset_minutes = cfg.history.utc_offset_minutes;

  // A path given with --set is the command line's: relative to the working directory.
  for (const auto& o : overrides) {
    std::string* target = o.key == "storage.path" ? &cfg.storage.path
                          : o.key == "log.file"   ? &cfg.log.file
                                                  : nullptr;
    if (target != nullptr && o.value == ":memory:") {
      *target = o.value;
    } else if (target != nullptr && !o.value.empty()) {
      std::error_code ec;
      fs::path abs = fs::absolute(o.value, ec);
      *target = ec ? o.value : abs.lexically_normal().string();
    }
  }

  // A problem in a value that came from --set is reported at the override, not in the file.
  auto& problems = diag.mutableProblems();
  for (size_t i = first_problem; i < problems.size(); ++i) {
    for (size_t k = 0; k < overrides.size(); ++k) {
      const std::string& key = overrides[k].key;
      if (problems[i].key_path == key || problems[i].key_path.rfind(key + ".", 0) == 0) {
        problems[i].where = {"--set", static_cast<int>(k + 1)};
      }
    }
  }
  return cfg;
}

} // namespace hgj::config
