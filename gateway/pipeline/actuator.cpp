#include "gateway/pipeline/actuator.h"

#include <spdlog/spdlog.h>

#include "core/enum_names.h"
#include "drivers/profiles/mqtt_profile.h"

namespace hgj::pipeline {

namespace {

// After this many writes to a point in a minute, energizing ones are refused: a flapping rule or
// a stuck client must not hammer a relay. Cuts count, but are never held back.
constexpr size_t kWritesPerPointPerMinute = 6;
constexpr int64_t kModbusConfirmTimeoutMs = 10'000;
// An energizing write whose record is not durable by then is failed, not left hanging.
constexpr int64_t kRecordTimeoutMs = 10'000;

// How the write `w` (an order, or a pending write) ended, for whoever asked for it.
template <typename W>
ActuationOutcome outcomeOf(const W& w, uint64_t id, ActuationStatus status, std::string error) {
  ActuationOutcome out;
  out.request_id = id;
  out.device = w.device;
  out.point = w.point;
  out.value = w.value;
  out.origin = w.origin;
  out.status = status;
  out.ok = status == ActuationStatus::Confirmed;
  out.error = std::move(error);
  return out;
}

} // namespace

constexpr core::EnumNames<ActuationStatus, 4> kActuationStatusNames{
    {{ActuationStatus::Confirmed, "confirmed"}, {ActuationStatus::Failed, "failed"},
     {ActuationStatus::Refused, "refused"}, {ActuationStatus::Superseded, "superseded"}}};

const char* actuationStatusName(ActuationStatus s) { return kActuationStatusNames.name(s, "?"); }

Actuator::Actuator(const model::Compound& compound, rules::Interlocks& interlocks,
                   const model::StateTable& state, ActuationJournal& journal,
                   core::MetricsRegistry& metrics, const core::Clock& clock)
    : compound_(compound), interlocks_(interlocks), state_(state), journal_(journal),
      clock_(clock),
      requested_(metrics.counter("hgj_actuations_total", "writes to devices, by result",
                                 {{"result", "requested"}})),
      sent_(metrics.counter("hgj_actuation_sends_total",
                            "writes handed to a driver (first sends and retries)")),
      // Request ids stay unique across restarts: they start from the wall clock.
      next_id_(static_cast<uint64_t>(clock.wallMs()) * 1000) {
  for (ActuationStatus s : {ActuationStatus::Confirmed, ActuationStatus::Failed,
                            ActuationStatus::Refused, ActuationStatus::Superseded}) {
    ended_[static_cast<size_t>(s)] = &metrics.counter("hgj_actuations_total",
                                                      "writes to devices, by result",
                                                      {{"result", actuationStatusName(s)}});
  }
}

drivers::Driver* Actuator::driverFor(model::DeviceIndex device) const {
  if (device >= compound_.devices.size()) {
    return nullptr;
  }
  for (auto* drv : drivers_) {
    if (drv->handles(compound_.devices[device])) {
      return drv;
    }
  }
  return nullptr;
}

void Actuator::refuseNow(const WriteOrder& order, uint64_t id, std::string why, Callback done) {
  ended_[static_cast<size_t>(ActuationStatus::Refused)]->inc();
  ActuationOutcome out = outcomeOf(order, id, ActuationStatus::Refused, std::move(why));
  std::vector<Callback> cbs;
  if (done) {
    cbs.push_back(std::move(done));
  }
  completions_.emplace_back(std::move(cbs), std::move(out));
}

std::string Actuator::whyNotWritable(WriteOrder& order) const {
  if (order.device >= compound_.devices.size()) {
    return "unknown device";
  }
  const model::Device& dev = compound_.devices[order.device];
  const model::PointDef* def = dev.profile->point(order.point);
  if (def == nullptr) {
    return "device " + dev.id + " has no point " + compound_.pointName(order.point);
  }
  if (!def->writable) {
    return "point " + def->name + " of " + dev.id + " is not writable";
  }
  auto coerced = model::coerce(order.value, def->type);
  if (!coerced) {
    return "value " + model::toText(order.value) + " does not fit point " + def->name + " (" +
           model::pointTypeName(def->type) + ")";
  }
  order.value = *coerced;
  if (auto n = model::asNumber(order.value); n && def->type == model::PointType::Number) {
    if ((def->min && *n < *def->min) || (def->max && *n > *def->max)) {
      return "value " + model::toText(order.value) + " is out of range for " + def->name;
    }
  }
  if (driverFor(order.device) == nullptr) {
    return "no driver reaches " + dev.id;
  }
  return {};
}

bool Actuator::overRateLimit(uint64_t key, bool urgent, core::SteadyTime now) {
  auto& recent = recent_[key];
  while (!recent.empty() && now - recent.front() > std::chrono::minutes(1)) {
    recent.pop_front();
  }
  // Every write counts against the limit; only an energizing one is ever refused by it.
  if (!urgent && recent.size() >= kWritesPerPointPerMinute) {
    return true;
  }
  recent.push_back(now);
  return false;
}

uint64_t Actuator::write(WriteOrder order, Callback done) {
  uint64_t id = ++next_id_;
  if (std::string why = whyNotWritable(order); !why.empty()) {
    refuseNow(order, id, std::move(why), std::move(done));
    return id;
  }
  const model::Device& dev = compound_.devices[order.device];
  const model::PointDef* def = dev.profile->point(order.point);
  bool urgent = order.safety || interlocks_.deEnergizing(order.device, order.point, order.value);
  if (!urgent) {
    // Refused now if the interlocks would refuse it even once recorded: such a write must not
    // supersede (cancel) a cut still on its way.
    rules::WriteIntent intent{order.device, order.point, order.value, order.writer,
                              order.override_latch, true};
    std::string why;
    if (!interlocks_.admit(intent, &state_, &why)) {
      refuseNow(order, id, why, std::move(done));
      return id;
    }
  }
  uint64_t key = pointKey(order.device, order.point);
  if (auto it = by_point_.find(key); it != by_point_.end()) {
    Pending& old = pending_.at(it->second);
    if (rules::sameWriteValue(old.value, order.value) &&
        (old.override_latch || !order.override_latch) && (old.urgent || !urgent)) {
      // The same value is already on its way: join it rather than send it twice.
      if (done) {
        old.done.push_back(std::move(done));
      }
      return old.id;
    }
    // A newer write replaces the older one: it never goes out (again) after this.
    spdlog::info("actuation {}: superseded by {}", old.id, id);
    finish(old.id, ActuationStatus::Superseded,
           "superseded by write " + std::to_string(id) + " (" + order.origin + ")");
  }
  auto now = clock_.steadyNow();
  if (overRateLimit(key, urgent, now)) {
    refuseNow(order, id,
              "rate limit: more than " + std::to_string(kWritesPerPointPerMinute) +
                  " writes to " + dev.id + "." + def->name + " in a minute",
              std::move(done));
    return id;
  }

  Pending p;
  p.id = id;
  p.device = order.device;
  p.point = order.point;
  p.value = order.value;
  p.origin = std::move(order.origin);
  p.writer = order.writer;
  p.override_latch = order.override_latch;
  p.urgent = urgent;
  p.by_report = dev.profile->transport == "mqtt";
  p.timeout_ms = kModbusConfirmTimeoutMs;
  const auto* mqtt = drivers::profiles::mqttSpec(*dev.profile);
  if (p.by_report && mqtt != nullptr && mqtt->command) {
    p.timeout_ms = mqtt->command->confirm_timeout_ms;
  }
  if (done) {
    p.done.push_back(std::move(done));
  }
  requested_.inc();
  spdlog::info("actuation {}: {}.{} := {} ({}){}", id, dev.id, def->name,
               model::toText(p.value), p.origin,
               urgent ? ", de-energizing: sent now, recorded in parallel" : "");
  Pending& stored = pending_.emplace(id, std::move(p)).first->second;
  by_point_[key] = id;
  if (urgent) {
    // The cut leaves before anything touches the disk; its record follows in parallel.
    if (dispatch(stored)) {
      journal_.record(recordOf(pending_.at(id), "sent"));
    }
  } else {
    stored.deadline = now + core::Millis(kRecordTimeoutMs);
    journal_.recordFirst(recordOf(stored, "decided"));
  }
  return id;
}

storage::ActuationRecord Actuator::recordOf(const Pending& p, const char* state) const {
  storage::ActuationRecord rec;
  rec.request_id = p.id;
  rec.ts_ms = clock_.wallMs();
  rec.device = p.device;
  rec.point = p.point;
  rec.value = p.value;
  rec.origin = p.origin;
  rec.state = state;
  return rec;
}

bool Actuator::dispatch(Pending& p) {
  rules::WriteIntent intent{p.device, p.point, p.value, p.writer, p.override_latch, p.recorded};
  std::string why;
  if (!interlocks_.admit(intent, &state_, &why)) {
    spdlog::warn("actuation {}: refused by the interlocks: {}", p.id, why);
    finish(p.id, ActuationStatus::Refused, why);
    return false;
  }
  drivers::Driver* drv = driverFor(p.device);
  if (drv == nullptr) {
    finish(p.id, ActuationStatus::Failed, "no driver reaches " + compound_.devices[p.device].id);
    return false;
  }
  ++p.attempts;
  p.sent = true;
  p.deadline = clock_.steadyNow() + core::Millis(p.timeout_ms);
  sent_.inc();
  drv->write({.id = p.id, .device = p.device, .point = p.point, .value = p.value,
              .origin = p.origin, .de_energize = p.urgent});
  return true;
}

void Actuator::finish(uint64_t id, ActuationStatus status, std::string error) {
  auto it = pending_.find(id);
  if (it == pending_.end()) {
    return;
  }
  Pending p = std::move(it->second);
  pending_.erase(it);
  uint64_t key = pointKey(p.device, p.point);
  if (auto bp = by_point_.find(key); bp != by_point_.end() && bp->second == id) {
    by_point_.erase(bp);
  }
  ended_[static_cast<size_t>(status)]->inc();
  journal_.update(id, actuationStatusName(status), error);
  const auto& dev = compound_.devices[p.device];
  if (status == ActuationStatus::Confirmed) {
    spdlog::info("actuation {}: {}.{} confirmed", id, dev.id, compound_.pointName(p.point));
  } else if (status == ActuationStatus::Failed) {
    spdlog::error("actuation {}: {}.{} := {} failed: {}", id, dev.id,
                  compound_.pointName(p.point), model::toText(p.value), error);
  }
  completions_.emplace_back(std::move(p.done), outcomeOf(p, id, status, std::move(error)));
}

void Actuator::runCompletions() {
  if (completing_) {
    return;  // the outer call runs what this one would
  }
  completing_ = true;
  while (!completions_.empty()) {
    auto batch = std::move(completions_);
    completions_.clear();
    for (auto& [callbacks, outcome] : batch) {
      for (auto& cb : callbacks) {
        cb(outcome);
      }
    }
  }
  completing_ = false;
}

void Actuator::onRecorded(uint64_t request_id, bool durable) {
  auto it = pending_.find(request_id);
  if (it == pending_.end() || it->second.sent) {
    return;  // superseded meanwhile, or a cut (sent before its record)
  }
  if (!durable) {
    finish(request_id, ActuationStatus::Failed,
           "its record could not be written, so it was not executed");
    return;
  }
  it->second.recorded = true;
  if (dispatch(it->second)) {
    journal_.update(request_id, "sent", {});
  }
}

void Actuator::onResult(const drivers::WriteResult& r) {
  auto it = pending_.find(r.request_id);
  if (it == pending_.end() || !it->second.sent) {
    return;
  }
  if (r.ok) {
    finish(r.request_id, ActuationStatus::Confirmed, {});
    return;
  }
  Pending& p = it->second;
  p.device_writes += std::max(1, r.attempts);
  // A driver that verifies by read-back already tried twice; one more round adds nothing.
  if (p.attempts < 2 && r.attempts < 2) {
    spdlog::warn("actuation {}: {} — retrying once", p.id, r.error);
    journal_.update(p.id, "retried", r.error);
    dispatch(p);
    return;
  }
  // The audit row says how often the device was asked (docs/rules.md, the failure chain).
  finish(r.request_id, ActuationStatus::Failed,
         r.error + " (" + std::to_string(p.device_writes) + " writes)");
}

void Actuator::onReading(const model::Reading& reading) {
  if (pending_.empty() || reading.quality != model::Quality::Good) {
    return;
  }
  auto bp = by_point_.find(pointKey(reading.device, reading.point));
  if (bp == by_point_.end()) {
    return;
  }
  const Pending& p = pending_.at(bp->second);
  if (p.by_report && p.sent && rules::sameWriteValue(p.value, reading.value)) {
    finish(p.id, ActuationStatus::Confirmed, {});
  }
}

bool Actuator::pendingFor(model::DeviceIndex device, model::PointId point) const {
  return by_point_.count(pointKey(device, point)) != 0;
}

void Actuator::tick() {
  if (pending_.empty()) {
    return;
  }
  auto now = clock_.steadyNow();
  std::vector<uint64_t> expired;
  for (auto& [id, p] : pending_) {
    if (now >= p.deadline) {
      expired.push_back(id);
    }
  }
  for (uint64_t id : expired) {
    auto it = pending_.find(id);
    if (it == pending_.end()) {
      continue;
    }
    Pending& p = it->second;
    if (!p.sent) {
      finish(id, ActuationStatus::Failed, "its record did not become durable in time");
    } else if (p.attempts < 2) {
      spdlog::warn("actuation {}: not confirmed in time — retrying once", id);
      journal_.update(id, "retried", "not confirmed in time");
      dispatch(p);
    } else {
      finish(id, ActuationStatus::Failed,
             std::string(p.by_report ? "device did not confirm the value (no report showing it)"
                                     : "no result from the driver") +
                 " (" + std::to_string(p.attempts) + " writes)");
    }
  }
}

} // namespace hgj::pipeline
