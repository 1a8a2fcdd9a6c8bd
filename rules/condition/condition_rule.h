#pragma once

#include <string>
#include <vector>

#include "core/config_node.h"
#include "rules/rule.h"
#include "rules/rule_family.h"

namespace hgj::rules::condition {

/// The family's entry in the rule family table (rules/rule_family.h): those keys, its parser
/// and its default message.
extern const RuleFamily kFamily;

/// Compiles the expression at `node.key` and checks its points exist on every selected device.
std::shared_ptr<Expression> compileAt(const core::ConfigNode& node, std::string_view key,
                                      const model::Compound& compound,
                                      const std::vector<model::DeviceIndex>& devices);

} // namespace hgj::rules::condition
