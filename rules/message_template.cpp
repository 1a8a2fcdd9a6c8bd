#include "rules/message_template.h"

#include <cstdint>

namespace hgj::rules {

namespace {

struct FieldName {
  std::string_view name;
  Field field;
};

constexpr FieldName kFieldNames[] = {
    {"device", Field::Device},   {"name", Field::Name},       {"location", Field::Location},
    {"grid", Field::Grid},       {"value", Field::Value},     {"threshold", Field::Threshold},
    {"point", Field::Point},     {"rule", Field::Rule},       {"held", Field::Held},
    {"other", Field::Other},     {"other_value", Field::OtherValue},
    {"scope", Field::Scope},     {"free", Field::Free},       {"occupied", Field::Occupied},
    {"unknown", Field::Unknown}, {"total", Field::Total},
};

} // namespace

std::optional<MessageTemplate> MessageTemplate::parse(std::string_view text, std::string* error) {
  MessageTemplate t;
  std::string literal;
  size_t i = 0;
  while (i < text.size()) {
    char c = text[i];
    if (c == '{') {
      size_t end = text.find('}', i);
      if (end == std::string_view::npos) {
        *error = "unclosed \"{\" at offset " + std::to_string(i);
        return std::nullopt;
      }
      std::string_view name = text.substr(i + 1, end - i - 1);
      std::optional<Field> field;
      for (const auto& fn : kFieldNames) {
        if (fn.name == name) {
          field = fn.field;
        }
      }
      if (!field) {
        std::string known;
        for (const auto& fn : kFieldNames) {
          known += (known.empty() ? "" : ", ") + std::string(fn.name);
        }
        *error = "unknown placeholder {" + std::string(name) + "} (expected one of: " + known + ")";
        return std::nullopt;
      }
      t.parts_.push_back({std::move(literal), field});
      literal.clear();
      i = end + 1;
      continue;
    }
    literal += c;
    ++i;
  }
  if (!literal.empty()) {
    t.parts_.push_back({std::move(literal), std::nullopt});
  }
  return t;
}

std::string MessageTemplate::render(const MessageFields& fields) const {
  std::string out;
  for (const auto& p : parts_) {
    out += p.literal;
    if (p.field) {
      out += fields.values[static_cast<size_t>(*p.field)];
    }
  }
  return out;
}

std::string formatDuration(int64_t ms) {
  if (ms < 0) {
    ms = 0;
  }
  if (ms < 1000) {
    return std::to_string(ms) + "ms";
  }
  int64_t s = ms / 1000;
  const int64_t d = s / 86400;
  const int64_t h = (s % 86400) / 3600;
  const int64_t m = (s % 3600) / 60;
  const int64_t sec = s % 60;
  std::string out;
  auto add = [&](int64_t v, const char* unit) {
    if (v == 0) {
      return;
    }
    if (!out.empty()) {
      out += ' ';
    }
    out += std::to_string(v) + unit;
  };
  add(d, "d");
  add(h, "h");
  if (d == 0) {
    add(m, "m");
  }
  if (d == 0 && h == 0) {
    add(sec, "s");
  }
  return out.empty() ? "0s" : out;
}

} // namespace hgj::rules
