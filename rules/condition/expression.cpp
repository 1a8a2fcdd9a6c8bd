#include "rules/condition/expression.h"

#include <cmath>

#include <muParser.h>

#include "core/config_node.h"

namespace hgj::rules {

Expression::~Expression() = default;

std::shared_ptr<Expression> Expression::compile(const std::string& text,
                                                const model::Compound& compound,
                                                std::string* error) {
  std::shared_ptr<Expression> e(new Expression());
  e->text_ = text;
  e->parser_ = std::make_unique<mu::Parser>();
  try {
    // GetUsedVar parses the expression without needing its variables defined, which gives us
    // the names to resolve against the compound's points before binding them.
    e->parser_->SetExpr(text);
    mu::varmap_type used = e->parser_->GetUsedVar();
    std::vector<std::string> names;
    for (const auto& kv : used) {
      names.push_back(kv.first);
    }
    std::vector<std::string> known;
    for (size_t i = 0; i < compound.pointCount(); ++i) {
      known.push_back(compound.pointName(static_cast<model::PointId>(i)));
    }
    e->slots_ = std::make_unique<double[]>(names.size() > 0 ? names.size() : 1);
    for (size_t i = 0; i < names.size(); ++i) {
      auto id = compound.pointId(names[i]);
      if (!id) {
        std::string msg = "unknown point \"" + names[i] + "\" in expression";
        if (auto m = core::closestMatch(names[i], known)) {
          msg += " (did you mean \"" + *m + "\"?)";
        }
        *error = msg;
        return nullptr;
      }
      e->points_.push_back(*id);
      e->slots_[i] = 0;
      e->parser_->DefineVar(names[i], &e->slots_[i]);
    }
    e->parser_->SetExpr(text);
    // Forces the parse now, so a syntax error is a load-time error and Eval on the pipeline
    // thread only runs the compiled bytecode.
    e->parser_->Eval();
  } catch (const mu::Parser::exception_type& ex) {
    *error = "invalid expression \"" + text + "\": " + ex.GetMsg();
    return nullptr;
  }
  return e;
}

std::optional<bool> Expression::evaluateWith(const std::vector<double>& values) const {
  if (values.size() != points_.size()) {
    return std::nullopt;
  }
  for (size_t i = 0; i < values.size(); ++i) {
    slots_[i] = values[i];
  }
  try {
    double r = parser_->Eval();
    if (std::isnan(r)) {
      return std::nullopt;
    }
    return r != 0.0;
  } catch (const mu::Parser::exception_type&) {
    return std::nullopt;
  }
}

std::optional<bool> Expression::evaluate(const model::StateTable& state,
                                         model::DeviceIndex device) const {
  for (size_t i = 0; i < points_.size(); ++i) {
    const model::Value* v = state.goodValue(device, points_[i]);
    if (v == nullptr) {
      return std::nullopt;
    }
    auto n = model::asNumber(*v);
    if (!n) {
      return std::nullopt;
    }
    slots_[i] = *n;
  }
  try {
    double r = parser_->Eval();
    if (std::isnan(r)) {
      return std::nullopt;
    }
    return r != 0.0;
  } catch (const mu::Parser::exception_type&) {
    return std::nullopt;
  }
}

} // namespace hgj::rules
