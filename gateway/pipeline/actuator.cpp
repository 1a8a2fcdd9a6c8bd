#include "gateway/pipeline/actuator.h"

#include <cmath>

#include <spdlog/spdlog.h>

#include "drivers/profiles/mqtt_profile.h"

namespace hgj::pipeline {

namespace {

// At most this many writes per point per minute: a flapping rule or a stuck client must not
// hammer a relay.
constexpr size_t kWritesPerPointPerMinute = 6;
constexpr int64_t kModbusConfirmTimeoutMs = 10'000;

uint64_t pointKey(model::DeviceIndex d, model::PointId p) {
  return (static_cast<uint64_t>(d) << 16) | p;
}

bool sameValue(const model::Value& a, const model::Value& b) {
  auto na = model::asNumber(a);
  auto nb = model::asNumber(b);
  if (na && nb) {
    return std::fabs(*na - *nb) < 1e-9;
  }
  return a == b;
}

} // namespace

Actuator::Actuator(const model::Compound& compound, storage::Store& store,
                   core::MetricsRegistry& metrics, const core::Clock& clock)
    : compound_(compound), store_(store), clock_(clock),
      requested_(metrics.counter("hgj_actuations_total", "writes to devices, by result",
                                 {{"result", "requested"}})),
      confirmed_(metrics.counter("hgj_actuations_total", "writes to devices, by result",
                                 {{"result", "confirmed"}})),
      failed_(metrics.counter("hgj_actuations_total", "writes to devices, by result",
                              {{"result", "failed"}})),
      refused_(metrics.counter("hgj_actuations_total", "writes to devices, by result",
                               {{"result", "refused"}})),
      // Request ids stay unique across restarts: they start from the wall clock.
      next_id_(static_cast<uint64_t>(clock.wallMs()) * 1000) {}

drivers::Driver* Actuator::driverFor(const model::Device& d) const {
  for (auto* drv : drivers_) {
    if (drv->handles(d)) {
      return drv;
    }
  }
  return nullptr;
}

std::optional<uint64_t> Actuator::write(model::DeviceIndex device, model::PointId point,
                                        model::Value value, std::string origin, Callback done,
                                        std::string* error) {
  auto refuse = [&](std::string why) -> std::optional<uint64_t> {
    refused_.inc();
    if (error != nullptr) {
      *error = std::move(why);
    }
    return std::nullopt;
  };
  if (device >= compound_.devices.size()) {
    return refuse("unknown device");
  }
  const model::Device& dev = compound_.devices[device];
  const model::PointDef* def = dev.profile->point(point);
  if (def == nullptr) {
    return refuse("device " + dev.id + " has no point " + compound_.pointName(point));
  }
  if (!def->writable) {
    return refuse("point " + def->name + " of " + dev.id + " is not writable");
  }
  auto coerced = model::coerce(value, def->type);
  if (!coerced) {
    return refuse("value " + model::toText(value) + " does not fit point " + def->name + " (" +
                  model::pointTypeName(def->type) + ")");
  }
  if (auto n = model::asNumber(*coerced); n && def->type == model::PointType::Number) {
    if ((def->min && *n < *def->min) || (def->max && *n > *def->max)) {
      return refuse("value " + model::toText(*coerced) + " is out of range for " + def->name);
    }
  }
  drivers::Driver* drv = driverFor(dev);
  if (drv == nullptr) {
    return refuse("no driver reaches " + dev.id);
  }
  uint64_t key = pointKey(device, point);
  // An identical write already on its way is not repeated.
  for (auto& [id, p] : pending_) {
    if (p.device == device && p.point == point && sameValue(p.value, *coerced)) {
      return id;
    }
  }
  auto now = clock_.steadyNow();
  auto& recent = recent_[key];
  while (!recent.empty() && now - recent.front() > std::chrono::minutes(1)) {
    recent.pop_front();
  }
  if (recent.size() >= kWritesPerPointPerMinute) {
    return refuse("rate limit: more than " + std::to_string(kWritesPerPointPerMinute) +
                  " writes to " + dev.id + "." + def->name + " in a minute");
  }
  recent.push_back(now);

  uint64_t id = ++next_id_;
  Pending p;
  p.id = id;
  p.device = device;
  p.point = point;
  p.value = *coerced;
  p.origin = std::move(origin);
  p.by_report = dev.profile->transport == "mqtt";
  p.done = std::move(done);
  int64_t timeout = kModbusConfirmTimeoutMs;
  if (p.by_report && dev.profile->mqtt && dev.profile->mqtt->command) {
    timeout = dev.profile->mqtt->command->confirm_timeout_ms;
  }
  p.deadline = now + core::Millis(timeout);
  requested_.inc();
  spdlog::info("actuation {}: {}.{} := {} ({})", id, dev.id, def->name, model::toText(p.value),
               p.origin);
  auto& stored = pending_.emplace(id, std::move(p)).first->second;
  send(stored);
  return id;
}

void Actuator::send(Pending& p) {
  storage::ActuationRecord rec;
  rec.request_id = p.id;
  rec.ts_ms = clock_.wallMs();
  rec.device = p.device;
  rec.point = p.point;
  rec.value = p.value;
  rec.origin = p.origin;
  rec.state = p.attempts > 1 ? "retried" : "decided";
  drivers::WriteRequest req;
  req.id = p.id;
  req.device = p.device;
  req.point = p.point;
  req.value = p.value;
  req.origin = p.origin;
  drivers::Driver* drv = driverFor(compound_.devices[p.device]);
  // The decision is on disk before the device is told.
  store_.submitActuation(std::move(rec), [drv, req] { drv->write(req); });
}

void Actuator::finish(uint64_t id, bool ok, std::string error) {
  auto it = pending_.find(id);
  if (it == pending_.end()) {
    return;
  }
  Pending p = std::move(it->second);
  pending_.erase(it);
  (ok ? confirmed_ : failed_).inc();
  store_.updateActuation(id, ok ? "confirmed" : "failed", error);
  const auto& dev = compound_.devices[p.device];
  if (ok) {
    spdlog::info("actuation {}: {}.{} confirmed", id, dev.id, compound_.pointName(p.point));
  } else {
    spdlog::error("actuation {}: {}.{} := {} failed: {}", id, dev.id,
                  compound_.pointName(p.point), model::toText(p.value), error);
  }
  if (p.done) {
    ActuationOutcome out{id, p.device, p.point, p.value, p.origin, ok, std::move(error)};
    p.done(out);
  }
}

void Actuator::onResult(const drivers::WriteResult& r) {
  auto it = pending_.find(r.request_id);
  if (it == pending_.end()) {
    return;
  }
  if (r.ok) {
    finish(r.request_id, true, {});
    return;
  }
  Pending& p = it->second;
  if (p.attempts < 2) {
    ++p.attempts;
    spdlog::warn("actuation {}: {} — retrying once", p.id, r.error);
    send(p);
    return;
  }
  finish(r.request_id, false, r.error);
}

void Actuator::onReading(const model::Reading& reading) {
  if (pending_.empty()) {
    return;
  }
  for (auto& [id, p] : pending_) {
    if (p.by_report && p.device == reading.device && p.point == reading.point &&
        sameValue(p.value, reading.value)) {
      finish(id, true, {});
      return;
    }
  }
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
    auto& p = pending_.at(id);
    if (p.attempts < 2) {
      ++p.attempts;
      int64_t timeout = kModbusConfirmTimeoutMs;
      const auto& prof = compound_.devices[p.device].profile;
      if (p.by_report && prof->mqtt && prof->mqtt->command) {
        timeout = prof->mqtt->command->confirm_timeout_ms;
      }
      p.deadline = now + core::Millis(timeout);
      spdlog::warn("actuation {}: not confirmed in time — retrying once", id);
      send(p);
    } else {
      finish(id, false, p.by_report ? "device did not confirm the value (no report showing it)"
                                    : "no result from the driver");
    }
  }
}

} // namespace hgj::pipeline
