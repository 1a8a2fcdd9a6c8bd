#include "drivers/mqtt/mqtt_wire.h"

#include "core/enum_names.h"

namespace hgj::drivers::mqtt::wire {
namespace {

void appendRemainingLength(std::vector<uint8_t>& out, size_t len) {
  do {
    auto b = static_cast<uint8_t>(len % 128);
    len /= 128;
    if (len > 0) {
      b |= 0x80;
    }
    out.push_back(b);
  } while (len > 0);
}

void appendU16(std::vector<uint8_t>& out, uint16_t v) {
  out.push_back(static_cast<uint8_t>(v >> 8));
  out.push_back(static_cast<uint8_t>(v & 0xFF));
}

void appendString(std::vector<uint8_t>& out, std::string_view s) {
  appendU16(out, static_cast<uint16_t>(s.size()));
  out.insert(out.end(), s.begin(), s.end());
}

size_t topicLength(const uint8_t* body) {
  return (static_cast<size_t>(body[0]) << 8) | body[1];
}

} // namespace

void appendConnect(std::vector<uint8_t>& out, const ConnectOptions& o) {
  const bool user = !o.username.empty();
  size_t len = 10 + 2 + o.client_id.size();
  if (user) {
    len += 2 + o.username.size() + 2 + o.password.size();
  }
  uint8_t flags = o.clean_session ? 0x02 : 0x00;
  if (user) {
    flags |= 0xC0;
  }
  out.push_back(0x10);
  appendRemainingLength(out, len);
  appendString(out, "MQTT");
  out.push_back(4);  // protocol level 3.1.1
  out.push_back(flags);
  appendU16(out, o.keepalive_s);
  appendString(out, o.client_id);
  if (user) {
    appendString(out, o.username);
    appendString(out, o.password);
  }
}

void appendSubscribe(std::vector<uint8_t>& out, uint16_t packet_id,
                     const std::vector<std::string>& filters, int qos) {
  size_t len = 2;
  for (const auto& f : filters) {
    len += 2 + f.size() + 1;
  }
  out.push_back(0x82);
  appendRemainingLength(out, len);
  appendU16(out, packet_id);
  for (const auto& f : filters) {
    appendString(out, f);
    out.push_back(static_cast<uint8_t>(qos));
  }
}

void appendSubscribe(std::vector<uint8_t>& out, uint16_t packet_id, std::string_view filter,
                     int qos) {
  appendSubscribe(out, packet_id, std::vector<std::string>{std::string(filter)}, qos);
}

void appendPublish(std::vector<uint8_t>& out, std::string_view topic, std::string_view payload,
                   int qos, uint16_t packet_id) {
  out.push_back(static_cast<uint8_t>(0x30 | (qos << 1)));
  appendRemainingLength(out, 2 + topic.size() + (qos > 0 ? 2 : 0) + payload.size());
  appendString(out, topic);
  if (qos > 0) {
    appendU16(out, packet_id);
  }
  out.insert(out.end(), payload.begin(), payload.end());
}

void appendAck(std::vector<uint8_t>& out, PacketType type, uint16_t packet_id) {
  // PUBREL carries the reserved flags 0010 (MQTT 3.1.1 section 3.6.1).
  out.push_back(static_cast<uint8_t>((static_cast<uint8_t>(type) << 4) |
                                     (type == PacketType::kPubrel ? 0x02 : 0x00)));
  out.push_back(2);
  appendU16(out, packet_id);
}

void appendPingreq(std::vector<uint8_t>& out) {
  out.push_back(0xC0);
  out.push_back(0);
}

void appendDisconnect(std::vector<uint8_t>& out) {
  out.push_back(0xE0);
  out.push_back(0);
}

std::string connackReason(int code) {
  switch (code) {
  case 0:
    return "accepted";
  case 1:
    return "unacceptable protocol version";
  case 2:
    return "client identifier rejected";
  case 3:
    return "server unavailable";
  case 4:
    return "bad user name or password";
  case 5:
    return "not authorized";
  default:
    return "return code " + std::to_string(code);
  }
}

constexpr core::EnumNames<Violation, 12> kViolationLabels{
    {{Violation::kNone, "none"}, {Violation::kBadRemainingLength, "bad_remaining_length"},
     {Violation::kUnexpectedType, "unexpected_type"}, {Violation::kBadFlags, "bad_flags"},
     {Violation::kPublishQos3, "publish_qos3"}, {Violation::kTooLarge, "too_large"},
     {Violation::kBadLength, "bad_length"}, {Violation::kPacketIdZero, "packet_id_zero"},
     {Violation::kBadTopic, "bad_topic"}, {Violation::kBadConnack, "bad_connack"},
     {Violation::kBadSuback, "bad_suback"}, {Violation::kPacketTimeout, "packet_timeout"}}};

const char* label(Violation v) { return kViolationLabels.name(v, "unknown"); }

constexpr core::EnumNames<Violation, 12> kViolationSentences{
    {{Violation::kNone, "no violation"},
     {Violation::kBadRemainingLength, "a remaining length longer than 4 bytes"},
     {Violation::kUnexpectedType, "a packet type a broker must not send here"},
     {Violation::kBadFlags, "fixed-header flags the spec does not allow"},
     {Violation::kPublishQos3, "a PUBLISH with QoS 3"},
     {Violation::kTooLarge, "a packet longer than its type allows"},
     {Violation::kBadLength, "a packet shorter than its fields"},
     {Violation::kPacketIdZero, "packet identifier 0"},
     {Violation::kBadTopic, "a topic name that is empty, has wildcards or is not UTF-8"},
     {Violation::kBadConnack, "a CONNACK with reserved bits or an unknown return code"},
     {Violation::kBadSuback, "a SUBACK with invalid return codes or a wrong count"},
     {Violation::kPacketTimeout, "a packet that did not arrive within mqtt.packet_timeout"}}};

const char* describe(Violation v) { return kViolationSentences.name(v, "unknown"); }

HeaderStatus readFixedHeader(const uint8_t* buf, size_t n, FixedHeader& out) {
  size_t len = 0;
  size_t mul = 1;
  for (size_t i = 1; i < n && i <= 4; ++i) {
    len += static_cast<size_t>(buf[i] & 0x7F) * mul;
    mul *= 128;
    if ((buf[i] & 0x80) == 0) {
      out.first_byte = buf[0];
      out.remaining = len;
      out.size = i + 1;
      return HeaderStatus::kComplete;
    }
  }
  // The fourth length byte still had its continuation bit: more than 268,435,455 bytes.
  return n > 4 ? HeaderStatus::kMalformed : HeaderStatus::kIncomplete;
}

Violation checkHeader(const FixedHeader& h, size_t subscribed_filters) {
  // A client only receives these types; the others are for the server or reserved.
  size_t exact = 2;
  uint8_t flags = 0;
  switch (h.type()) {
  case PacketType::kPublish: {
    const int qos = (h.flags() >> 1) & 3;
    if (qos == 3) {
      return Violation::kPublishQos3;
    }
    if (qos == 0 && (h.flags() & 0x08) != 0) {
      return Violation::kBadFlags;  // DUP must be 0 at QoS 0 (MQTT-3.3.1-2)
    }
    // Topic length, a topic of at least one character (MQTT-4.7.3-1), and the packet id.
    return h.remaining < 3 + (qos > 0 ? 2u : 0u) ? Violation::kBadLength : Violation::kNone;
  }
  case PacketType::kConnack:
  case PacketType::kPuback:
  case PacketType::kPubrec:
  case PacketType::kPubcomp:
  case PacketType::kUnsuback:
    break;
  case PacketType::kPubrel:
    flags = 0x02;  // MQTT-3.6.1-1
    break;
  case PacketType::kPingresp:
    exact = 0;
    break;
  case PacketType::kSuback:
    if (h.flags() != 0) {
      return Violation::kBadFlags;
    }
    if (h.remaining > 2 + subscribed_filters) {
      return Violation::kTooLarge;
    }
    return h.remaining < 3 ? Violation::kBadLength : Violation::kNone;
  default:
    return Violation::kUnexpectedType;
  }
  if (h.flags() != flags) {
    return Violation::kBadFlags;
  }
  if (h.remaining > exact) {
    return Violation::kTooLarge;
  }
  return h.remaining < exact ? Violation::kBadLength : Violation::kNone;
}

bool validMqttString(std::string_view text) {
  const auto* p = reinterpret_cast<const uint8_t*>(text.data());
  const auto* end = p + text.size();
  while (p < end) {
    const uint8_t b = *p;
    if (b == 0) {
      return false;
    }
    if (b < 0x80) {
      ++p;
      continue;
    }
    size_t n = 0;
    uint32_t cp = 0;
    uint32_t min = 0;
    if ((b & 0xE0) == 0xC0) {
      n = 1;
      cp = b & 0x1F;
      min = 0x80;
    } else if ((b & 0xF0) == 0xE0) {
      n = 2;
      cp = b & 0x0F;
      min = 0x800;
    } else if ((b & 0xF8) == 0xF0) {
      n = 3;
      cp = b & 0x07;
      min = 0x10000;
    } else {
      return false;
    }
    if (static_cast<size_t>(end - p) <= n) {
      return false;
    }
    for (size_t i = 1; i <= n; ++i) {
      if ((p[i] & 0xC0) != 0x80) {
        return false;
      }
      cp = (cp << 6) | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    p += n + 1;
  }
  return true;
}

Violation decodePublishHead(const FixedHeader& h, const uint8_t* body, size_t avail,
                            PublishHead& out, bool& incomplete) {
  incomplete = false;
  out.qos = (h.flags() >> 1) & 3;
  out.dup = (h.flags() & 0x08) != 0;
  out.retain = (h.flags() & 0x01) != 0;
  if (avail < 2) {
    incomplete = true;
    return Violation::kNone;
  }
  const size_t tl = topicLength(body);
  const size_t head = 2 + tl + (out.qos > 0 ? 2 : 0);
  if (head > h.remaining) {
    return Violation::kBadLength;
  }
  if (tl == 0) {
    return Violation::kBadTopic;
  }
  if (avail < head) {
    incomplete = true;
    return Violation::kNone;
  }
  out.topic = {reinterpret_cast<const char*>(body + 2), tl};
  if (out.topic.find_first_of("+#") != std::string_view::npos || !validMqttString(out.topic)) {
    return Violation::kBadTopic;
  }
  out.packet_id = 0;
  if (out.qos > 0) {
    out.packet_id = static_cast<uint16_t>((body[2 + tl] << 8) | body[3 + tl]);
    if (out.packet_id == 0) {
      return Violation::kPacketIdZero;
    }
  }
  out.size = head;
  return Violation::kNone;
}

Violation decodeAckId(const uint8_t* body, uint16_t& id) {
  id = static_cast<uint16_t>((body[0] << 8) | body[1]);
  return id == 0 ? Violation::kPacketIdZero : Violation::kNone;
}

Violation decodeConnack(const uint8_t* body, Connack& out) {
  out.session_present = (body[0] & 0x01) != 0;
  out.return_code = body[1];
  if ((body[0] & 0xFE) != 0 || out.return_code > 5 ||
      (out.session_present && out.return_code != 0)) {
    return Violation::kBadConnack;  // MQTT-3.2.2-4, section 3.2.2.3
  }
  return Violation::kNone;
}

Violation decodeSuback(const FixedHeader& h, const uint8_t* body, size_t filters, uint16_t& id,
                       std::vector<size_t>& refused) {
  if (decodeAckId(body, id) != Violation::kNone) {
    return Violation::kPacketIdZero;
  }
  if (h.remaining - 2 != filters) {
    return Violation::kBadSuback;  // one return code per filter, in order (MQTT-3.8.4-5)
  }
  refused.clear();
  for (size_t i = 0; i < filters; ++i) {
    const uint8_t code = body[2 + i];
    if (code == 0x80) {
      refused.push_back(i);
    } else if (code > 2) {
      return Violation::kBadSuback;  // MQTT-3.9.3-2
    }
  }
  return Violation::kNone;
}

int parseFixedHeader(const uint8_t* buf, size_t n, size_t& body_len) {
  size_t len = 0;
  size_t mul = 1;
  for (size_t i = 1; i < n; ++i) {
    if (i > 4) {
      return -1;
    }
    len += static_cast<size_t>(buf[i] & 0x7F) * mul;
    mul *= 128;
    if ((buf[i] & 0x80) == 0) {
      body_len = len;
      return static_cast<int>(i + 1);
    }
  }
  return n > 5 ? -1 : 0;
}

uint16_t Packet::packetId() const {
  if (type() != PacketType::kPublish) {
    return body_len >= 2 ? static_cast<uint16_t>((body[0] << 8) | body[1]) : 0;
  }
  if (publishQos() == 0 || body_len < 2) {
    return 0;
  }
  size_t tl = topicLength(body);
  if (body_len < 2 + tl + 2) {
    return 0;
  }
  return static_cast<uint16_t>((body[2 + tl] << 8) | body[3 + tl]);
}

bool Packet::publishWellFormed() const {
  return body_len >= 2 && body_len >= 2 + topicLength(body) + (publishQos() > 0 ? 2 : 0);
}

std::string_view Packet::publishTopic() const {
  if (!publishWellFormed()) {
    return {};
  }
  return {reinterpret_cast<const char*>(body + 2), topicLength(body)};
}

std::string_view Packet::publishPayload() const {
  if (!publishWellFormed()) {
    return {};
  }
  size_t start = 2 + topicLength(body) + (publishQos() > 0 ? 2 : 0);
  return {reinterpret_cast<const char*>(body + start), body_len - start};
}

} // namespace hgj::drivers::mqtt::wire
