#include "rules/interlock/interlocks.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/enum_names.h"

namespace hgj::rules {

constexpr core::EnumNames<Writer, 4> kWriterNames{{{Writer::Rule, "rule"},
                                                    {Writer::Operator, "operator"},
                                                    {Writer::Upstream, "upstream"},
                                                    {Writer::Gateway, "gateway"}}};

const char* writerName(Writer w) { return kWriterNames.name(w, "?"); }

bool sameWriteValue(const model::Value& a, const model::Value& b) {
  auto na = model::asNumber(a);
  auto nb = model::asNumber(b);
  if (na && nb && !std::holds_alternative<std::string>(a) &&
      !std::holds_alternative<std::string>(b)) {
    return std::fabs(*na - *nb) < 1e-9;
  }
  return a == b;
}

Interlocks::Interlocks(const model::Compound& compound, InterlockConfig config)
    : compound_(compound), config_(std::move(config)) {}

bool Interlocks::deEnergizing(model::DeviceIndex device, model::PointId point,
                              const model::Value& value) const {
  if (device >= compound_.devices.size()) {
    return false;
  }
  const model::PointDef* def = compound_.devices[device].profile->point(point);
  return def != nullptr && def->safe && sameWriteValue(*def->safe, value);
}

bool Interlocks::admit(const WriteIntent& w, const model::StateTable* state,
                       std::string* reason) const {
  auto no = [&](std::string why) {
    if (reason != nullptr) {
      *reason = std::move(why);
    }
    return false;
  };
  // Removing power is always allowed: no latch, limit or policy stands in its way.
  if (deEnergizing(w.device, w.point, w.value)) {
    return true;
  }
  const Latch* l = latched(w.device, w.point);
  if (l != nullptr && !sameWriteValue(l->value, w.value)) {
    std::string what =
        "cut by safety rule " + l->rule + (l->reason.empty() ? "" : " (" + l->reason + ")");
    if (!w.override_latch) {
      return no(what + "; re-enabling needs an operator override");
    }
    switch (w.writer) {
    case Writer::Rule:
    case Writer::Gateway:
      return no(what + "; rules never override a safety cut");
    case Writer::Operator:
      if (!config_.operator_override) {
        return no(what + "; overrides from the local API are disabled");
      }
      break;
    case Writer::Upstream:
      if (!config_.upstream_override) {
        return no(what + "; overrides from upstream are not allowed on this gateway "
                         "(uplink.commands.allow_override)");
      }
      break;
    }
    if (!w.recorded) {
      return no(what + "; an override is executed only once its record is durable");
    }
    if (reason != nullptr) {
      *reason = "override of: " + what;
    }
  }
  // The shed power interlock (docs/rules.md, actuation.shed_power_limit: no new session above
  // the shed's limit).
  if (state != nullptr && config_.shed_power_limit_w > 0 && w.device < compound_.devices.size()) {
    const model::PointDef* def = compound_.devices[w.device].profile->point(w.point);
    if (def != nullptr && def->safe) {
      if (auto p = shedPower(w.device, *state); p && *p > config_.shed_power_limit_w) {
        char buf[160];
        std::snprintf(buf, sizeof buf, "shed %s draws %.0f W, over its limit of %.0f W",
                      compound_.devices[compound_.devices[w.device].parent].id.c_str(), *p,
                      config_.shed_power_limit_w);
        return no(buf);
      }
    }
  }
  return true;
}

std::optional<double> Interlocks::shedPower(model::DeviceIndex port,
                                            const model::StateTable& state) const {
  if (port >= compound_.devices.size()) {
    return std::nullopt;
  }
  model::DeviceIndex shed = compound_.devices[port].parent;
  if (shed == model::kNoDevice) {
    return std::nullopt;
  }
  auto pid = compound_.pointId(config_.shed_power_point);
  if (!pid) {
    return std::nullopt;
  }
  if (const model::Value* v = state.goodValue(shed, *pid)) {
    if (auto n = model::asNumber(*v)) {
      return *n;
    }
  }
  // No meter on the shed: the ports' own readings add up to its draw.
  double sum = 0;
  bool any = false;
  for (model::DeviceIndex c : compound_.devices[shed].children) {
    if (const model::Value* v = state.goodValue(c, *pid)) {
      if (auto n = model::asNumber(*v)) {
        sum += *n;
        any = true;
      }
    }
  }
  return any ? std::optional<double>(sum) : std::nullopt;
}

void Interlocks::latch(Latch l) {
  uint64_t k = key(l.device, l.point);
  auto& slot = latches_[k];
  slot = std::move(l);
  if (listener_) {
    listener_(slot, true);
  }
}

void Interlocks::restore(Latch l) {
  uint64_t k = key(l.device, l.point);
  latches_[k] = std::move(l);
}

bool Interlocks::clearLatch(model::DeviceIndex device, model::PointId point) {
  auto it = latches_.find(key(device, point));
  if (it == latches_.end()) {
    return false;
  }
  Latch gone = std::move(it->second);
  latches_.erase(it);
  if (listener_) {
    listener_(gone, false);
  }
  return true;
}

const Latch* Interlocks::latched(model::DeviceIndex device, model::PointId point) const {
  if (latches_.empty()) {
    return nullptr;
  }
  auto it = latches_.find(key(device, point));
  return it == latches_.end() ? nullptr : &it->second;
}

std::vector<Latch> Interlocks::latches() const {
  std::vector<Latch> out;
  out.reserve(latches_.size());
  for (const auto& kv : latches_) {
    out.push_back(kv.second);
  }
  std::sort(out.begin(), out.end(), [](const Latch& a, const Latch& b) {
    return a.device != b.device ? a.device < b.device : a.point < b.point;
  });
  return out;
}

} // namespace hgj::rules
