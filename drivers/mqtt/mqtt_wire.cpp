#include "drivers/mqtt/mqtt_wire.h"

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
