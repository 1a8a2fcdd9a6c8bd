#include "gateway/config_push/config_bundle.h"

namespace hgj::config_push {

namespace {

constexpr size_t kMaxSegments = 3;
constexpr size_t kMaxSegmentChars = 64;
constexpr size_t kMaxByChars = 64;

bool validSegment(std::string_view s) {
  if (s.empty() || s.size() > kMaxSegmentChars || s.front() == '.') {
    return false;
  }
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-' || c == '.';
    if (!ok) {
      return false;
    }
  }
  return true;
}

} // namespace

bool validBundlePath(std::string_view name) {
  size_t segments = 0;
  while (true) {
    size_t slash = name.find('/');
    if (!validSegment(name.substr(0, slash)) || ++segments > kMaxSegments) {
      return false;
    }
    if (slash == std::string_view::npos) {
      return true;
    }
    name.remove_prefix(slash + 1);
  }
}

std::variant<ConfigBundle, std::string> parseBundle(const nlohmann::json& args,
                                                    const BundleLimits& limits) {
  ConfigBundle b;
  auto v = args.find("version");
  if (v == args.end() || !v->is_number_integer() || v->get<int64_t>() <= 0 ||
      v->get<int64_t>() > 999'999'999) {
    return std::string("config_push needs a \"version\": an integer 1..999999999");
  }
  b.version = v->get<int64_t>();
  if (auto by = args.find("by"); by != args.end()) {
    if (!by->is_string() || by->get_ref<const std::string&>().empty() ||
        by->get_ref<const std::string&>().size() > kMaxByChars) {
      return std::string("\"by\" must be a name of 1..64 characters");
    }
    b.by = by->get<std::string>();
  } else {
    b.by = "upstream";
  }
  auto files = args.find("files");
  if (files == args.end() || !files->is_object() || files->empty()) {
    return std::string("config_push needs \"files\": an object of file name -> content");
  }
  if (files->size() > limits.max_files) {
    return "too many files (" + std::to_string(files->size()) + ", at most " +
           std::to_string(limits.max_files) + ")";
  }
  size_t total = 0;
  for (const auto& [name, content] : files->items()) {
    if (!validBundlePath(name)) {
      return "bad file name \"" + name.substr(0, 80) +
             "\" (expected a relative path of letters, digits, '_', '-', '.')";
    }
    if (!content.is_string()) {
      return "file \"" + name + "\" must be a string";
    }
    const auto& text = content.get_ref<const std::string&>();
    if (text.size() > limits.max_file_bytes) {
      return "file \"" + name + "\" too large (" + std::to_string(text.size()) +
             " bytes, at most " + std::to_string(limits.max_file_bytes) + ")";
    }
    total += text.size();
    b.files.emplace(name, text);
  }
  if (total > limits.max_bytes) {
    return "bundle too large (" + std::to_string(total) + " bytes, at most " +
           std::to_string(limits.max_bytes) + ")";
  }
  if (b.files.count(std::string(kMainFile)) == 0) {
    return std::string("the bundle has no gateway.yaml");
  }
  // A directory and a file of the same name cannot both be written.
  for (const auto& [name, text] : b.files) {
    auto next = b.files.lower_bound(name + "/");
    if (next != b.files.end() && next->first.rfind(name + "/", 0) == 0) {
      return "\"" + name + "\" is both a file and a directory";
    }
  }
  return b;
}

} // namespace hgj::config_push
