#include "tools/sim/register_layouts.h"

#include <algorithm>

namespace hgj::sim {

std::optional<Layout> parseLayout(std::string_view name) {
  if (name == "sdm120") {
    return Layout::Sdm120;
  }
  if (name == "shed_controller") {
    return Layout::ShedController;
  }
  if (name == "co_sensor") {
    return Layout::CoSensor;
  }
  if (name == "display") {
    return Layout::Display;
  }
  if (name == "ddsu666") {
    return Layout::Ddsu666;
  }
  if (name == "fan") {
    return Layout::Fan;
  }
  return std::nullopt;
}

const char* layoutName(Layout l) {
  switch (l) {
  case Layout::Sdm120:
    return "sdm120";
  case Layout::ShedController:
    return "shed_controller";
  case Layout::CoSensor:
    return "co_sensor";
  case Layout::Display:
    return "display";
  case Layout::Ddsu666:
    return "ddsu666";
  case Layout::Fan:
    return "fan";
  }
  return "?";
}

UnitTables layoutTables(Layout l, int ports) {
  switch (l) {
  case Layout::Sdm120:
    return {0, 0, 0, sdm120::kInputCount};
  case Layout::ShedController:
    return {shed::kPortCoilBase + shed::kMaxPorts, 8, 0,
            shed::kPortBase + shed::kPortStride * std::max(ports, 1)};
  case Layout::CoSensor:
    return {0, 0, co::kHolding, 0};
  case Layout::Display:
    return {0, 0, display::kRegisters, 0};
  case Layout::Ddsu666:
    return {0, 0, ddsu666::kHolding, 0};
  case Layout::Fan:
    return {2, 2, 0, 0};
  }
  return {};
}

namespace display {

const char* registerName(int addr) {
  switch (addr) {
  case 0x0000:
    return "free_total";
  case 0x0001:
    return "free_B1";
  case 0x0002:
    return "free_B2";
  case 0x0010:
    return "free_B1_A";
  case 0x0011:
    return "free_B1_B";
  case 0x0012:
    return "free_B1_C";
  case 0x0013:
    return "free_B1_D";
  case 0x0020:
    return "free_B2_A";
  case 0x0021:
    return "free_B2_B";
  case 0x0022:
    return "free_B2_C";
  case 0x0023:
    return "free_B2_D";
  case 0x0030:
    return "free_visitor";
  case kBrightness:
    return "brightness";
  default:
    return "";
  }
}

} // namespace display

} // namespace hgj::sim
