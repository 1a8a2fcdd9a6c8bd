#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <simdjson.h>

#include "drivers/profiles/mqtt_profile.h"
#include "model/compound.h"
#include "model/reading.h"

namespace hgj::drivers::profiles {

/// Why a message produced no reading. Each has its own `hgj_readings_dropped_total{reason}`.
enum class DropReason : uint8_t {
  None,
  TopicTooLong,
  Oversized,
  UnknownTopic,
  UnknownDevice,
  WrongDevice,  ///< the topic's device does not use this topic's profile, or devEui mismatch
  Malformed,    ///< not JSON, or not a JSON object
  WrongType,    ///< no field had a usable value of its point's type
  Empty,        ///< none of the profile's fields was present
  Count
};

const char* dropReasonName(DropReason r);

/// Turns MQTT messages into readings with the profiles' topic templates and JSON paths: the only
/// place that knows topics and JSON. Runs on the pipeline thread; not thread-safe (it reuses one
/// JSON parser and scratch buffers so that decoding allocates nothing per message in the common
/// case).
class MqttDecoder {
public:
  struct Result {
    DropReason drop = DropReason::None;
    model::DeviceIndex device = model::kNoDevice;
    uint32_t readings = 0;
    uint32_t bad_fields = 0;  ///< fields present with a value of the wrong type (dropped alone)
    bool suspect_ts = false;  ///< the device's clock was implausible; ingest time used
  };

  MqttDecoder(const model::Compound& compound, size_t max_payload_bytes, size_t max_topic_length);

  /// Appends the message's readings to `out`.
  Result decode(std::string_view topic, std::string_view payload, int64_t rx_ms,
                std::vector<model::Reading>& out);

  /// The subscription filters covering every profile's topics (deduplicated).
  std::vector<std::string> subscriptions() const;

private:
  struct Route {
    const model::Profile* profile;
    const TopicSpec* spec;
  };

  const model::Compound& compound_;
  const size_t max_payload_;
  const size_t max_topic_;
  std::vector<Route> routes_;
  simdjson::dom::parser parser_;
  std::vector<std::string_view> vars_;
  std::string id_buf_;
};

} // namespace hgj::drivers::profiles
