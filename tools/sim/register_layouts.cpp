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
  }
  return "?";
}

UnitTables layoutTables(Layout l, int ports) {
  switch (l) {
  case Layout::Sdm120:
    return {0, 0, 0, sdm120::kInputCount};
  case Layout::ShedController:
    return {shed::kMaxPorts, 8, 0, shed::kPortBase + shed::kPortStride * std::max(ports, 1)};
  case Layout::CoSensor:
    return {0, 0, 0, 8};
  case Layout::Display:
    return {0, 0, display::kRegisters, 0};
  }
  return {};
}

} // namespace hgj::sim
