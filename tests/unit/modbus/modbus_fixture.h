#pragma once

// Helpers shared by the Modbus unit and integration tests (header-only: each test folder is its
// own program). Profiles are loaded with the gateway's own loader.

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

#include <stdlib.h>
#include <vector>

#include "core/config_node.h"
#include "tests/support/test_support.h"
#include "drivers/driver.h"
#include "drivers/profiles/modbus_profile.h"
#include "drivers/profiles/profile_loader.h"
#include "model/compound.h"

namespace hgj::test_modbus {

inline std::string profilePath(const std::string& name) {
  return std::string(HGJ_SOURCE_DIR) + "/conf/profiles/" + name + ".yaml";
}

/// Loads a profile through the gateway's loader (common part) and makes sure its `modbus:`
/// section went through parseModbusSpec (the loader may not call it yet). Throws
/// std::runtime_error with every problem.
inline model::Profile& loadProfileFile(model::Compound& compound, const std::string& path) {
  core::Diagnostics diag;
  model::Profile* p = drivers::profiles::loadProfile(path, compound, diag);
  if (p != nullptr && p->transport == "modbus" && !p->modbus) {
    auto root = core::loadYamlFile(path, diag);
    if (root) {
      drivers::profiles::parseModbusSpec(root->child("modbus"), compound, *p);
    }
  }
  if (p == nullptr || !diag.ok()) {
    throw std::runtime_error(diag.format());
  }
  return *p;
}

inline model::Profile& loadProfile(model::Compound& compound, const std::string& name) {
  return loadProfileFile(compound, profilePath(name));
}

/// Loads a profile from YAML text (written to a temporary `<name>.yaml`).
inline model::Profile& loadProfileText(model::Compound& compound, const std::string& name,
                                       const std::string& yaml) {
  test::TempDir dir;
  std::string path = dir.file(name + ".yaml");
  std::ofstream(path) << yaml;
  return loadProfileFile(compound, path);
}

/// Adds a device bound to `line` (and `ports` children named "{id}/P{n:02}"). Call
/// compound.buildIndexes() once every device is in.
inline void addDevice(model::Compound& compound, const std::string& id,
                      const std::string& profile, const model::ModbusBinding& binding,
                      int ports = 0) {
  const model::Profile* p = compound.profile(profile);
  if (p == nullptr) {
    throw std::runtime_error("no profile " + profile);
  }
  model::Device d;
  d.index = static_cast<model::DeviceIndex>(compound.devices.size());
  d.id = id;
  d.profile = p;
  d.modbus = binding;
  d.source = "test:" + id;
  compound.devices.push_back(d);
  model::DeviceIndex parent = d.index;
  const model::Profile* child_profile = compound.profile(p->child_profile);
  for (int n = 1; n <= ports; ++n) {
    model::Device c;
    c.index = static_cast<model::DeviceIndex>(compound.devices.size());
    char buf[32];
    std::snprintf(buf, sizeof buf, "/P%02d", n);
    c.id = id + buf;
    c.profile = child_profile;
    c.parent = parent;
    c.child_number = n;
    c.source = d.source;
    compound.devices[parent].children.push_back(c.index);
    compound.devices.push_back(c);
  }
}

inline model::ModbusBinding binding(const std::string& line, int unit, int64_t interval_ms = 100,
                                    int64_t timeout_ms = 100, int retries = 0) {
  model::ModbusBinding b;
  b.line = line;
  b.unit_id = unit;
  b.poll_interval_ms = interval_ms;
  b.timeout_ms = timeout_ms;
  b.retries = retries;
  return b;
}

/// A SampleSink that keeps every sample, with the steady time it arrived.
class CollectingSink : public drivers::SampleSink {
public:
  struct Entry {
    drivers::Sample sample;
    std::chrono::steady_clock::time_point at;
  };

  bool deliver(drivers::Sample&& sample) override {
    std::lock_guard lock(mu_);
    entries_.push_back({std::move(sample), std::chrono::steady_clock::now()});
    return true;
  }

  std::vector<Entry> entries() const {
    std::lock_guard lock(mu_);
    return entries_;
  }

  void clear() {
    std::lock_guard lock(mu_);
    entries_.clear();
  }

  /// Times of the reading batches of one device.
  std::vector<std::chrono::steady_clock::time_point> batchTimes(model::DeviceIndex device) const {
    std::vector<std::chrono::steady_clock::time_point> out;
    std::lock_guard lock(mu_);
    for (const auto& e : entries_) {
      if (const auto* b = std::get_if<drivers::ReadingBatch>(&e.sample); b && b->device == device) {
        out.push_back(e.at);
      }
    }
    return out;
  }

  /// The last value of a point of a device, or monostate.
  model::Value last(model::DeviceIndex device, model::PointId point) const {
    model::Value v;
    std::lock_guard lock(mu_);
    for (const auto& e : entries_) {
      if (const auto* b = std::get_if<drivers::ReadingBatch>(&e.sample); b && b->device == device) {
        for (const auto& r : b->readings) {
          if (r.point == point) {
            v = r.value;
          }
        }
      }
    }
    return v;
  }

  std::vector<drivers::WriteResult> writeResults() const {
    std::vector<drivers::WriteResult> out;
    std::lock_guard lock(mu_);
    for (const auto& e : entries_) {
      if (const auto* w = std::get_if<std::shared_ptr<const drivers::WriteResult>>(&e.sample)) {
        out.push_back(**w);
      }
    }
    return out;
  }

  std::vector<drivers::DeviceHealth> health(model::DeviceIndex device) const {
    std::vector<drivers::DeviceHealth> out;
    std::lock_guard lock(mu_);
    for (const auto& e : entries_) {
      if (const auto* h = std::get_if<drivers::DeviceHealth>(&e.sample); h && h->device == device) {
        out.push_back(*h);
      }
    }
    return out;
  }

private:
  mutable std::mutex mu_;
  std::vector<Entry> entries_;
};

} // namespace hgj::test_modbus
