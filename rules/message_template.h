#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hgj::rules {

/// Placeholders a message template may use.
enum class Field : uint8_t {
  Device,     ///< device id
  Name,       ///< device name (id when unnamed)
  Location,   ///< "B1 A区 P-B1-0042"
  Grid,
  Value,      ///< the triggering value
  Threshold,  ///< the rule's limit as text
  Point,
  Rule,
  Held,       ///< how long the condition has held ("7d 2h")
  Other,      ///< the related device (linked pile, ...)
  OtherValue,
  Scope,      ///< occupancy: "B1", "B1/A", "total"
  Free,
  Occupied,
  Unknown,
  Total,
  Count_,
};

/// The values to fill a template with. Unset fields render empty.
struct MessageFields {
  std::array<std::string, static_cast<size_t>(Field::Count_)> values;
  void set(Field f, std::string v) { values[static_cast<size_t>(f)] = std::move(v); }
};

/// A message template ("{device} {location}: 温度 {value}°C > {threshold}°C"), parsed once at load
/// so unknown placeholders are config errors and rendering does no parsing.
class MessageTemplate {
public:
  /// Parses `text`; on error returns nullopt and sets `error`.
  static std::optional<MessageTemplate> parse(std::string_view text, std::string* error);

  std::string render(const MessageFields& fields) const;
  bool empty() const { return parts_.empty(); }

private:
  struct Part {
    std::string literal;
    std::optional<Field> field;
  };
  std::vector<Part> parts_;
};

/// "7d 2h", "15m", "10s" for a duration in milliseconds.
std::string formatDuration(int64_t ms);

} // namespace hgj::rules
