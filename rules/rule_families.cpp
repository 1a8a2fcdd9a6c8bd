#include "rules/rule_family.h"

#include "rules/condition/condition_rule.h"
#include "rules/correlation/correlation_rule.h"
#include "rules/held/held_rule.h"
#include "rules/offline/offline_rule.h"
#include "rules/state/state_rule.h"
#include "rules/threshold/threshold_rule.h"

namespace hgj::rules {

const std::vector<const RuleFamily*>& builtinRuleFamilies() {
  static const std::vector<const RuleFamily*> families = {
      &threshold::kFamily, &condition::kFamily, &state::kFamily,
      &offline::kFamily,   &held::kFamily,      &correlation::kFamily,
  };
  return families;
}

} // namespace hgj::rules
