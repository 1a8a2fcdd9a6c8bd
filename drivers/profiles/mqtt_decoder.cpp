#include "drivers/profiles/mqtt_decoder.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "core/enum_names.h"
#include "core/time_format.h"

namespace hgj::drivers::profiles {

namespace {

// Device clocks before 2001 or more than a day ahead of ours are wrong (RTC battery, no NTP);
// the reading is kept with the gateway's time.
constexpr int64_t kMinPlausibleMs = 978'307'200'000;
constexpr int64_t kMaxAheadMs = 86'400'000;

bool walk(simdjson::dom::element root, const std::vector<std::string>& parts,
          simdjson::dom::element& out) {
  simdjson::dom::element cur = root;
  for (const auto& p : parts) {
    simdjson::dom::object obj;
    if (cur.get_object().get(obj) != simdjson::SUCCESS) {
      return false;
    }
    if (obj.at_key(p).get(cur) != simdjson::SUCCESS) {
      return false;
    }
  }
  out = cur;
  return true;
}

enum class FieldStatus { Absent, Ok, Bad };

FieldStatus toValue(simdjson::dom::element e, const FieldMapping& fm, model::Value& out) {
  using simdjson::dom::element_type;
  switch (e.type()) {
  case element_type::NULL_VALUE:
    return FieldStatus::Absent;
  case element_type::BOOL: {
    bool b = e.get_bool().value_unsafe();
    if (fm.type == model::PointType::Bool) {
      out = b;
      return FieldStatus::Ok;
    }
    if (fm.type == model::PointType::Number) {
      out = b ? 1.0 : 0.0;
      return FieldStatus::Ok;
    }
    return FieldStatus::Bad;
  }
  case element_type::INT64:
  case element_type::UINT64:
  case element_type::DOUBLE: {
    double d = 0;
    if (e.get_double().get(d) != simdjson::SUCCESS || !std::isfinite(d)) {
      return FieldStatus::Bad;
    }
    if (fm.type == model::PointType::Number) {
      out = d;
      return FieldStatus::Ok;
    }
    if (fm.type == model::PointType::Bool && (d == 0 || d == 1)) {
      out = d == 1;
      return FieldStatus::Ok;
    }
    return FieldStatus::Bad;
  }
  case element_type::STRING: {
    std::string_view s = e.get_string().value_unsafe();
    if (fm.type == model::PointType::String) {
      if (s.size() > 256) {
        return FieldStatus::Bad;
      }
      for (const auto& [from, to] : fm.value_map) {
        if (from == s) {
          out = to;
          return FieldStatus::Ok;
        }
      }
      out = std::string(s);
      return FieldStatus::Ok;
    }
    if (fm.type == model::PointType::Bool) {
      if (s == "true" || s == "on") {
        out = true;
        return FieldStatus::Ok;
      }
      if (s == "false" || s == "off") {
        out = false;
        return FieldStatus::Ok;
      }
    }
    return FieldStatus::Bad;
  }
  default:
    return FieldStatus::Bad;
  }
}

} // namespace

constexpr core::EnumNames<DropReason, 9> kDropReasonNames{
    {{DropReason::None, "none"}, {DropReason::TopicTooLong, "topic_too_long"},
     {DropReason::Oversized, "oversized"}, {DropReason::UnknownTopic, "unknown_topic"},
     {DropReason::UnknownDevice, "unknown_device"}, {DropReason::WrongDevice, "wrong_device"},
     {DropReason::Malformed, "malformed"}, {DropReason::WrongType, "wrong_type"},
     {DropReason::Empty, "empty"}}};

// Every reason is counted under its own label (hgj_readings_dropped_total{reason}).
static_assert(sizeof kDropReasonNames.entries / sizeof kDropReasonNames.entries[0] ==
                  static_cast<size_t>(DropReason::Count),
              "a DropReason without a name");

const char* dropReasonName(DropReason r) { return kDropReasonNames.name(r, "unknown"); }

MqttDecoder::MqttDecoder(const model::Compound& compound, size_t max_payload_bytes,
                         size_t max_topic_length)
    : compound_(compound), max_payload_(max_payload_bytes), max_topic_(max_topic_length) {
  for (const auto& p : compound.profiles) {
    const MqttSpec* spec = mqttSpec(*p);
    if (spec == nullptr) {
      continue;
    }
    for (const auto& t : spec->topics) {
      routes_.push_back({p.get(), &t});
    }
  }
  // simdjson needs its capacity up front; the payload cap bounds it.
  if (parser_.allocate(std::max<size_t>(max_payload_bytes, 1024)) != simdjson::SUCCESS) {
    throw std::runtime_error("cannot allocate the JSON parser's buffers");
  }
}

std::vector<std::string> MqttDecoder::subscriptions() const {
  std::vector<std::string> out;
  for (const auto& r : routes_) {
    std::string f = r.spec->topic.filter();
    if (std::find(out.begin(), out.end(), f) == out.end()) {
      out.push_back(f);
    }
  }
  return out;
}

MqttDecoder::Result MqttDecoder::decode(std::string_view topic, std::string_view payload,
                                        int64_t rx_ms, std::vector<model::Reading>& out) {
  Result res;
  if (topic.size() > max_topic_) {
    res.drop = DropReason::TopicTooLong;
    return res;
  }
  if (payload.size() > max_payload_) {
    res.drop = DropReason::Oversized;
    return res;
  }
  const Route* route = nullptr;
  for (const auto& r : routes_) {
    if (r.spec->topic.match(topic, vars_)) {
      route = &r;
      break;
    }
  }
  if (route == nullptr) {
    res.drop = DropReason::UnknownTopic;
    return res;
  }
  const TopicSpec& spec = *route->spec;

  simdjson::dom::element doc;
  if (parser_.parse(payload.data(), payload.size(), true).get(doc) != simdjson::SUCCESS ||
      !doc.is_object()) {
    res.drop = DropReason::Malformed;
    return res;
  }

  model::DeviceIndex dev = model::kNoDevice;
  if (!spec.device_field.empty()) {
    simdjson::dom::element e;
    std::string_view eui;
    if (!walk(doc, spec.device_field_parts, e) || e.get_string().get(eui) != simdjson::SUCCESS) {
      res.drop = DropReason::Malformed;
      return res;
    }
    // The devEui in the payload must be the one in the topic, if the topic names one.
    int pos = spec.topic.variable("dev_eui");
    if (pos >= 0 && !std::equal(eui.begin(), eui.end(), vars_[pos].begin(), vars_[pos].end(),
                                [](char a, char b) {
                                  return std::tolower(static_cast<unsigned char>(a)) ==
                                         std::tolower(static_cast<unsigned char>(b));
                                })) {
      res.drop = DropReason::WrongDevice;
      return res;
    }
    dev = compound_.deviceByDevEui(eui);
  } else {
    id_buf_.clear();
    size_t var = 0;
    for (const auto& [is_var, text] : spec.device.parts) {
      if (is_var) {
        id_buf_.append(vars_[spec.device.var_positions[var++]]);
      } else {
        id_buf_.append(text);
      }
    }
    dev = compound_.deviceIndex(id_buf_);
  }
  if (dev == model::kNoDevice) {
    res.drop = DropReason::UnknownDevice;
    return res;
  }
  if (compound_.devices[dev].profile != route->profile) {
    res.drop = DropReason::WrongDevice;
    return res;
  }
  res.device = dev;

  int64_t source_ms = rx_ms;
  if (!spec.timestamp_path.empty()) {
    simdjson::dom::element e;
    if (walk(doc, spec.timestamp_parts, e)) {
      std::optional<int64_t> ts;
      if (spec.timestamp_format == TimestampFormat::Rfc3339) {
        std::string_view s;
        if (e.get_string().get(s) == simdjson::SUCCESS) {
          ts = core::parseRfc3339(s);
        }
      } else {
        double d = 0;
        if (e.get_double().get(d) == simdjson::SUCCESS && std::isfinite(d) && d > 0 && d < 1e15) {
          ts = static_cast<int64_t>(spec.timestamp_format == TimestampFormat::UnixS ? d * 1000
                                                                                      : d);
        }
      }
      if (ts && *ts >= kMinPlausibleMs && *ts <= rx_ms + kMaxAheadMs) {
        source_ms = *ts;
      } else {
        res.suspect_ts = true;
      }
    }
  }

  uint32_t present = 0;
  for (const auto& fm : spec.fields) {
    simdjson::dom::element e;
    if (!walk(doc, fm.path_parts, e)) {
      continue;
    }
    model::Value v;
    FieldStatus st = toValue(e, fm, v);
    if (st == FieldStatus::Absent) {
      continue;
    }
    ++present;
    if (st == FieldStatus::Bad) {
      ++res.bad_fields;
      continue;
    }
    model::Reading& r = out.emplace_back();
    r.device = dev;
    r.point = fm.point;
    r.quality = model::Quality::Good;
    r.value = std::move(v);
    r.source_ms = source_ms;
    r.ingest_ms = rx_ms;
    ++res.readings;
  }
  if (res.readings == 0) {
    res.drop = present == 0 ? DropReason::Empty : DropReason::WrongType;
  }
  return res;
}

} // namespace hgj::drivers::profiles
