#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

/// MQTT 3.1.1 packets, encoded into and scanned out of byte buffers. No I/O here: the ingest
/// session (mqtt_driver) and the benchmark tools decide how many packets go into one system
/// call, which is where an MQTT client's per-message cost goes (docs/benchmarks.md).
namespace hgj::drivers::mqtt::wire {

enum class PacketType : uint8_t {
  kConnect = 1,
  kConnack = 2,
  kPublish = 3,
  kPuback = 4,
  kPubrec = 5,
  kPubrel = 6,
  kPubcomp = 7,
  kSubscribe = 8,
  kSuback = 9,
  kUnsuback = 11,
  kPingresp = 13,
};

struct ConnectOptions {
  std::string_view client_id;
  bool clean_session = false;
  uint16_t keepalive_s = 30;
  std::string_view username;  ///< empty: none
  std::string_view password;  ///< only sent with a username
};

void appendConnect(std::vector<uint8_t>& out, const ConnectOptions& opts);
/// One SUBSCRIBE for every filter, all at the same QoS.
void appendSubscribe(std::vector<uint8_t>& out, uint16_t packet_id,
                     const std::vector<std::string>& filters, int qos);
void appendSubscribe(std::vector<uint8_t>& out, uint16_t packet_id, std::string_view filter,
                     int qos);
/// packet_id is ignored at QoS 0.
void appendPublish(std::vector<uint8_t>& out, std::string_view topic, std::string_view payload,
                   int qos, uint16_t packet_id);
/// PUBACK, PUBREC, PUBREL and PUBCOMP: a type and a packet id.
void appendAck(std::vector<uint8_t>& out, PacketType type, uint16_t packet_id);
inline void appendPuback(std::vector<uint8_t>& out, uint16_t packet_id) {
  appendAck(out, PacketType::kPuback, packet_id);
}
void appendPingreq(std::vector<uint8_t>& out);
void appendDisconnect(std::vector<uint8_t>& out);

/// What a CONNACK return code means (MQTT 3.1.1 section 3.2.2.3).
std::string connackReason(int code);

/// One complete packet inside a receive buffer (valid while the buffer is).
struct Packet {
  uint8_t first_byte = 0;
  const uint8_t* body = nullptr;
  size_t body_len = 0;

  PacketType type() const { return static_cast<PacketType>(first_byte >> 4); }
  int publishQos() const { return (first_byte >> 1) & 3; }
  bool publishDup() const { return (first_byte & 0x08) != 0; }
  /// For a PUBLISH at QoS > 0: its packet id; for PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK: the
  /// acknowledged id. 0 when the packet is too short to hold one.
  uint16_t packetId() const;
  /// False when a PUBLISH's topic length points past the packet (a malformed packet).
  bool publishWellFormed() const;
  std::string_view publishTopic() const;
  std::string_view publishPayload() const;
};

/// The fixed header at the front of a buffer: 0 bytes when incomplete, -1 when the remaining
/// length is malformed (more than 4 bytes), else the header's size with body_len set.
int parseFixedHeader(const uint8_t* buf, size_t n, size_t& body_len);

/// Calls on_packet(const Packet&) for every complete packet in [buf, buf+n) and returns how many
/// bytes were consumed (a trailing partial packet is left for the next read). Stops early, with
/// `malformed` set, at a remaining length longer than 4 bytes.
template <typename F>
size_t scanPackets(const uint8_t* buf, size_t n, F&& on_packet, bool* malformed = nullptr) {
  size_t off = 0;
  while (off < n) {
    size_t len = 0;
    int hdr = parseFixedHeader(buf + off, n - off, len);
    if (hdr < 0 && malformed != nullptr) {
      *malformed = true;
    }
    if (hdr <= 0 || n - off - static_cast<size_t>(hdr) < len) {
      break;
    }
    on_packet(Packet{buf[off], buf + off + hdr, len});
    off += static_cast<size_t>(hdr) + len;
  }
  return off;
}

} // namespace hgj::drivers::mqtt::wire
