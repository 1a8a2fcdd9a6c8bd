#pragma once

#include <cstdint>

#include "model/compound.h"
#include "model/value.h"

namespace hgj::model {

/// One value of one point of one device, as the profile layer decoded it. Only profiles create
/// readings; everything downstream (state, rules, storage, uplink) consumes them.
struct Reading {
  DeviceIndex device = kNoDevice;
  PointId point = 0;
  Quality quality = Quality::Good;
  Value value;
  int64_t source_ms = 0;  ///< the device's timestamp (Unix ms); ingest time when it sent none
  int64_t ingest_ms = 0;  ///< when the gateway received it (Unix ms)
};

} // namespace hgj::model
