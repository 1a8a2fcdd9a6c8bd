#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>

#include <nlohmann/json_fwd.hpp>

namespace hgj::model {

/// A point's value: nothing yet, a boolean, a number (integers are exact up to 2^53) or a text
/// (EV pile state "Charging"). Small enough to copy on the hot path.
using Value = std::variant<std::monostate, bool, double, std::string>;

enum class Quality : uint8_t { Good, Stale, Bad };

enum class PointType : uint8_t { Bool, Number, String };

const char* qualityName(Quality q);
const char* pointTypeName(PointType t);
std::optional<PointType> parsePointType(const std::string& s);

/// The number a value stands for (true = 1); nullopt for nothing or text.
std::optional<double> asNumber(const Value& v);
/// true/false, numbers != 0; nullopt otherwise.
std::optional<bool> asBool(const Value& v);
bool isEmpty(const Value& v);
/// Compact text: "true", "6.8", "charging", "" for nothing.
std::string toText(const Value& v);
nlohmann::json toJson(const Value& v);
/// The value a JSON scalar stands for; nullopt for objects, arrays and non-finite numbers.
std::optional<Value> fromJson(const nlohmann::json& j);
/// Converts to the point's type ("1"/"true" -> bool for a Bool point); nullopt when it does not fit.
std::optional<Value> coerce(const Value& v, PointType type);

} // namespace hgj::model
