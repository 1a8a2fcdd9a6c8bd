#include "gateway/pipeline/control.h"

#include <spdlog/spdlog.h>

#include "rules/message_template.h"

namespace hgj::pipeline {

namespace {

uint64_t pointKey(model::DeviceIndex d, model::PointId p) {
  return (static_cast<uint64_t>(d) << 16) | p;
}

} // namespace

rules::InterlockConfig Control::interlockConfig(const rules::RulesConfig& rules,
                                                bool upstream_override) {
  rules::InterlockConfig c;
  c.upstream_override = upstream_override;
  c.shed_power_limit_w = rules.actuation.shed_power_limit_w;
  c.shed_power_point = rules.actuation.shed_power_point;
  return c;
}

Control::Control(const model::Compound& compound, const model::StateTable& state,
                 std::shared_ptr<const rules::RulesConfig> rules, ActuationJournal& journal,
                 ControlOutputs& outputs, core::MetricsRegistry& metrics,
                 const core::Clock& clock, bool upstream_override)
    : compound_(compound), state_(state), clock_(clock), outputs_(outputs),
      upstream_override_(upstream_override),
      interlocks_(compound, interlockConfig(*rules, upstream_override)),
      actuator_(compound, interlocks_, state, journal, metrics, clock), rules_(std::move(rules)),
      engine_(std::make_unique<rules::Engine>(*rules_, compound, clock, &interlocks_)),
      breaches_(metrics.counter("hgj_safety_latch_breaches_total",
                                "readings that showed a safety-latched point live (cut again)")),
      refresh_sent_(metrics.counter("hgj_refresh_requests_total",
                                    "out-of-cycle reads asked by safety rules, by result",
                                    {{"result", "sent"}})),
      refresh_limited_(metrics.counter("hgj_refresh_requests_total",
                                       "out-of-cycle reads asked by safety rules, by result",
                                       {{"result", "rate_limited"}})),
      refresh_unroutable_(metrics.counter("hgj_refresh_requests_total",
                                          "out-of-cycle reads asked by safety rules, by result",
                                          {{"result", "no_driver"}})) {
  // Latch records are written once the call that set them is over: the cut goes out first.
  interlocks_.setListener([this](const rules::Latch& l, bool set) {
    latch_changes_.emplace_back(l, set);
  });
}

Control::~Control() = default;

void Control::settle() {
  actuator_.runCompletions();
  if (!latch_changes_.empty()) {
    auto changes = std::move(latch_changes_);
    latch_changes_.clear();
    for (const auto& [latch, set] : changes) {
      outputs_.latchChanged(latch, set);
    }
  }
}

void Control::onReading(const model::Reading& reading, const model::ApplyResult& applied) {
  engine_->onReading(reading, applied, state_, *this);
  actuator_.onReading(reading);
  // Outcomes first: the reading may have confirmed an allowed override, which clears the
  // latch it would otherwise breach.
  settle();
  if (interlocks_.anyLatched() || !breach_active_.empty()) {
    checkLatch(reading);
    settle();
  }
}

void Control::checkLatch(const model::Reading& r) {
  if (r.quality != model::Quality::Good) {
    return;
  }
  const rules::Latch* l = interlocks_.latched(r.device, r.point);
  uint64_t key = pointKey(r.device, r.point);
  if (l == nullptr || rules::sameWriteValue(r.value, l->value)) {
    auto it = breach_active_.find(key);
    if (it != breach_active_.end()) {
      breach_active_.erase(it);
      outputs_.clearAlert(rules::AlertClear{rules_->actuation.breach_rule, r.device,
                                            compound_.pointName(r.point) + " is off again",
                                            r.source_ms});
    }
    return;
  }
  if (actuator_.pendingFor(r.device, r.point)) {
    // A write to the point is on its way (the cut, or an allowed override): its own
    // confirmation or failure settles it.
    return;
  }
  // The point is live although a safety rule cut it and nothing allowed re-enabled it (someone
  // switched it on at the device, a controller rebooted, a cut never arrived).
  breaches_.inc();
  rules::Latch latch = *l;
  const model::Device& dev = compound_.devices[r.device];
  spdlog::critical("safety latch breach: {}.{} reads {} although {} cut it; cutting again",
                   dev.id, compound_.pointName(r.point), model::toText(r.value), latch.rule);
  WriteOrder order;
  order.device = r.device;
  order.point = r.point;
  order.value = latch.value;
  order.writer = rules::Writer::Gateway;
  order.origin = "gateway:latch " + latch.rule;
  order.safety = true;
  actuator_.write(std::move(order), nullptr);
  rules::MessageFields f;
  f.set(rules::Field::Device, dev.id);
  f.set(rules::Field::Name, dev.name.empty() ? dev.id : dev.name);
  f.set(rules::Field::Location, dev.location.text());
  f.set(rules::Field::Grid, dev.grid);
  f.set(rules::Field::Point, compound_.pointName(r.point));
  f.set(rules::Field::Value, model::toText(r.value));
  f.set(rules::Field::Rule, latch.rule);
  rules::AlertRaise a;
  a.rule = rules_->actuation.breach_rule;
  a.device = r.device;
  a.severity = rules::Severity::Critical;
  a.message = rules_->actuation.breach_message.render(f);
  a.value = model::toText(r.value);
  a.source_ms = r.source_ms;
  a.actions_taken = "已再次断电";
  a.escalate_now = true;
  breach_active_[key] = true;
  outputs_.raiseAlert(a);
}

void Control::onDeviceOnline(model::DeviceIndex device) {
  engine_->onDeviceOnline(device, state_, *this);
  settle();
}

void Control::onDeviceOffline(model::DeviceIndex device) {
  engine_->onDeviceOffline(device, state_, *this);
  settle();
}

void Control::onResult(const drivers::WriteResult& result) {
  actuator_.onResult(result);
  settle();
}

void Control::onRecorded(uint64_t request_id, bool durable) {
  actuator_.onRecorded(request_id, durable);
  settle();
}

void Control::tick() {
  actuator_.tick();
  settle();
  engine_->tick(state_, *this);
  settle();
}

bool Control::admissible(model::DeviceIndex device, model::PointId point,
                         const model::Value& value, rules::Writer writer, bool override_latch,
                         std::string* reason) const {
  rules::WriteIntent intent{device, point, value, writer, override_latch, true};
  return interlocks_.admit(intent, &state_, reason);
}

void Control::write(model::DeviceIndex device, model::PointId point, model::Value value,
                    rules::Writer writer, std::string origin, bool override_latch,
                    std::function<void(const ActuationOutcome&)> done) {
  WriteOrder order;
  order.device = device;
  order.point = point;
  order.value = std::move(value);
  order.writer = writer;
  order.origin = std::move(origin);
  order.override_latch = override_latch;
  actuator_.write(std::move(order),
                  [this, override_latch, done = std::move(done)](const ActuationOutcome& o) {
                    if (o.ok && override_latch && engine_->clearLatch(o.device, o.point)) {
                      spdlog::warn("safety latch of {}.{} cleared by an override ({})",
                                   compound_.devices[o.device].id, compound_.pointName(o.point),
                                   o.origin);
                    }
                    if (done) {
                      done(o);
                    }
                  });
  settle();
}

void Control::reload(std::shared_ptr<const rules::RulesConfig> rules) {
  auto next = std::make_unique<rules::Engine>(*rules, compound_, clock_, &interlocks_);
  next->adopt(*engine_, *this);
  interlocks_.configure(interlockConfig(*rules, upstream_override_));
  engine_ = std::move(next);
  rules_ = std::move(rules);
  settle();
}

void Control::raiseAlert(const rules::AlertRaise& alert) { outputs_.raiseAlert(alert); }

void Control::clearAlert(const rules::AlertClear& clear) { outputs_.clearAlert(clear); }

void Control::writePoint(const rules::WriteAction& w) {
  WriteOrder order;
  order.device = w.device;
  order.point = w.point;
  order.value = w.value;
  order.writer = rules::Writer::Rule;
  order.origin = "rule:" + std::string(w.rule);
  order.safety = w.safety;
  actuator_.write(std::move(order), [this](const ActuationOutcome& o) {
    rules::WriteOutcome out;
    out.device = o.device;
    out.point = o.point;
    out.value = o.value;
    out.ok = o.ok;
    out.superseded = o.status == ActuationStatus::Superseded;
    out.refused = o.status == ActuationStatus::Refused;
    out.error = o.error;
    out.ts_ms = clock_.wallMs();
    engine_->onWriteResult(out, *this);
  });
}

void Control::refresh(model::DeviceIndex device, std::string_view rule) {
  auto now = clock_.steadyNow();
  auto it = last_refresh_.find(device);
  if (it != last_refresh_.end() && now - it->second < rules_->actuation.refresh_min_interval) {
    refresh_limited_.inc();
    return;
  }
  drivers::Driver* drv = actuator_.driverFor(device);
  if (drv == nullptr) {
    refresh_unroutable_.inc();
    return;
  }
  last_refresh_[device] = now;
  refresh_sent_.inc();
  drivers::RefreshRequest req;
  req.device = device;
  req.origin = "rule:" + std::string(rule);
  drv->refresh(req);
}

} // namespace hgj::pipeline
