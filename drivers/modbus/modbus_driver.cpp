#include "drivers/modbus/modbus_driver.h"

#include <map>
#include <stdexcept>

#include "drivers/modbus/modbus_line.h"

namespace hgj::drivers::modbus {

ModbusDriver::ModbusDriver(const ModbusConfig& config, const model::Compound& compound,
                           drivers::SampleSink& sink, core::MetricsRegistry& metrics,
                           const core::Clock& clock, core::Liveness* liveness)
    : config_(config), liveness_(liveness) {
  std::map<std::string, std::vector<const model::Device*>> per_line;
  for (const auto& dev : compound.devices) {
    // Ports carry their parent's binding but are read by the parent's poll.
    if (dev.modbus.line.empty() || dev.parent != model::kNoDevice || dev.child_number > 0) {
      continue;
    }
    if (config_.line(dev.modbus.line) == nullptr) {
      throw std::runtime_error(dev.source + ": device " + dev.id + ": unknown modbus line \"" +
                               dev.modbus.line + "\" (not in modbus.lines)");
    }
    per_line[dev.modbus.line].push_back(&dev);
  }
  for (const auto& line : config_.lines) {
    auto it = per_line.find(line.id);
    static const std::vector<const model::Device*> kNone;
    const auto& devices = it == per_line.end() ? kNone : it->second;
    auto l = std::make_unique<ModbusLine>(line, config_, compound, devices, sink, metrics, clock);
    for (const model::Device* d : devices) {
      by_device_[d->index] = l.get();
      for (model::DeviceIndex c : d->children) {
        by_device_[c] = l.get();
      }
    }
    lines_.push_back(std::move(l));
  }
}

ModbusDriver::~ModbusDriver() { stop(); }

void ModbusDriver::start() {
  for (auto& l : lines_) {
    l->start(liveness_);
  }
}

void ModbusDriver::stop() {
  for (auto& l : lines_) {
    l->stop();
  }
}

bool ModbusDriver::handles(const model::Device& device) const {
  return by_device_.count(device.index) != 0;
}

void ModbusDriver::write(const WriteRequest& request) {
  auto it = by_device_.find(request.device);
  if (it == by_device_.end()) {
    // The caller still gets its answer, from a line thread (delivering from here could block
    // the caller on the very queue it drains).
    if (!lines_.empty()) {
      lines_.front()->rejectWrite(request, "not a modbus device");
      return;
    }
    log_.warn("modbus: write {} for device index {} dropped: no modbus lines", request.id,
              request.device);
    return;
  }
  it->second->queueWrite(request);
}

void ModbusDriver::refresh(const RefreshRequest& request) {
  auto it = by_device_.find(request.device);
  if (it != by_device_.end()) {
    it->second->queueRefresh(request.device);
  }
}

std::string ModbusDriver::health() const {
  std::string out;
  for (const auto& l : lines_) {
    std::string h = l->health();
    if (h != "ok") {
      out += (out.empty() ? "" : "; ") + h;
    }
  }
  return out.empty() ? "ok" : out;
}

} // namespace hgj::drivers::modbus
