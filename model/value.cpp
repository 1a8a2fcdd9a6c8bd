#include "model/value.h"

#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "core/enum_names.h"

namespace hgj::model {

namespace {

constexpr core::EnumNames<Quality, 3> kQualityNames{
    {{Quality::Good, "good"}, {Quality::Stale, "stale"}, {Quality::Bad, "bad"}}};
constexpr core::EnumNames<PointType, 3> kPointTypeNames{
    {{PointType::Bool, "bool"}, {PointType::Number, "number"}, {PointType::String, "string"}}};

} // namespace

const char* qualityName(Quality q) { return kQualityNames.name(q, "bad"); }

const char* pointTypeName(PointType t) { return kPointTypeNames.name(t, "number"); }

std::optional<PointType> parsePointType(const std::string& s) { return kPointTypeNames.parse(s); }

std::optional<double> asNumber(const Value& v) {
  if (const auto* d = std::get_if<double>(&v)) {
    return *d;
  }
  if (const auto* b = std::get_if<bool>(&v)) {
    return *b ? 1.0 : 0.0;
  }
  return std::nullopt;
}

std::optional<bool> asBool(const Value& v) {
  if (const auto* b = std::get_if<bool>(&v)) {
    return *b;
  }
  if (const auto* d = std::get_if<double>(&v)) {
    return *d != 0.0;
  }
  return std::nullopt;
}

bool isEmpty(const Value& v) { return std::holds_alternative<std::monostate>(v); }

std::string toText(const Value& v) {
  if (const auto* b = std::get_if<bool>(&v)) {
    return *b ? "true" : "false";
  }
  if (const auto* d = std::get_if<double>(&v)) {
    char buf[32];
    if (*d == std::floor(*d) && std::fabs(*d) < 1e15) {
      std::snprintf(buf, sizeof buf, "%.0f", *d);
    } else {
      std::snprintf(buf, sizeof buf, "%.10g", *d);
    }
    return buf;
  }
  if (const auto* s = std::get_if<std::string>(&v)) {
    return *s;
  }
  return {};
}

nlohmann::json toJson(const Value& v) {
  if (const auto* b = std::get_if<bool>(&v)) {
    return *b;
  }
  if (const auto* d = std::get_if<double>(&v)) {
    return *d;
  }
  if (const auto* s = std::get_if<std::string>(&v)) {
    return *s;
  }
  return nullptr;
}

std::optional<Value> fromJson(const nlohmann::json& j) {
  if (j.is_boolean()) {
    return Value(j.get<bool>());
  }
  if (j.is_number()) {
    double d = j.get<double>();
    if (!std::isfinite(d)) {
      return std::nullopt;
    }
    return Value(d);
  }
  if (j.is_string()) {
    return Value(j.get<std::string>());
  }
  return std::nullopt;
}

std::optional<Value> coerce(const Value& v, PointType type) {
  switch (type) {
  case PointType::Bool:
    if (const auto* s = std::get_if<std::string>(&v)) {
      if (*s == "true" || *s == "1" || *s == "on") {
        return Value(true);
      }
      if (*s == "false" || *s == "0" || *s == "off") {
        return Value(false);
      }
      return std::nullopt;
    }
    if (auto b = asBool(v)) {
      return Value(*b);
    }
    return std::nullopt;
  case PointType::Number:
    if (const auto* d = std::get_if<double>(&v)) {
      if (!std::isfinite(*d)) {
        return std::nullopt;
      }
      return v;
    }
    if (const auto* b = std::get_if<bool>(&v)) {
      return Value(*b ? 1.0 : 0.0);
    }
    return std::nullopt;
  case PointType::String:
    if (std::holds_alternative<std::string>(v)) {
      return v;
    }
    if (isEmpty(v)) {
      return std::nullopt;
    }
    return Value(toText(v));
  }
  return std::nullopt;
}

} // namespace hgj::model
