#include "rules/interlock/interlocks.h"

#include <algorithm>

namespace hgj::rules {

bool Interlocks::mayWrite(model::DeviceIndex device, model::PointId point,
                          const model::Value& value, bool operator_override,
                          std::string* reason) const {
  const Latch* l = latched(device, point);
  if (l == nullptr || l->value == value) {
    return true;
  }
  std::string why = "cut by safety rule " + l->rule + (l->reason.empty() ? "" : " (" + l->reason + ")");
  if (operator_override) {
    if (reason != nullptr) {
      *reason = "operator override of: " + why;
    }
    return true;
  }
  if (reason != nullptr) {
    *reason = why + "; re-enabling needs an operator override";
  }
  return false;
}

void Interlocks::latch(Latch l) {
  uint64_t k = key(l.device, l.point);
  latches_[k] = std::move(l);
}

bool Interlocks::clearLatch(model::DeviceIndex device, model::PointId point) {
  return latches_.erase(key(device, point)) > 0;
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

Interlocks::Admit Interlocks::admitRuleWrite(model::DeviceIndex device, model::PointId point,
                                             const model::Value& value, bool safety,
                                             core::SteadyTime now) {
  uint64_t k = key(device, point);
  auto it = last_writes_.find(k);
  if (it != last_writes_.end() && now - it->second.at < min_interval_) {
    if (it->second.value == value) {
      return Admit::Duplicate;
    }
    if (!safety) {
      return Admit::RateLimited;
    }
  }
  last_writes_[k] = LastWrite{value, now};
  return Admit::Write;
}

} // namespace hgj::rules
