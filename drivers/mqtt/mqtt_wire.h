#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

/// MQTT 3.1.1 packets (OASIS standard, 29 October 2014), encoded into and decoded out of byte
/// buffers. No I/O and no state here: the session (mqtt_session.h) and the benchmark tools decide
/// how many packets go into one system call, which is where an MQTT client's per-message cost
/// goes (docs/benchmarks.md).
///
/// Two ways to read packets:
/// - the strict decoder (readFixedHeader, checkHeader, decode*): what the gateway's session uses
///   on bytes from the broker. Every field a broker could get wrong is checked and named by a
///   Violation, and a packet's size is checked against its type's limit from the fixed header
///   alone, before any of its body is buffered.
/// - scanPackets / Packet: a lenient scanner for the benchmark tools and tests, which talk to a
///   known-good broker.
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
  kUnsubscribe = 10,
  kUnsuback = 11,
  kPingreq = 12,
  kPingresp = 13,
  kDisconnect = 14,
};

/// Why a packet from the broker is refused: the connection is closed (MQTT 3.1.1 section 4.8:
/// "the receiver MUST close the Network Connection" on a protocol violation). label() is the
/// `reason` of hgj_mqtt_protocol_errors_total.
enum class Violation : uint8_t {
  kNone,
  kBadRemainingLength,  ///< the remaining length runs over 4 bytes (2.2.3)
  kUnexpectedType,      ///< reserved, client-to-server, or not expected now (a 2nd CONNACK, ...)
  kBadFlags,            ///< fixed-header flags other than the spec fixes (MQTT-2.2.2-2)
  kPublishQos3,         ///< PUBLISH with both QoS bits set (MQTT-3.3.1-4)
  kTooLarge,            ///< remaining length over the packet type's limit
  kBadLength,           ///< remaining length short of what the type needs, or a field past it
  kPacketIdZero,        ///< packet identifier 0 (MQTT-2.3.1-1)
  kBadTopic,            ///< empty, with wildcards (MQTT-3.3.2-2), or not well-formed UTF-8
  kBadConnack,          ///< reserved bits, an unknown return code, session present on refusal
  kBadSuback,           ///< return codes other than 0, 1, 2, 0x80, or not one per filter
  kPacketTimeout,       ///< one packet took longer than mqtt.packet_timeout to arrive
};
const char* label(Violation v);
/// A sentence for the log ("PUBLISH with QoS 3").
const char* describe(Violation v);

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

// ---- The strict decoder (bytes from the broker) ----

/// The fixed header of a packet (section 2.2).
struct FixedHeader {
  uint8_t first_byte = 0;
  size_t remaining = 0;  ///< remaining length: the bytes after the fixed header
  size_t size = 0;       ///< bytes of the fixed header itself (2..5)

  PacketType type() const { return static_cast<PacketType>(first_byte >> 4); }
  uint8_t flags() const { return first_byte & 0x0F; }
  size_t total() const { return size + remaining; }
};

enum class HeaderStatus : uint8_t { kIncomplete, kComplete, kMalformed };
/// Reads the fixed header at the front of [buf, buf+n).
HeaderStatus readFixedHeader(const uint8_t* buf, size_t n, FixedHeader& out);

/// The type, the flags and the remaining length of a packet a client receives, checked before
/// any of its body is read: kNone, or why the connection must close. `subscribed_filters` is the
/// number of filters of our SUBSCRIBE (its SUBACK holds one code each). A PUBLISH's size is not
/// limited here: one over the configured size is acknowledged and discarded, not refused.
Violation checkHeader(const FixedHeader& h, size_t subscribed_filters);

/// The variable header of a PUBLISH: flags, topic and packet id.
struct PublishHead {
  int qos = 0;
  bool dup = false;
  bool retain = false;
  uint16_t packet_id = 0;  ///< 0 at QoS 0
  std::string_view topic;
  size_t size = 0;  ///< bytes of the variable header: where the payload starts in the body
};
/// Decodes a PUBLISH's variable header from the first `avail` bytes of its body (the body may
/// still be arriving). `incomplete` is set (and kNone returned) when more bytes are needed.
/// Checks: the topic fits the packet, is not empty, has no wildcard and is well-formed UTF-8
/// without U+0000 (section 1.5.3); the packet id of QoS 1 and 2 is not 0.
Violation decodePublishHead(const FixedHeader& h, const uint8_t* body, size_t avail,
                            PublishHead& out, bool& incomplete);
/// The packet id of a complete PUBACK, PUBREC, PUBREL or PUBCOMP (checkHeader passed).
Violation decodeAckId(const uint8_t* body, uint16_t& id);

struct Connack {
  bool session_present = false;
  uint8_t return_code = 0;
};
/// A complete CONNACK body (checkHeader passed).
Violation decodeConnack(const uint8_t* body, Connack& out);
/// A complete SUBACK answering a SUBSCRIBE of `filters` filters: its packet id, and in
/// `refused` the indexes of the filters the broker refused (code 0x80).
Violation decodeSuback(const FixedHeader& h, const uint8_t* body, size_t filters, uint16_t& id,
                       std::vector<size_t>& refused);

/// Whether `text` is well-formed UTF-8 (no overlong forms, no surrogates, at most U+10FFFF)
/// without U+0000: what MQTT requires of every string (MQTT-1.5.3-1, MQTT-1.5.3-2).
bool validMqttString(std::string_view text);

// ---- The lenient scanner (tools and tests) ----

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
