#pragma once
// The example 12-port shed controller (conf/profiles/hgj_ebike_shed_m12.yaml) and its request
// plan, shared by the Modbus fuzz targets.
#include <stdexcept>
#include <string>

#include "drivers/modbus/device_plan.h"
#include "drivers/profiles/modbus_profile.h"
#include "drivers/profiles/profile_loader.h"

namespace hgj::fuzz {

struct Shed {
  model::Compound compound;
  drivers::modbus::DevicePlan plan;
};

inline Shed makeShed() {
  Shed s;
  core::Diagnostics diag;
  std::string dir = std::string(HGJ_SOURCE_DIR) + "/conf/profiles/";
  for (const char* name : {"hgj_ebike_port_modbus", "hgj_ebike_shed_m12"}) {
    model::Profile* p = drivers::profiles::loadProfile(dir + name + ".yaml", s.compound, diag);
    if (p != nullptr && p->transport == "modbus" && !p->modbus) {
      auto root = core::loadYamlFile(dir + name + ".yaml", diag);
      if (root) {
        drivers::profiles::parseModbusSpec(root->child("modbus"), s.compound, *p);
      }
    }
  }
  if (!diag.ok()) {
    throw std::runtime_error(diag.format());
  }
  model::Device m;
  m.id = "M01";
  m.profile = s.compound.profile("hgj_ebike_shed_m12");
  s.compound.devices.push_back(m);
  for (int n = 1; n <= 12; ++n) {
    model::Device c;
    c.id = "M01/P" + std::to_string(n);
    c.profile = s.compound.profile("hgj_ebike_port_modbus");
    c.parent = 0;
    c.child_number = n;
    s.compound.devices[0].children.push_back(static_cast<model::DeviceIndex>(n));
    s.compound.devices.push_back(c);
  }
  s.compound.buildIndexes();
  s.plan = drivers::modbus::buildDevicePlan(s.compound, s.compound.devices[0]);
  return s;
}

} // namespace hgj::fuzz
