#include "rules/offline/offline_rule.h"

#include "rules/message_template.h"

namespace hgj::rules::offline {

namespace {

const std::vector<std::string> kKeys = {"after", "never_seen"};

void parse(const core::ConfigNode& node, const model::Compound& /*compound*/, RuleDef& rule) {
  rule.silent_for = node.duration("after", std::chrono::milliseconds(0));
  rule.never_seen = node.boolean("never_seen", true);
  rule.threshold_text =
      rule.silent_for.count() > 0 ? formatDuration(rule.silent_for.count()) : "expected interval";
}

} // namespace

const RuleFamily kFamily{.name = "offline", .keys = &kKeys, .parse = parse,
                         .default_message = "{device} {location}: offline (silent {held})",
                         .on_silence = true};

} // namespace hgj::rules::offline
