#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/config_node.h"
#include "model/compound.h"
#include "rules/rule.h"

namespace hgj::rules {

/// Shared pieces of the rules file's parsers (config loading only, single-threaded). Every
/// problem is reported to the node's Diagnostics; the functions return what they could parse.

/// `*` and `?` glob match ("S0*/P*").
bool globMatch(std::string_view pattern, std::string_view text);

/// The device types the shipped profiles declare (docs/profiles.md); a rule may name one the
/// compound does not have.
extern const std::vector<std::string> kDeviceTypes;

/// Keys of a `select:` mapping.
extern const std::vector<std::string> kSelectKeys;

/// Devices matched by a `select:` mapping: `type` (one or a list), `id` (glob, one or a list),
/// `grid`, `tag` ("key=value" or "key"), `level`, `zone`, `linked_type` (has a linked device of
/// that type). All given criteria must match.
std::vector<model::DeviceIndex> parseSelect(const core::ConfigNode& sel,
                                            const model::Compound& compound);

/// The devices `on` relates `device` to (one for self/linked/parent; the children).
std::vector<model::DeviceIndex> relatedDevices(const model::Compound& compound,
                                               model::DeviceIndex device, Relation on);

/// Resolves the point name at `node.key` and checks that every device `on` relates the selected
/// devices to has it in its profile. Returns nullopt after reporting.
std::optional<model::PointId> resolvePoint(const core::ConfigNode& node, std::string_view key,
                                           const model::Compound& compound,
                                           const std::vector<model::DeviceIndex>& devices,
                                           Relation on);

/// A scalar as a Value: true/false, a number, or text.
std::optional<model::Value> scalarValue(const core::ConfigNode& node);

/// "> 60", "op: '>', value: 60", "equals: true", "in: [...]", "not_in: [...]" at `node` for point
/// `point` (already resolved). `allow_numeric` / `allow_sets` restrict the forms.
std::optional<Predicate> parseComparison(const core::ConfigNode& node, Predicate base,
                                         bool allow_numeric, bool allow_sets);

/// `actions:` / `on_clear:` write lists.
std::vector<WriteSpec> parseWrites(const core::ConfigNode& list, const model::Compound& compound,
                                   const std::vector<model::DeviceIndex>& devices);

/// Devices a write addresses for `device`.
std::vector<model::DeviceIndex> writeTargets(const model::Compound& compound, const WriteSpec& w,
                                             model::DeviceIndex device);

/// The comparison as text for messages: "> 60", "in [Available, Preparing]".
std::string comparisonText(const Predicate& p);
const char* cmpOpText(CmpOp op);

} // namespace hgj::rules
