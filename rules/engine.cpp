#include "rules/engine.h"

#include <algorithm>
#include <cctype>
#include <set>

#include "rules/condition/expression.h"
#include "rules/rule_family.h"
#include "rules/rule_parse.h"

namespace hgj::rules {

namespace {

uint64_t pointKey(model::DeviceIndex d, model::PointId p) {
  return (static_cast<uint64_t>(d) << 16) | p;
}

bool equalsNoCase(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

// Text compares without case: devices say "charging" where the rules file says OCPP's
// "Charging".
bool sameValue(const model::Value& a, const model::Value& b) {
  if (const auto* sa = std::get_if<std::string>(&a)) {
    const auto* sb = std::get_if<std::string>(&b);
    return sb != nullptr && equalsNoCase(*sa, *sb);
  }
  if (a.index() == b.index()) {
    return a == b;
  }
  auto na = model::asNumber(a);
  auto nb = model::asNumber(b);
  return na && nb && *na == *nb;
}

} // namespace

Engine::Engine(const RulesConfig& config, const model::Compound& compound,
               const core::Clock& clock, Interlocks* interlocks)
    : config_(config),
      compound_(compound),
      clock_(clock),
      own_interlocks_(interlocks == nullptr ? std::make_unique<Interlocks>(compound) : nullptr),
      interlocks_(interlocks != nullptr ? *interlocks : *own_interlocks_),
      occupancy_(config.occupancy, compound) {
  started_ = clock_.steadyNow();
  rule_safety_.resize(config_.rules.size(), 0);
  for (size_t r = 0; r < config_.rules.size(); ++r) {
    for (const auto& spec : config_.rules[r].on_raise) {
      rule_safety_[r] = rule_safety_[r] || spec.safety;
    }
  }
  struct Dep {
    model::DeviceIndex device;
    model::PointId point;
    uint32_t instance;
  };
  std::vector<Dep> deps;
  // Instances are laid out by device, so the instances a reading visits share cache lines
  // (measured: ordering them by rule made every visit a cache miss).
  std::vector<std::pair<model::DeviceIndex, uint32_t>> order;
  for (uint32_t r = 0; r < config_.rules.size(); ++r) {
    for (auto d : config_.rules[r].devices) {
      order.emplace_back(d, r);
    }
  }
  std::stable_sort(order.begin(), order.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  rule_instances_.resize(config_.rules.size());
  for (const auto& [d, r] : order) {
    const RuleDef& rule = config_.rules[r];
    auto id = static_cast<uint32_t>(instances_.size());
    Instance inst;
    inst.rule = r;
    inst.device = d;
    instances_.push_back(inst);
    rule_instances_[r].push_back(id);
    std::set<std::pair<model::DeviceIndex, model::PointId>> mine;
    if (rule.family->on_silence) {
      mine.insert({d, kAnyPoint});
      offline_instances_.push_back(id);
    }
    for (const auto* preds : {&rule.when, &rule.clear_when}) {
      for (const auto& p : *preds) {
        for (auto rd : relatedDevices(compound_, d, p.on)) {
          mine.insert({rd, p.point});
        }
      }
    }
    for (const auto* e : {rule.expr.get(), rule.guard.get(), rule.clear_expr.get()}) {
      if (e != nullptr) {
        for (auto p : e->points()) {
          mine.insert({d, p});
        }
      }
    }
    for (const auto& [dev, pt] : mine) {
      deps.push_back({dev, pt, id});
    }
  }
  std::stable_sort(deps.begin(), deps.end(),
                   [](const Dep& a, const Dep& b) { return a.device < b.device; });
  dev_offsets_.assign(compound_.devices.size() + 1, 0);
  entries_.reserve(deps.size());
  size_t j = 0;
  for (model::DeviceIndex d = 0; d < compound_.devices.size(); ++d) {
    dev_offsets_[d] = static_cast<uint32_t>(entries_.size());
    while (j < deps.size() && deps[j].device == d) {
      entries_.push_back({deps[j].point, deps[j].instance});
      ++j;
    }
  }
  dev_offsets_[compound_.devices.size()] = static_cast<uint32_t>(entries_.size());
  timed_.reserve(instances_.size());
}

Engine::~Engine() = default;

Engine::Tri Engine::evalPredicate(const Predicate& p, model::DeviceIndex device,
                                  const model::StateTable& state, core::SteadyTime* since) const {
  auto one = [&](model::DeviceIndex d, core::SteadyTime* s) {
    const model::PointState* ps = state.point(d, p.point);
    if (ps == nullptr || ps->quality != model::Quality::Good || model::isEmpty(ps->value)) {
      return Tri::Unknown;
    }
    bool ok = false;
    switch (p.op) {
    case CmpOp::Gt:
    case CmpOp::Ge:
    case CmpOp::Lt:
    case CmpOp::Le: {
      auto n = model::asNumber(ps->value);
      if (!n) {
        return Tri::Unknown;
      }
      ok = p.op == CmpOp::Gt   ? *n > p.number
           : p.op == CmpOp::Ge ? *n >= p.number
           : p.op == CmpOp::Lt ? *n < p.number
                               : *n <= p.number;
      break;
    }
    case CmpOp::Eq:
    case CmpOp::In:
      ok = std::any_of(p.values.begin(), p.values.end(),
                       [&](const model::Value& v) { return sameValue(ps->value, v); });
      break;
    case CmpOp::Ne:
    case CmpOp::NotIn:
      ok = std::none_of(p.values.begin(), p.values.end(),
                        [&](const model::Value& v) { return sameValue(ps->value, v); });
      break;
    }
    *s = ps->since_steady;
    return ok ? Tri::True : Tri::False;
  };
  const model::Device& dev = compound_.devices[device];
  switch (p.on) {
  case Relation::Self:
    return one(device, since);
  case Relation::Linked:
    return dev.linked == model::kNoDevice ? Tri::Unknown : one(dev.linked, since);
  case Relation::Parent:
    return dev.parent == model::kNoDevice ? Tri::Unknown : one(dev.parent, since);
  case Relation::ChildrenAny:
  case Relation::ChildrenAll: {
    if (dev.children.empty()) {
      return Tri::Unknown;
    }
    bool any_true = false;
    bool any_false = false;
    bool any_unknown = false;
    core::SteadyTime first_true = core::SteadyTime::max();
    core::SteadyTime last_true = core::SteadyTime::min();
    for (auto c : dev.children) {
      core::SteadyTime s{};
      Tri t = one(c, &s);
      if (t == Tri::True) {
        any_true = true;
        first_true = std::min(first_true, s);
        last_true = std::max(last_true, s);
      } else if (t == Tri::False) {
        any_false = true;
      } else {
        any_unknown = true;
      }
    }
    if (p.on == Relation::ChildrenAny) {
      if (any_true) {
        *since = first_true;
        return Tri::True;
      }
      return any_unknown ? Tri::Unknown : Tri::False;
    }
    if (any_false) {
      return Tri::False;
    }
    if (any_unknown) {
      return Tri::Unknown;
    }
    *since = last_true;
    return Tri::True;
  }
  }
  return Tri::Unknown;
}

Engine::Cond Engine::evalAll(const std::vector<Predicate>& preds, model::DeviceIndex device,
                             const model::StateTable& state, bool definite) const {
  Cond c;
  bool any_false = false;
  bool any_unknown = false;
  for (const auto& p : preds) {
    core::SteadyTime since{};
    Tri t = evalPredicate(p, device, state, &since);
    if (t == Tri::False) {
      any_false = true;
      break;
    }
    if (t == Tri::Unknown) {
      any_unknown = true;
      // Before the rule fires, unknown and false both mean "not now": the rest (a shed's ten
      // ports) need not be read. Only an active rule needs a definite false to clear.
      if (!definite) {
        break;
      }
    } else if (p.timedByState()) {
      c.state_since = c.has_state_since ? std::max(c.state_since, since) : since;
      c.has_state_since = true;
    } else {
      c.observed = true;
    }
  }
  // A definite False on good data wins over Unknown: the condition is over whatever the other
  // part would say.
  c.tri = any_false ? Tri::False : (any_unknown ? Tri::Unknown : Tri::True);
  return c;
}

Engine::Cond Engine::evalWhen(const RuleDef& rule, model::DeviceIndex device,
                              const model::StateTable& state, bool definite) const {
  if (rule.family->evaluate != nullptr) {
    Cond c;
    c.observed = true;
    auto v = rule.family->evaluate(rule, state, device);
    c.tri = !v ? Tri::Unknown : (*v ? Tri::True : Tri::False);
    return c;
  }
  return evalAll(rule.when, device, state, definite);
}

Engine::Tri Engine::evalClear(const RuleDef& rule, model::DeviceIndex device, const Cond& when,
                              const model::StateTable& state) const {
  if (!rule.clear_when.empty()) {
    return evalAll(rule.clear_when, device, state, true).tri;
  }
  if (rule.clear_expr) {
    auto v = rule.clear_expr->evaluate(state, device);
    return !v ? Tri::Unknown : (*v ? Tri::True : Tri::False);
  }
  return when.tri == Tri::False ? Tri::True : (when.tri == Tri::True ? Tri::False : Tri::Unknown);
}

void Engine::schedule(Instance& inst, core::SteadyTime deadline) {
  inst.deadline = deadline;
  if (!inst.timed) {
    inst.timed = true;
    timed_.push_back(static_cast<uint32_t>(&inst - instances_.data()));
  }
}

void Engine::step(Instance& inst, const model::StateTable& state, core::SteadyTime now,
                  bool from_reading, ActionSink& sink) {
  const RuleDef& rule = config_.rules[inst.rule];
  if (rule.family->on_silence) {
    stepOffline(inst, state, now, sink);
    return;
  }
  Cond c = evalWhen(rule, inst.device, state, inst.active);
  if (inst.active) {
    Tri clr = evalClear(rule, inst.device, c, state);
    if (clr != Tri::True) {
      inst.clearing = false;
      return;
    }
    if (!inst.clearing) {
      inst.clearing = true;
      inst.clear_start = now;
    }
    if (now - inst.clear_start >= rule.clear_hold) {
      clear(inst, state, "condition ended", sink);
    } else {
      schedule(inst, inst.clear_start + rule.clear_hold);
    }
    return;
  }
  Tri go = c.tri;
  if (go == Tri::True && rule.guard) {
    auto g = rule.guard->evaluate(state, inst.device);
    go = !g ? Tri::Unknown : (*g ? Tri::True : Tri::False);
  }
  if (go != Tri::True) {
    inst.pending = false;
    inst.samples = 0;
    if (c.tri == Tri::False) {
      // Good data says the condition is over: a hold from before a restart no longer runs.
      inst.restored_samples = 0;
    }
    return;
  }
  bool confirmable = rule_safety_[inst.rule] && rule.hold.count() > 0 && c.observed;
  if (!inst.pending) {
    inst.pending = true;
    inst.samples = 0;
    inst.observed_start = now;
    if (inst.restored_samples > 0) {
      // The condition held before the restart and still holds: the hold continues.
      int64_t age = clock_.wallMs() - inst.restored_start_wall;
      if (age > 0) {
        inst.observed_start = now - core::Millis(age);
      }
      inst.samples = inst.restored_samples;
      inst.restored_samples = 0;
      ++stats_.holds_restored;
    }
    if (confirmable && from_reading) {
      // A sparse reporter (a shed every 3 min) would leave a hot port burning until its next
      // report: ask for the confirming sample now.
      ++stats_.refreshes;
      sink.refresh(inst.device, rule.name);
    }
  }
  if (from_reading && inst.samples < UINT16_MAX) {
    ++inst.samples;
  }
  core::SteadyTime start = c.observed || !c.has_state_since ? inst.observed_start : c.state_since;
  if (c.has_state_since && c.state_since > start) {
    start = c.state_since;
  }
  inst.start = start;
  bool samples_ok = inst.samples >= rule.min_samples || (!c.observed && rule.min_samples <= 1);
  core::SteadyTime due = start + rule.hold;
  if (now >= due && samples_ok) {
    raise(inst, state, now, sink);
    return;
  }
  if (now < due) {
    schedule(inst, due);
  } else if (confirmable) {
    // Time is up but the confirming reading is missing (the refresh went unanswered): ask
    // again (the sink rate-limits per device) and look again in a second.
    ++stats_.refreshes;
    sink.refresh(inst.device, rule.name);
    schedule(inst, now + std::chrono::seconds(1));
  } else {
    // Time is up but the condition still needs another confirming reading: only a reading
    // can move it on.
    inst.deadline = core::SteadyTime::max();
  }
}

void Engine::stepOffline(Instance& inst, const model::StateTable& state, core::SteadyTime now,
                         ActionSink& sink) {
  const RuleDef& rule = config_.rules[inst.rule];
  const model::DeviceState& ds = state.device(inst.device);
  const model::Device& dev = compound_.devices[inst.device];
  if (!dev.monitored) {
    return;
  }
  core::SteadyTime last = ds.ever_seen ? ds.last_seen_steady : started_;
  core::Millis limit = rule.silent_for.count() > 0 ? rule.silent_for
                                                   : core::Millis(dev.expectedIntervalMs());
  bool silent = now - last > limit && (ds.ever_seen || rule.never_seen);
  if (!inst.active && silent) {
    inst.start = last;
    raise(inst, state, now, sink);
  }
}

void Engine::raise(Instance& inst, const model::StateTable& state, core::SteadyTime now,
                   ActionSink& sink) {
  const RuleDef& rule = config_.rules[inst.rule];
  const model::Device& dev = compound_.devices[inst.device];
  inst.active = true;
  inst.pending = false;
  inst.clearing = false;
  ++stats_.raised;
  int64_t source_ms = rule.family->on_silence ? state.device(inst.device).last_seen_ms
                                              : sourceMs(rule, inst.device, state);
  std::string value =
      rule.family->on_silence ? "offline" : valueText(rule, inst.device, state);
  std::string reason = rule.name + ": " + dev.id + " " +
                       (rule.family->on_silence ? std::string("offline") : value) +
                       (rule.threshold_text.empty() ? "" : " (limit " + rule.threshold_text + ")");
  std::string done;
  for (const auto& spec : rule.on_raise) {
    bool any = false;
    for (auto target : writeTargets(compound_, spec, inst.device)) {
      any = write(rule, target, spec, reason, source_ms, now, &state, sink) || any;
    }
    if (any && !spec.note.empty()) {
      done += (done.empty() ? "" : "; ") + spec.note;
    }
  }
  if (!rule.alert) {
    return;
  }
  MessageFields f;
  f.set(Field::Device, dev.id);
  f.set(Field::Name, dev.name.empty() ? dev.id : dev.name);
  f.set(Field::Location, compound_.placeOf(dev));
  f.set(Field::Grid, dev.grid);
  f.set(Field::Value, value);
  f.set(Field::Threshold, rule.threshold_text);
  f.set(Field::Rule, rule.name);
  f.set(Field::Held, formatDuration(
                         std::chrono::duration_cast<core::Millis>(now - inst.start).count()));
  if (!rule.when.empty()) {
    f.set(Field::Point, compound_.pointName(rule.when.front().point));
  }
  for (const auto& p : rule.when) {
    if (p.on == Relation::Linked || p.on == Relation::Parent) {
      model::DeviceIndex o = p.on == Relation::Linked ? dev.linked : dev.parent;
      f.set(Field::Other, compound_.devices[o].id);
      const model::PointState* ps = state.point(o, p.point);
      f.set(Field::OtherValue, ps ? model::toText(ps->value) : "");
    } else if (p.on != Relation::Self) {
      f.set(Field::Other, "ports");
    }
  }
  AlertRaise a;
  a.rule = rule.name;
  a.device = inst.device;
  a.severity = rule.severity;
  a.message = rule.message.render(f);
  a.value = value;
  a.source_ms = source_ms;
  a.actions_taken = std::move(done);
  a.escalate_now = rule.escalate_now;
  sink.raiseAlert(a);
}

void Engine::clear(Instance& inst, const model::StateTable& state, std::string reason,
                   ActionSink& sink) {
  const RuleDef& rule = config_.rules[inst.rule];
  inst.active = false;
  inst.clearing = false;
  inst.pending = false;
  inst.samples = 0;
  ++stats_.cleared;
  int64_t source_ms = rule.family->on_silence ? state.device(inst.device).last_seen_ms
                                              : sourceMs(rule, inst.device, state);
  if (rule.alert) {
    sink.clearAlert(AlertClear{rule.name, inst.device, std::move(reason), source_ms});
  }
  if (rule.on_clear.empty()) {
    return;
  }
  core::SteadyTime now = clock_.steadyNow();
  for (const auto& spec : rule.on_clear) {
    for (auto target : writeTargets(compound_, spec, inst.device)) {
      // Another device of the same rule still wants this target (two CO sensors, one fan): the
      // clear of one must not undo the other's action.
      bool wanted = false;
      for (uint32_t i : rule_instances_[inst.rule]) {
        const Instance& o = instances_[i];
        if (wanted) {
          break;
        }
        if (&o == &inst || !o.active) {
          continue;
        }
        for (const auto& rs : rule.on_raise) {
          if (rs.point != spec.point) {
            continue;
          }
          auto ts = writeTargets(compound_, rs, o.device);
          wanted = wanted || std::find(ts.begin(), ts.end(), target) != ts.end();
        }
      }
      if (!wanted) {
        write(rule, target, spec, rule.name + " cleared", source_ms, now, &state, sink);
      }
    }
  }
}

bool Engine::write(const RuleDef& rule, model::DeviceIndex target, const WriteSpec& spec,
                   const std::string& reason, int64_t source_ms, core::SteadyTime now,
                   const model::StateTable* state, ActionSink& sink) {
  std::string why;
  uint64_t key = pointKey(target, spec.point);
  WriteIntent intent{target, spec.point, spec.value, Writer::Rule, false, false};
  if (!interlocks_.admit(intent, state, &why)) {
    deferred_.erase(key);
    ++stats_.writes_refused;
    refused_log_.warn("rule {}: not writing {}.{}={}: {}", rule.name, compound_.devices[target].id,
                      compound_.pointName(spec.point), model::toText(spec.value), why);
    return false;
  }
  // A cut is never held back: not by the rate limit, not behind a deferred write.
  bool cut = spec.safety || interlocks_.deEnergizing(target, spec.point, spec.value);
  if (cut) {
    deferred_.erase(key);
    last_writes_[key] = LastWrite{spec.value, now};
  } else {
    switch (admitRuleWrite(target, spec.point, spec.value, now)) {
    case Admit::Duplicate:
      deferred_.erase(key);
      return true;
    case Admit::RateLimited:
      // Held back, not dropped: a fan-off decided too soon after fan-on still happens later.
      if (deferred_.count(key) == 0) {
        ++stats_.writes_rate_limited;
      }
      deferred_[key] = Deferred{static_cast<uint32_t>(&rule - config_.rules.data()), target, &spec,
                                reason, source_ms};
      return false;
    case Admit::Write:
      deferred_.erase(key);
      break;
    }
  }
  if (spec.safety) {
    // Latched before the write leaves: from now on the gate refuses anything that would
    // re-energize the point, including writes already queued or awaiting their record.
    interlocks_.latch(Latch{target, spec.point, spec.value, rule.name, reason, clock_.wallMs()});
  }
  pending_writes_[key] = static_cast<uint32_t>(&rule - config_.rules.data());
  ++stats_.writes;
  WriteAction w;
  w.rule = rule.name;
  w.device = target;
  w.point = spec.point;
  w.value = spec.value;
  w.safety = spec.safety;
  w.reason = reason;
  w.source_ms = source_ms;
  sink.writePoint(w);
  return true;
}

Engine::Admit Engine::admitRuleWrite(model::DeviceIndex device, model::PointId point,
                                     const model::Value& value, core::SteadyTime now) {
  uint64_t k = pointKey(device, point);
  auto it = last_writes_.find(k);
  if (it != last_writes_.end() && now - it->second.at < config_.actuation.min_interval) {
    return sameWriteValue(it->second.value, value) ? Admit::Duplicate : Admit::RateLimited;
  }
  last_writes_[k] = LastWrite{value, now};
  return Admit::Write;
}

int64_t Engine::sourceMs(const RuleDef& rule, model::DeviceIndex device,
                         const model::StateTable& state) const {
  model::PointId p = 0;
  if (!rule.when.empty()) {
    p = rule.when.front().point;
  } else if (rule.expr && !rule.expr->points().empty()) {
    p = rule.expr->points().front();
  } else {
    return state.device(device).last_seen_ms;
  }
  const model::PointState* ps = state.point(device, p);
  return ps ? ps->source_ms : 0;
}

std::string Engine::valueText(const RuleDef& rule, model::DeviceIndex device,
                              const model::StateTable& state) const {
  if (rule.family->value_text != nullptr) {
    return rule.family->value_text(rule, compound_, state, device);
  }
  if (rule.when.empty()) {
    return "";
  }
  const model::PointState* ps = state.point(device, rule.when.front().point);
  return ps ? model::toText(ps->value) : "";
}

void Engine::onReading(const model::Reading& reading, const model::ApplyResult& /*applied*/,
                       const model::StateTable& state, ActionSink& sink) {
  ++stats_.readings;
  model::DeviceIndex d = reading.device;
  if (d >= compound_.devices.size()) {
    return;
  }
  core::SteadyTime now = clock_.steadyNow();
  if (reading.point == config_.occupancy.point && occupancy_.isSpace(d)) {
    occupancy_.onReading(d, state, now);
  }
  for (uint32_t i = dev_offsets_[d]; i < dev_offsets_[d + 1]; ++i) {
    const IndexEntry& e = entries_[i];
    Instance& inst = instances_[e.instance];
    if (e.point == reading.point) {
      ++stats_.visits;
      step(inst, state, now, true, sink);
    } else if (e.point == kAnyPoint && inst.active && inst.device == d) {
      ++stats_.visits;
      clear(inst, state, "device reporting again", sink);
    }
  }
}

void Engine::onDeviceOnline(model::DeviceIndex device, const model::StateTable& state,
                            ActionSink& sink) {
  if (device >= compound_.devices.size()) {
    return;
  }
  occupancy_.onDeviceOnline(device, state, clock_.steadyNow());
  for (uint32_t i = dev_offsets_[device]; i < dev_offsets_[device + 1]; ++i) {
    const IndexEntry& e = entries_[i];
    Instance& inst = instances_[e.instance];
    if (e.point == kAnyPoint && inst.active && inst.device == device) {
      clear(inst, state, "device back online", sink);
    }
  }
}

void Engine::onDeviceOffline(model::DeviceIndex device, const model::StateTable& state,
                             ActionSink& sink) {
  if (device >= compound_.devices.size()) {
    return;
  }
  core::SteadyTime now = clock_.steadyNow();
  occupancy_.onDeviceOffline(device);
  uint32_t last_instance = UINT32_MAX;
  for (uint32_t i = dev_offsets_[device]; i < dev_offsets_[device + 1]; ++i) {
    const IndexEntry& e = entries_[i];
    if (e.instance == last_instance) {
      continue;
    }
    last_instance = e.instance;
    Instance& inst = instances_[e.instance];
    const RuleDef& rule = config_.rules[inst.rule];
    if (rule.family->on_silence) {
      if (!inst.active && inst.device == device) {
        const model::DeviceState& ds = state.device(device);
        inst.start = ds.ever_seen ? ds.last_seen_steady : started_;
        raise(inst, state, now, sink);
      }
      continue;
    }
    // Its data is stale now: pending timers stop (an active alert stays until good data
    // says the condition is over).
    step(inst, state, now, false, sink);
  }
}

void Engine::tick(const model::StateTable& state, ActionSink& sink) {
  core::SteadyTime now = clock_.steadyNow();
  if (!swept_) {
    swept_ = true;
    occupancy_.resync(state, now);
    for (auto& inst : instances_) {
      if (!config_.rules[inst.rule].family->on_silence) {
        step(inst, state, now, false, sink);
      }
    }
  }
  if (!recovering_.empty()) {
    recover(state, now, sink);
  }
  for (size_t i = 0; i < timed_.size();) {
    Instance& inst = instances_[timed_[i]];
    if ((inst.pending || inst.clearing) && inst.deadline <= now) {
      step(inst, state, now, false, sink);
    }
    bool keep = (inst.pending || inst.clearing) && inst.deadline != core::SteadyTime::max();
    if (!keep) {
      inst.timed = false;
      timed_[i] = timed_.back();
      timed_.pop_back();
    } else {
      ++i;
    }
  }
  if (now - last_offline_scan_ >= std::chrono::seconds(1)) {
    last_offline_scan_ = now;
    for (auto id : offline_instances_) {
      Instance& inst = instances_[id];
      if (!inst.active) {
        stepOffline(inst, state, now, sink);
      }
    }
  }
  if (!deferred_.empty()) {
    std::vector<Deferred> due;
    for (const auto& kv : deferred_) {
      due.push_back(kv.second);
    }
    for (const auto& d : due) {
      write(config_.rules[d.rule], d.target, *d.spec, d.reason, d.source_ms, now, &state, sink);
    }
  }
  occupancy_.tick(state, now, clock_.wallMs(), sink);
}

namespace {
// At start-up a device that has not reported within this long is left to the rules as usual.
constexpr auto kRecoveryWindow = std::chrono::minutes(15);
} // namespace

void Engine::beginRecovery() {
  recovering_.clear();
  recovery_until_ = clock_.steadyNow() + kRecoveryWindow;
  for (uint32_t i = 0; i < instances_.size(); ++i) {
    const RuleDef& rule = config_.rules[instances_[i].rule];
    if (!rule_safety_[instances_[i].rule] || rule.family->on_silence) {
      continue;
    }
    for (const auto& spec : rule.on_raise) {
      if (!spec.safety) {
        continue;
      }
      Recovery r;
      r.instance = i;
      r.spec = &spec;
      r.targets = writeTargets(compound_, spec, instances_[i].device);
      if (!r.targets.empty()) {
        recovering_.push_back(std::move(r));
      }
    }
  }
}

void Engine::recover(const model::StateTable& state, core::SteadyTime now, ActionSink& sink) {
  if (now >= recovery_until_) {
    recovering_.clear();
    return;
  }
  for (size_t k = 0; k < recovering_.size();) {
    Recovery& r = recovering_[k];
    Instance& inst = instances_[r.instance];
    const RuleDef& rule = config_.rules[inst.rule];
    Cond c = evalWhen(rule, inst.device, state, true);
    if (c.tri == Tri::False) {
      r.targets.clear();  // no hazard on good data: nothing to rebuild
    } else if (c.tri == Tri::True) {
      for (size_t t = 0; t < r.targets.size();) {
        model::DeviceIndex target = r.targets[t];
        const model::PointState* ps = state.point(target, r.spec->point);
        if (ps == nullptr || ps->quality != model::Quality::Good) {
          ++t;  // its read-back has not come yet
          continue;
        }
        if (interlocks_.latched(target, r.spec->point) == nullptr) {
          std::string reason = rule.name + ": " + compound_.devices[inst.device].id + " " +
                               valueText(rule, inst.device, state) + " (after a restart)";
          if (sameWriteValue(ps->value, r.spec->value)) {
            // Cut before the restart (its record lost with the process) and still hazardous.
            interlocks_.latch(
                Latch{target, r.spec->point, r.spec->value, rule.name, reason, clock_.wallMs()});
            ++stats_.latches_rebuilt;
          } else if (inst.active) {
            // The rule had fired (its alert survived) but the cut did not reach the device.
            write(rule, target, *r.spec, reason, sourceMs(rule, inst.device, state), now, &state,
                  sink);
          }
        }
        r.targets[t] = r.targets.back();
        r.targets.pop_back();
      }
    }
    if (r.targets.empty()) {
      recovering_[k] = std::move(recovering_.back());
      recovering_.pop_back();
    } else {
      ++k;
    }
  }
}

bool Engine::holdRestorable(const RuleDef& rule) const {
  return rule.family->restorable_hold && rule.hold.count() > 0 && rule.when.size() == 1 &&
         rule.when[0].on == Relation::Self && !rule.when[0].timedByState();
}

core::Millis Engine::restorableHold() const {
  core::Millis longest{0};
  for (const auto& rule : config_.rules) {
    if (holdRestorable(rule)) {
      longest = std::max(longest, std::chrono::duration_cast<core::Millis>(rule.hold));
    }
  }
  return longest;
}

void Engine::restoreHolds(const std::vector<model::Reading>& recent, int64_t /*now_wall_ms*/) {
  if (recent.empty()) {
    return;
  }
  // (device, point) -> indexes into `recent`, oldest first.
  std::unordered_map<uint64_t, std::vector<uint32_t>> series;
  for (uint32_t i = 0; i < recent.size(); ++i) {
    series[pointKey(recent[i].device, recent[i].point)].push_back(i);
  }
  for (auto& inst : instances_) {
    const RuleDef& rule = config_.rules[inst.rule];
    if (inst.active || !holdRestorable(rule)) {
      continue;
    }
    const Predicate& p = rule.when[0];
    auto it = series.find(pointKey(inst.device, p.point));
    if (it == series.end()) {
      continue;
    }
    uint16_t n = 0;
    int64_t first = 0;
    for (auto k = it->second.rbegin(); k != it->second.rend(); ++k) {
      const model::Reading& r = recent[*k];
      auto v = model::asNumber(r.value);
      if (r.quality != model::Quality::Good || !v) {
        break;
      }
      bool ok = p.op == CmpOp::Gt   ? *v > p.number
                : p.op == CmpOp::Ge ? *v >= p.number
                : p.op == CmpOp::Lt ? *v < p.number
                                    : *v <= p.number;
      if (!ok) {
        break;
      }
      first = r.ingest_ms;
      n = static_cast<uint16_t>(std::min<int>(n + 1, UINT16_MAX));
    }
    if (n > 0) {
      inst.restored_samples = n;
      inst.restored_start_wall = first;
    }
  }
}

void Engine::onWriteResult(const WriteOutcome& outcome, ActionSink& sink) {
  if (outcome.superseded) {
    // A newer write to the point took over; its own outcome settles the point.
    return;
  }
  auto it = pending_writes_.find(pointKey(outcome.device, outcome.point));
  if (it == pending_writes_.end() || outcome.device >= compound_.devices.size()) {
    return;
  }
  if (outcome.refused) {
    pending_writes_.erase(it);
    ++stats_.writes_refused;
    refused_log_.warn("rule write {}.{}={} refused on its way out: {}",
                      compound_.devices[outcome.device].id, compound_.pointName(outcome.point),
                      model::toText(outcome.value), outcome.error);
    return;
  }
  const RuleDef& rule = config_.rules[it->second];
  pending_writes_.erase(it);
  bool& failed = failed_active_[outcome.device];
  if (outcome.ok) {
    if (failed) {
      failed = false;
      sink.clearAlert(AlertClear{config_.actuation.failed_rule, outcome.device,
                                 "write of " + compound_.pointName(outcome.point) + " confirmed",
                                 outcome.ts_ms});
    }
    return;
  }
  ++stats_.write_failures;
  const model::Device& dev = compound_.devices[outcome.device];
  const Latch* l = interlocks_.latched(outcome.device, outcome.point);
  MessageFields f;
  f.set(Field::Device, dev.id);
  f.set(Field::Name, dev.name.empty() ? dev.id : dev.name);
  f.set(Field::Location, compound_.placeOf(dev));
  f.set(Field::Grid, dev.grid);
  f.set(Field::Point, compound_.pointName(outcome.point));
  f.set(Field::Value, model::toText(outcome.value));
  f.set(Field::Rule, rule.name);
  f.set(Field::OtherValue, outcome.error);
  AlertRaise a;
  a.rule = config_.actuation.failed_rule;
  a.device = outcome.device;
  a.severity = Severity::Critical;
  a.message = config_.actuation.failed_message.render(f);
  a.value = model::toText(outcome.value);
  a.source_ms = outcome.ts_ms;
  a.actions_taken = l != nullptr ? "safety cut not confirmed: the point may still be live" : "";
  a.escalate_now = l != nullptr;
  failed = true;
  sink.raiseAlert(a);
}

bool Engine::mayWrite(model::DeviceIndex device, model::PointId point, const model::Value& value,
                      bool operator_override, std::string* reason) const {
  WriteIntent intent{device, point, value, Writer::Operator, operator_override, true};
  return interlocks_.admit(intent, nullptr, reason);
}

bool Engine::clearLatch(model::DeviceIndex device, model::PointId point) {
  const Latch* l = interlocks_.latched(device, point);
  if (l == nullptr) {
    return false;
  }
  // The rule that cut the point is re-armed: if the danger is still there after the operator
  // re-enabled it, the rule cuts again after its hold instead of staying quietly "active".
  for (uint32_t r = 0; r < config_.rules.size(); ++r) {
    const RuleDef& rule = config_.rules[r];
    if (rule.name != l->rule) {
      continue;
    }
    for (uint32_t i : rule_instances_[r]) {
      Instance& inst = instances_[i];
      if (!inst.active) {
        continue;
      }
      for (const auto& spec : rule.on_raise) {
        auto ts = writeTargets(compound_, spec, inst.device);
        if (spec.point == point && std::find(ts.begin(), ts.end(), device) != ts.end()) {
          inst.active = false;
          inst.pending = false;
          inst.clearing = false;
          inst.samples = 0;
        }
      }
    }
  }
  last_writes_.erase(pointKey(device, point));
  return interlocks_.clearLatch(device, point);
}

bool Engine::safetyCut(model::DeviceIndex device) const {
  if (device >= compound_.devices.size()) {
    return false;
  }
  for (const auto& p : compound_.devices[device].profile->points) {
    if (interlocks_.latched(device, p.id) != nullptr) {
      return true;
    }
  }
  return false;
}

bool Engine::restoreActive(std::string_view rule, model::DeviceIndex device) {
  for (uint32_t r = 0; r < config_.rules.size(); ++r) {
    if (config_.rules[r].name != rule) {
      continue;
    }
    for (uint32_t i : rule_instances_[r]) {
      if (instances_[i].device == device) {
        instances_[i].active = true;
        instances_[i].pending = false;
        return true;
      }
    }
  }
  if (rule == config_.actuation.failed_rule && device < compound_.devices.size()) {
    failed_active_[device] = true;
    return true;
  }
  return false;
}

void Engine::adopt(const Engine& previous, ActionSink& sink) {
  if (&previous.interlocks_ != &interlocks_) {
    for (const auto& l : previous.latches()) {
      interlocks_.restore(l);
    }
  }
  for (const auto& [rule, device] : previous.activeAlerts()) {
    if (!restoreActive(rule, device)) {
      sink.clearAlert(AlertClear{rule, device, "rule removed or changed by a config reload", 0});
    }
  }
  for (const auto& [device, active] : previous.failed_active_) {
    if (active) {
      failed_active_[device] = true;
    }
  }
}

std::vector<std::pair<std::string, model::DeviceIndex>> Engine::activeAlerts() const {
  std::vector<std::pair<std::string, model::DeviceIndex>> out;
  for (const auto& inst : instances_) {
    if (inst.active && config_.rules[inst.rule].alert) {
      out.emplace_back(config_.rules[inst.rule].name, inst.device);
    }
  }
  return out;
}

} // namespace hgj::rules
