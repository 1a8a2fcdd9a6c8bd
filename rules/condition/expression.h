#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "model/compound.h"
#include "model/state_table.h"

namespace mu {
class Parser;
}

namespace hgj::rules {

/// A boolean expression over one device's points ("current_a > 0.5 && temp_c > 55"), compiled
/// once at load time with muParser. Variables are point names; bool points read as 1/0, text
/// points cannot be used. Evaluation is on the pipeline thread only (it writes the variables'
/// slots) and does not allocate.
class Expression {
public:
  ~Expression();
  Expression(const Expression&) = delete;
  Expression& operator=(const Expression&) = delete;

  /// Compiles `text`, resolving its variables with `compound.pointId`. Returns nullptr and sets
  /// `error` (with a "did you mean" for unknown point names) when it does not compile.
  static std::shared_ptr<Expression> compile(const std::string& text,
                                             const model::Compound& compound,
                                             std::string* error);

  const std::string& text() const { return text_; }
  /// The points the expression reads.
  const std::vector<model::PointId>& points() const { return points_; }

  /// nullopt when a variable's point is missing, stale or not a number/bool (never act on it).
  std::optional<bool> evaluate(const model::StateTable& state, model::DeviceIndex device) const;
  /// The same with the values given in `points()` order (tests, validation).
  std::optional<bool> evaluateWith(const std::vector<double>& values) const;

private:
  Expression() = default;

  std::string text_;
  std::unique_ptr<mu::Parser> parser_;
  std::vector<model::PointId> points_;
  /// Variable slots bound into the parser; sized once, never reallocated.
  std::unique_ptr<double[]> slots_;
};

} // namespace hgj::rules
