#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

/// A deliberately minimal MQTT 3.1.1 client over a plain blocking TCP socket, for the load
/// generator and the counting subscribers. It does exactly what the benchmark needs (CONNECT,
/// SUBSCRIBE, PUBLISH QoS 0/1, PUBACK, PINGREQ, DISCONNECT) and lets the caller decide how many
/// packets go into one system call, which is the point of the measurement. Not thread-safe; one
/// owner thread per connection.
namespace hgj::bench::mqtt {

enum class PacketType : uint8_t {
  kConnack = 2,
  kPublish = 3,
  kPuback = 4,
  kSuback = 9,
  kPingresp = 13,
};

void appendConnect(std::vector<uint8_t>& out, std::string_view client_id, bool clean_session,
                   uint16_t keepalive_s);
void appendSubscribe(std::vector<uint8_t>& out, uint16_t packet_id, std::string_view filter,
                     int qos);
/// packet_id is ignored at QoS 0.
void appendPublish(std::vector<uint8_t>& out, std::string_view topic, std::string_view payload,
                   int qos, uint16_t packet_id);
void appendPuback(std::vector<uint8_t>& out, uint16_t packet_id);
void appendPingreq(std::vector<uint8_t>& out);
void appendDisconnect(std::vector<uint8_t>& out);

/// One complete packet inside a receive buffer (valid until the buffer changes).
struct Packet {
  uint8_t first_byte = 0;
  const uint8_t* body = nullptr;
  size_t body_len = 0;

  PacketType type() const { return static_cast<PacketType>(first_byte >> 4); }
  int publishQos() const { return (first_byte >> 1) & 3; }
  /// For a PUBLISH at QoS > 0: its packet id. For PUBACK: the acked id.
  uint16_t packetId() const;
  std::string_view publishTopic() const;
  std::string_view publishPayload() const;
};

/// Calls on_packet(const Packet&) for every complete packet in [buf, buf+n) and returns how many
/// bytes were consumed (a trailing partial packet is left for the next read).
template <typename F> size_t scanPackets(const uint8_t* buf, size_t n, F&& on_packet) {
  size_t off = 0;
  while (n - off >= 2) {
    size_t len = 0;
    size_t mul = 1;
    size_t i = off + 1;
    bool complete_header = false;
    while (i < n && i - off <= 4) {
      len += static_cast<size_t>(buf[i] & 0x7F) * mul;
      mul *= 128;
      if ((buf[i++] & 0x80) == 0) {
        complete_header = true;
        break;
      }
    }
    if (!complete_header || n - i < len) {
      break;
    }
    on_packet(Packet{buf[off], buf + i, len});
    off = i + len;
  }
  return off;
}

/// A blocking TCP connection to a loopback broker.
class Connection {
public:
  Connection() = default;
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  /// Connects and completes the MQTT handshake (CONNACK accepted) within timeout_s. On failure
  /// returns false with error() set. Bytes that arrive right after the CONNACK (a persistent
  /// session's queued messages) stay in the pending data for the caller.
  bool open(const std::string& host, int port, std::string_view client_id, bool clean_session,
            uint16_t keepalive_s, double timeout_s, int rcvbuf_bytes = 0);
  const std::string& error() const { return error_; }
  bool sessionPresent() const { return session_present_; }
  int fd() const { return fd_; }

  /// Writes all bytes (blocking). False when the connection is gone.
  bool writeAll(const uint8_t* data, size_t n);
  bool writeAll(const std::vector<uint8_t>& v) { return writeAll(v.data(), v.size()); }
  /// Waits up to timeout_ms for data (poll) and appends what one read() returns (at most
  /// max_bytes) to the pending data. A negative timeout skips the poll and blocks in read().
  /// Returns the bytes read, 0 on timeout, -1 when the connection closed.
  long readSome(int timeout_ms, size_t max_bytes);
  /// Reads exactly n bytes into the pending data with as many readSome(timeout_ms) calls as
  /// needed (the way a packet-by-packet client library reads). -1 on close or timeout.
  long readExact(size_t n, int timeout_ms);
  /// Received bytes not yet consumed.
  const uint8_t* pendingData() const { return buf_.data(); }
  size_t pendingSize() const { return len_; }
  /// Drops the first n bytes of the pending data.
  void consume(size_t n);
  void close();

private:
  int fd_ = -1;
  bool session_present_ = false;
  std::string error_;
  std::vector<uint8_t> buf_;
  size_t len_ = 0;
};

} // namespace hgj::bench::mqtt
