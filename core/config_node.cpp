#include "core/config_node.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <sys/stat.h>

namespace hgj::core {

std::string ConfigProblem::format() const {
  std::string out = where.file + ":" + std::to_string(where.line) + ": ";
  if (!key_path.empty()) {
    out += key_path + ": ";
  }
  out += message;
  return out;
}

void Diagnostics::error(const SourceLocation& where, std::string key_path, std::string message) {
  problems_.push_back({where, std::move(key_path), std::move(message)});
}

std::vector<std::string> exposedSecretWarnings(const Diagnostics& diag) {
  std::vector<std::string> out;
  for (const auto& s : diag.secrets()) {
    struct stat st {};
    if (::stat(s.file.c_str(), &st) != 0 || (st.st_mode & S_IROTH) == 0) {
      continue;
    }
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    std::string what = s.inline_value ? "the secret is inline in " : "the secret file ";
    out.push_back(ConfigProblem{s.where, s.key_path,
                                "warning: " + what + s.file + ", which any user can read (mode " +
                                    mode + "); chmod o-rwx " + s.file +
                                    (s.inline_value ? ", or move the secret to " + s.key_path +
                                                          "_file"
                                                    : std::string())}
                      .format());
  }
  return out;
}

std::string Diagnostics::format() const {
  std::vector<ConfigProblem> sorted = problems_;
  std::stable_sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
    return std::tie(a.where.file, a.where.line) < std::tie(b.where.file, b.where.line);
  });
  std::string out;
  for (const auto& p : sorted) {
    out += p.format();
    out += '\n';
  }
  return out;
}

ConfigError::ConfigError(Diagnostics diag)
    : std::runtime_error(diag.format()), diag_(std::move(diag)) {}

namespace {

size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) {
    prev[j] = j;
  }
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string describe(const YAML::Node& n) {
  if (!n.IsDefined() || n.IsNull()) {
    return "nothing";
  }
  if (n.IsMap()) {
    return "a mapping";
  }
  if (n.IsSequence()) {
    return "a list";
  }
  std::string s = n.Scalar();
  if (s.size() > 40) {
    s = s.substr(0, 37) + "...";
  }
  return "\"" + s + "\"";
}

} // namespace

std::optional<std::string> closestMatch(std::string_view word,
                                        const std::vector<std::string>& candidates) {
  std::optional<std::string> best;
  size_t best_d = std::max<size_t>(2, word.size() / 3) + 1;
  for (const auto& c : candidates) {
    size_t d = editDistance(word, c);
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  return best;
}

ConfigNode::ConfigNode(YAML::Node node, std::shared_ptr<const std::string> file, std::string path,
                       Diagnostics* diag)
    : node_(std::move(node)), file_(std::move(file)), path_(std::move(path)), diag_(diag) {}

SourceLocation ConfigNode::location() const {
  int line = 0;
  if (node_.IsDefined()) {
    auto mark = node_.Mark();
    if (mark.line >= 0) {
      line = mark.line + 1;
    }
  }
  return {*file_, line};
}

void ConfigNode::error(const std::string& message) const {
  diag_->error(location(), path_, message);
}

void ConfigNode::errorAt(std::string_view key, const std::string& message) const {
  ConfigNode c = child(key);
  SourceLocation loc = c.node_.IsDefined() ? c.location() : location();
  diag_->error(loc, c.path_, message);
}

bool ConfigNode::requireMap() const {
  if (!node_.IsMap()) {
    error("expected a mapping, got " + describe(node_));
    return false;
  }
  return true;
}

bool ConfigNode::requireSeq() const {
  if (!node_.IsSequence()) {
    error("expected a list, got " + describe(node_));
    return false;
  }
  return true;
}

bool ConfigNode::allowKeys(std::initializer_list<std::string_view> allowed) const {
  return allowKeys(std::vector<std::string>(allowed.begin(), allowed.end()));
}

bool ConfigNode::allowKeys(const std::vector<std::string>& allowed) const {
  if (!defined()) {
    return true;
  }
  if (!requireMap()) {
    return false;
  }
  bool ok = true;
  for (const auto& kv : node_) {
    std::string key = kv.first.as<std::string>("");
    if (std::find(allowed.begin(), allowed.end(), key) != allowed.end()) {
      continue;
    }
    ok = false;
    std::string msg = "unknown key";
    if (auto m = closestMatch(key, allowed)) {
      msg += " (did you mean \"" + *m + "\"?)";
    } else {
      std::string list;
      for (const auto& a : allowed) {
        list += (list.empty() ? "" : ", ") + a;
      }
      msg += " (expected one of: " + list + ")";
    }
    auto mark = kv.first.Mark();
    diag_->error({*file_, mark.line >= 0 ? mark.line + 1 : location().line},
                 path_.empty() ? key : path_ + "." + key, msg);
  }
  return ok;
}

ConfigNode ConfigNode::child(std::string_view key) const {
  std::string p = path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  if (!node_.IsMap()) {
    return ConfigNode(YAML::Node(YAML::NodeType::Undefined), file_, std::move(p), diag_);
  }
  const YAML::Node& cn = node_;
  YAML::Node found = cn[std::string(key)];
  // yaml-cpp returns a "zombie" node for a missing key, on which most calls throw; and
  // assigning to a Node assigns its content, so build the replacement instead of assigning.
  return ConfigNode(found.IsDefined() ? found : YAML::Node(YAML::NodeType::Undefined), file_,
                    std::move(p), diag_);
}

bool ConfigNode::has(std::string_view key) const { return child(key).defined(); }

std::vector<ConfigNode> ConfigNode::items() const {
  std::vector<ConfigNode> out;
  if (!node_.IsSequence()) {
    return out;
  }
  for (size_t i = 0; i < node_.size(); ++i) {
    const YAML::Node& cn = node_;
    out.emplace_back(cn[i], file_, path_ + "[" + std::to_string(i) + "]", diag_);
  }
  return out;
}

std::vector<std::pair<std::string, ConfigNode>> ConfigNode::entries() const {
  std::vector<std::pair<std::string, ConfigNode>> out;
  if (!node_.IsMap()) {
    return out;
  }
  for (const auto& kv : node_) {
    std::string key = kv.first.as<std::string>("");
    out.emplace_back(key,
                     ConfigNode(kv.second, file_, path_.empty() ? key : path_ + "." + key, diag_));
  }
  return out;
}

std::optional<std::string> ConfigNode::asStr() const {
  if (!node_.IsScalar()) {
    return std::nullopt;
  }
  return node_.Scalar();
}

std::optional<double> ConfigNode::asNumber() const {
  if (!node_.IsScalar()) {
    return std::nullopt;
  }
  const std::string& s = node_.Scalar();
  if (s.empty()) {
    return std::nullopt;
  }
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size() || !std::isfinite(v)) {
    return std::nullopt;
  }
  return v;
}

std::optional<bool> ConfigNode::asBool() const {
  if (!node_.IsScalar()) {
    return std::nullopt;
  }
  const std::string& s = node_.Scalar();
  if (s == "true" || s == "yes" || s == "on" || s == "True" || s == "TRUE") {
    return true;
  }
  if (s == "false" || s == "no" || s == "off" || s == "False" || s == "FALSE") {
    return false;
  }
  return std::nullopt;
}

std::string ConfigNode::str(std::string_view key, const std::string& def) const {
  ConfigNode c = child(key);
  if (!c.defined()) {
    return def;
  }
  auto v = c.asStr();
  if (!v) {
    c.error("expected a string, got " + describe(c.node_));
    return def;
  }
  return *v;
}

std::string ConfigNode::secret(std::string_view key, bool* from_file) const {
  std::string file_key = std::string(key) + "_file";
  std::string inline_value = str(key, "");
  std::string file = str(file_key, "");
  if (from_file != nullptr) {
    *from_file = false;
  }
  if (!inline_value.empty() && !file.empty()) {
    errorAt(file_key, "set either " + std::string(key) + " or " + file_key + ", not both");
    return inline_value;
  }
  std::string key_path = path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  if (file.empty()) {
    if (!inline_value.empty()) {
      diag_->noteSecret({child(key).location(), key_path, *file_, true});
    }
    return inline_value;
  }
  file = filePath(file_key, "");
  diag_->noteSecret({child(file_key).location(), key_path + "_file", file, false});
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    errorAt(file_key, "cannot read \"" + file + "\": " + std::strerror(errno));
    return {};
  }
  std::stringstream ss;
  ss << in.rdbuf();
  std::string value = ss.str();
  size_t b = value.find_first_not_of(" \t\r\n");
  size_t e = value.find_last_not_of(" \t\r\n");
  value = b == std::string::npos ? std::string() : value.substr(b, e - b + 1);
  if (value.empty()) {
    errorAt(file_key, "\"" + file + "\" is empty (expected the secret)");
    return {};
  }
  if (from_file != nullptr) {
    *from_file = true;
  }
  return value;
}

std::string ConfigNode::filePath(std::string_view key, const std::string& def) const {
  std::string value = str(key, def);
  if (value.empty()) {
    return value;
  }
  std::filesystem::path p(value);
  if (p.is_relative()) {
    p = std::filesystem::path(*file_).parent_path() / p;
  }
  std::error_code ec;
  std::filesystem::path abs = std::filesystem::absolute(p, ec);
  return (ec ? p : abs).lexically_normal().string();
}

std::string ConfigNode::requiredStr(std::string_view key) const {
  ConfigNode c = child(key);
  if (!c.defined()) {
    errorAt(key, "required (expected a string, got nothing)");
    return {};
  }
  auto v = c.asStr();
  if (!v || v->empty()) {
    c.error("expected a non-empty string, got " + describe(c.node_));
    return {};
  }
  return *v;
}

std::string ConfigNode::choice(std::string_view key, const std::string& def,
                               std::initializer_list<std::string_view> choices) const {
  return choice(key, def, std::vector<std::string>(choices.begin(), choices.end()));
}

std::string ConfigNode::choice(std::string_view key, const std::string& def,
                               const std::vector<std::string>& list) const {
  ConfigNode c = child(key);
  if (!c.defined()) {
    return def;
  }
  auto v = c.asStr();
  if (v && std::find(list.begin(), list.end(), *v) != list.end()) {
    return *v;
  }
  std::string expected;
  for (const auto& s : list) {
    expected += (expected.empty() ? "" : " | ") + s;
  }
  std::string msg = "expected " + expected + ", got " + describe(c.node_);
  if (v) {
    if (auto m = closestMatch(*v, list)) {
      msg += " (did you mean \"" + *m + "\"?)";
    }
  }
  c.error(msg);
  return def;
}

bool ConfigNode::boolean(std::string_view key, bool def) const {
  ConfigNode c = child(key);
  if (!c.defined()) {
    return def;
  }
  auto v = c.asBool();
  if (!v) {
    c.error("expected true or false, got " + describe(c.node_));
    return def;
  }
  return *v;
}

int64_t ConfigNode::integer(std::string_view key, int64_t def, int64_t min, int64_t max) const {
  ConfigNode c = child(key);
  if (!c.defined()) {
    return def;
  }
  auto v = c.asNumber();
  if (!v || *v != std::floor(*v)) {
    c.error("expected an integer, got " + describe(c.node_));
    return def;
  }
  if (*v < static_cast<double>(min) || *v > static_cast<double>(max)) {
    c.error("out of range (expected " + std::to_string(min) + ".." + std::to_string(max) +
            ", got " + c.node_.Scalar() + ")");
    return def;
  }
  return static_cast<int64_t>(*v);
}

double ConfigNode::number(std::string_view key, double def, double min, double max) const {
  ConfigNode c = child(key);
  if (!c.defined()) {
    return def;
  }
  auto v = c.asNumber();
  if (!v) {
    c.error("expected a number, got " + describe(c.node_));
    return def;
  }
  if (*v < min || *v > max) {
    std::ostringstream os;
    os << "out of range (expected " << min << ".." << max << ", got " << c.node_.Scalar() << ")";
    c.error(os.str());
    return def;
  }
  return *v;
}

std::optional<std::chrono::milliseconds> parseDuration(std::string_view text) {
  if (text.empty()) {
    return std::nullopt;
  }
  size_t i = 0;
  while (i < text.size() && ((text[i] >= '0' && text[i] <= '9') || text[i] == '.')) {
    ++i;
  }
  if (i == 0) {
    return std::nullopt;
  }
  std::string num(text.substr(0, i));
  char* end = nullptr;
  double v = std::strtod(num.c_str(), &end);
  if (end != num.c_str() + num.size()) {
    return std::nullopt;
  }
  std::string_view unit = text.substr(i);
  double ms = 0;
  if (unit.empty() || unit == "s") {
    ms = v * 1000;
  } else if (unit == "ms") {
    ms = v;
  } else if (unit == "m" || unit == "min") {
    ms = v * 60'000;
  } else if (unit == "h") {
    ms = v * 3'600'000;
  } else if (unit == "d") {
    ms = v * 86'400'000;
  } else {
    return std::nullopt;
  }
  return std::chrono::milliseconds(static_cast<int64_t>(std::llround(ms)));
}

std::chrono::milliseconds ConfigNode::duration(std::string_view key, std::chrono::milliseconds def,
                                               std::chrono::milliseconds min,
                                               std::chrono::milliseconds max) const {
  ConfigNode c = child(key);
  if (!c.defined()) {
    return def;
  }
  auto s = c.asStr();
  std::optional<std::chrono::milliseconds> v;
  if (s) {
    v = parseDuration(*s);
  }
  if (!v) {
    c.error("expected a duration such as 500ms, 10s, 15m, 8h or 7d, got " + describe(c.node_));
    return def;
  }
  if (*v < min || *v > max) {
    c.error("out of range (expected " + std::to_string(min.count()) + "ms.." +
            std::to_string(max.count()) + "ms, got " + *s + ")");
    return def;
  }
  return *v;
}

std::vector<std::string> ConfigNode::strList(std::string_view key) const {
  ConfigNode c = child(key);
  std::vector<std::string> out;
  if (!c.defined()) {
    return out;
  }
  if (c.isScalar()) {
    out.push_back(c.node_.Scalar());
    return out;
  }
  if (!c.requireSeq()) {
    return out;
  }
  for (auto& item : c.items()) {
    auto v = item.asStr();
    if (!v) {
      item.error("expected a string, got " + describe(item.node_));
      continue;
    }
    out.push_back(*v);
  }
  return out;
}

namespace {

std::optional<ConfigNode> parse(const std::string& text, const std::string& label,
                                Diagnostics& diag) {
  auto file = std::make_shared<const std::string>(label);
  try {
    YAML::Node root = YAML::Load(text);
    return ConfigNode(root, file, "", &diag);
  } catch (const YAML::Exception& e) {
    int line = e.mark.line >= 0 ? e.mark.line + 1 : 0;
    diag.error({label, line}, "(syntax)", e.msg);
    return std::nullopt;
  }
}

} // namespace

std::optional<ConfigNode> loadYamlFile(const std::string& path, Diagnostics& diag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    diag.error({path, 0}, "", "cannot open file");
    return std::nullopt;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return parse(ss.str(), path, diag);
}

std::optional<ConfigNode> loadYamlText(const std::string& text, const std::string& label,
                                       Diagnostics& diag) {
  return parse(text, label, diag);
}

} // namespace hgj::core
